// Strided gathers that materialise a view, one invocation per output element:
//   transpose(x, perm):           y[i_0..i_r] with axis k of y = axis perm[k] of x
//   broadcast_to(x, shape, s):    y = s · x broadcast to `shape` (the gradient of `sum`)
//   slice(x):                     y = x[…, start..start+len, …]  (`offset` = start · stride;
//                                 slice_x4 four elements an invocation)
// These split the output index into coordinates over `shape` and dot them with `strides`, the
// input's stride for each output axis (0 along broadcast axes), from `offset`.
//   slice_backward(dy):           dx = dy placed at start.. along the axis, zero elsewhere (and
//                                 slice_backward_x4, four elements an invocation)
//   concat_part(x):               y[…, start..start+len, …] = x, the rest of y untouched (one
//                                 dispatch per input of a concat; one invocation per x element)
//   assign(value):                variable = value, element by element (an in-place copy)
// Reshape needs no kernel: the executor lets it share its input's buffer.
// Bindings: 0 params (or slice_back), 1 x, 2 y.

struct Params {
    n: u32,
    rank: u32,
    scale: f32,
    offset: u32,
    shape: array<vec4u, 2>,
    strides: array<vec4u, 2>,
}

// dx viewed as [outer, full, inner]; dy as [outer, len, inner].
struct SliceBack {
    n: u32,
    full: u32,
    inner: u32,
    start: u32,
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(0) var<uniform> back: SliceBack;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

fn source(i: u32) -> u32 {
    var rest = i;
    var at = p.offset;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        at += (rest % p.shape[q][r]) * p.strides[q][r];
        rest = rest / p.shape[q][r];
    }
    return at;
}

@compute @workgroup_size(64)
fn transpose(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y[i] = x[source(i)];
}

@compute @workgroup_size(64)
fn broadcast_to(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y[i] = p.scale * x[source(i)];
}

@compute @workgroup_size(64)
fn slice(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y[i] = x[source(i)];
}

@compute @workgroup_size(64)
fn slice_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= back.n) { return; }
    let inner = i % back.inner;
    let along = (i / back.inner) % back.full;
    let outer = i / (back.inner * back.full);
    let inside = along >= back.start && along < back.start + back.len;
    // Clamped so the read stays inside dy even where it is not used.
    let source_at = (outer * back.len + min(along - back.start, back.len - 1u)) * back.inner + inner;
    y[i] = select(0.0, x[source_at], inside);
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4f>;

// slice_backward four elements at a time (back.n counts fours), where the slice's edges and
// dx's rows along the axis (full · inner elements) fall at multiples of 4: each four then lies
// wholly inside dy's stretch or wholly outside it, and one 4-wide load and store serve them
// where Mesa's CPU drivers would go lane by lane.
@compute @workgroup_size(64)
fn slice_backward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let q = flat(gid, groups);
    if (q >= back.n) { return; }
    let row = back.full * back.inner;
    let first = back.start * back.inner;
    let stretch = back.len * back.inner;
    let within = (4u * q) % row;
    let inside = within >= first && within < first + stretch;
    // Clamped so the read stays inside dy even where it is not used.
    let source_at = ((4u * q) / row) * stretch + min(within - first, stretch - 4u);
    y4[q] = select(vec4f(0.0), x4[source_at / 4u], inside);
}

// slice four elements at a time under the same condition (back.n counts fours of y): each
// four of y is a four of x.
@compute @workgroup_size(64)
fn slice_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let q = flat(gid, groups);
    if (q >= back.n) { return; }
    let stretch = back.len * back.inner;
    let at = (4u * q / stretch) * back.full * back.inner + back.start * back.inner + (4u * q) % stretch;
    y4[q] = x4[at / 4u];
}

@compute @workgroup_size(64)
fn concat_part(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= back.n) { return; }
    let inner = i % back.inner;
    let along = (i / back.inner) % back.len;
    let outer = i / (back.inner * back.len);
    y[(outer * back.full + back.start + along) * back.inner + inner] = x[i];
}

@compute @workgroup_size(64)
fn assign(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y[i] = x[i];
}
