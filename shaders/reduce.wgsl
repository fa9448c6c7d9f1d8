// Reductions over `axes`, one workgroup per output element:
//   sum(x) · scale     (mean is sum with scale = 1/count); its gradient is `broadcast_to`
//   sum_rows            the same, one invocation per output (short planar reductions)
//   max_forward(x)      the maximum
//   max_backward(x, ymax, dy):  dx = dy/k at the k elements equal to their maximum, else 0
//                               (ties share the gradient, as JAX's rule does)
// The 64 invocations of a workgroup stride over the reduced elements, then add their partial
// sums in a tree in workgroup memory: log2(64) barriers, pairwise-style rounding.
// `kept_*` describe the output's axes in x, `red_*` the reduced axes (shape, stride in x),
// neighbouring axes of a kind merged by the host. With `planar` there are exactly two reduced
// axes and `sum` steps their digits: no integer division per element, which lavapipe scalarises.
// A reduction longer than a CPU adapter's loop budget (Mesa ends an invocation's loops after
// 65,535 passes) is cut into `chunks` chunks of `chunk` elements: `sum` and `max_forward` then
// write one partial result per (output, chunk), workgroup o · chunks + c, which a second
// reduction over the chunks folds (the host's); `max_backward` counts each chunk's ties
// (max_backward_ties), the host sums them per output into `ties`, and max_backward_chunks
// writes each chunk's gradient from that total.
// Bindings: 0 params, 1 x, 2 y (dx for max_backward), 3 ymax, 4 dy.

struct Params {
    n_out: u32,
    n_red: u32,
    kept_rank: u32,
    red_rank: u32,
    scale: f32,
    planar: u32,
    chunk: u32,
    chunks: u32,
    kept_shape: array<vec4u, 2>,
    kept_strides: array<vec4u, 2>,
    red_shape: array<vec4u, 2>,
    red_strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@group(0) @binding(3) var<storage, read> ymax: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read> ties: array<f32>;

var<workgroup> partial: array<f32, 64>;

// Offset in x of element i of the row-major index space `shape`, given each axis's stride in x.
fn strided_offset(i: u32, rank: u32, shape: array<vec4u, 2>, strides: array<vec4u, 2>) -> u32 {
    var rest = i;
    var at = 0u;
    for (var d = i32(rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        at += (rest % shape[q][r]) * strides[q][r];
        rest = rest / shape[q][r];
    }
    return at;
}

// The output and the range of reduced elements workgroup w covers: all of them, or one chunk.
struct Share { o: u32, first: u32, last: u32 }

fn share_of(w: u32) -> Share {
    if (p.chunks == 0u) { return Share(w, 0u, p.n_red); }
    let first = (w % p.chunks) * p.chunk;
    return Share(w / p.chunks, first, min(first + p.chunk, p.n_red));
}

@compute @workgroup_size(64)
fn sum(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.y * groups.x + wid.x;
    let s = share_of(w);
    var acc = 0.0;
    if (s.o < p.n_out) {
        let base = strided_offset(s.o, p.kept_rank, p.kept_shape, p.kept_strides);
        if (p.planar != 0u) {
            acc = planar_sum(base, s, lid);
        } else {
            for (var r = s.first + lid; r < s.last; r += 64u) {
                acc += x[base + strided_offset(r, p.red_rank, p.red_shape, p.red_strides)];
            }
        }
    }
    let total = workgroup_sum(acc, lid);
    if (lid == 0u && s.o < p.n_out) {
        y[w] = total * p.scale;
    }
}

@compute @workgroup_size(64)
fn sum_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let o = gid.y * groups.x * 64u + gid.x;
    if (o >= p.n_out) { return; }
    let base = strided_offset(o, p.kept_rank, p.kept_shape, p.kept_strides);
    var digits = vec2u(0u);
    var acc = 0.0;
    for (var r = 0u; r < p.n_red; r++) {
        acc += x[base + planar_offset(digits)];
        digits = next_digits(digits, vec2u(0u, 1u), p.red_shape[0][1]);
    }
    y[o] = acc * p.scale;
}

// This invocation's share of the sum over two reduced axes (outer, inner): elements
// r = first + lid, first + lid + 64, … as digits (r / inner, r % inner), advanced by the
// digits of 64.
fn planar_sum(base: u32, s: Share, lid: u32) -> f32 {
    let inner = p.red_shape[0][1];
    let step = vec2u(64u / inner, 64u % inner);
    var digits = vec2u((s.first + lid) / inner, (s.first + lid) % inner);
    var acc = 0.0;
    for (var r = s.first + lid; r < s.last; r += 64u) {
        acc += x[base + planar_offset(digits)];
        digits = next_digits(digits, step, inner);
    }
    return acc;
}

// Offset in x of the reduced element at digits (outer, inner) of a planar reduction.
fn planar_offset(digits: vec2u) -> u32 {
    return digits.x * p.red_strides[0][0] + digits.y * p.red_strides[0][1];
}

// Digits (outer, inner) advanced by `step` (inner < `inner`, the inner extent), carrying
// into outer.
fn next_digits(digits: vec2u, step: vec2u, inner: u32) -> vec2u {
    let next = digits + step;
    return select(next, vec2u(next.x + 1u, next.y - inner), next.y >= inner);
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4f>;

// `sum_rows` for four adjacent outputs at once, where the innermost kept axis is contiguous and
// a multiple of 4 long and every other stride a multiple of 4 (a linear layer's bias gradient,
// [batch, features] summed over the batch): one 4-wide load a step where Mesa's CPU drivers
// would load lane by lane, each output summed in sum_rows's order.
@compute @workgroup_size(64)
fn sum_rows_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let o4 = gid.y * groups.x * 64u + gid.x;
    if (o4 >= p.n_out / 4u) { return; }
    let base = strided_offset(4u * o4, p.kept_rank, p.kept_shape, p.kept_strides) / 4u;
    var digits = vec2u(0u);
    var acc = vec4f(0.0);
    for (var r = 0u; r < p.n_red; r++) {
        acc += x4[base + planar_offset(digits) / 4u];
        digits = next_digits(digits, vec2u(0u, 1u), p.red_shape[0][1]);
    }
    y4[o4] = acc * p.scale;
}

// `sum` over two reduced axes whose inner one is contiguous and a multiple of 4 long, every
// other stride a multiple of 4 (a convolution's bias gradient): planar_sum over fours, one
// 4-wide load a step where Mesa's CPU drivers would load lane by lane.
@compute @workgroup_size(64)
fn sum_quads(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.y * groups.x + wid.x;
    let s = share_of(w);
    var acc = vec4f(0.0);
    if (s.o < p.n_out) {
        let base = strided_offset(s.o, p.kept_rank, p.kept_shape, p.kept_strides) / 4u;
        let inner = p.red_shape[0][1] / 4u;
        let outer_stride = p.red_strides[0][0] / 4u;
        let step = vec2u(64u / inner, 64u % inner);
        let first = s.first / 4u + lid;
        var digits = vec2u(first / inner, first % inner);
        for (var r = first; r < s.last / 4u; r += 64u) {
            acc += x4[base + digits.x * outer_stride + digits.y];
            digits = next_digits(digits, step, inner);
        }
    }
    let total = workgroup_sum((acc.x + acc.y) + (acc.z + acc.w), lid);
    if (lid == 0u && s.o < p.n_out) {
        y[w] = total * p.scale;
    }
}

// The sum of every invocation's `v`, given to all of them.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// Offset in x of reduced element r of output o.
fn element(o: u32, r: u32) -> u32 {
    return strided_offset(o, p.kept_rank, p.kept_shape, p.kept_strides)
        + strided_offset(r, p.red_rank, p.red_shape, p.red_strides);
}

// `max_forward`: WGSL's builtin `max` cannot be shadowed.
@compute @workgroup_size(64)
fn max_forward(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.y * groups.x + wid.x;
    let s = share_of(w);
    var acc = 0.0;
    if (s.o < p.n_out) {
        acc = x[element(s.o, s.first)];
        for (var r = s.first + lid; r < s.last; r += 64u) {
            acc = max(acc, x[element(s.o, r)]);
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            partial[lid] = max(partial[lid], partial[lid + half]);
        }
        workgroupBarrier();
    }
    if (lid == 0u && s.o < p.n_out) {
        y[w] = partial[0];
    }
}

@compute @workgroup_size(64)
fn max_backward(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.y * groups.x + wid.x;
    let valid = o < p.n_out;
    let top = select(0.0, ymax[min(o, p.n_out - 1u)], valid);
    var ties = 0.0;
    if (valid) {
        for (var r = lid; r < p.n_red; r += 64u) {
            ties += select(0.0, 1.0, x[element(o, r)] == top);
        }
    }
    let share = select(0.0, dy[min(o, p.n_out - 1u)], valid) / max(workgroup_sum(ties, lid), 1.0);
    if (valid) {
        for (var r = lid; r < p.n_red; r += 64u) {
            let at = element(o, r);
            y[at] = select(0.0, share, x[at] == top);
        }
    }
}

// The elements of workgroup w's chunk equal to its output's maximum, counted.
@compute @workgroup_size(64)
fn max_backward_ties(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.y * groups.x + wid.x;
    let s = share_of(w);
    var count = 0.0;
    if (s.o < p.n_out) {
        let top = ymax[s.o];
        for (var r = s.first + lid; r < s.last; r += 64u) {
            count += select(0.0, 1.0, x[element(s.o, r)] == top);
        }
    }
    let total = workgroup_sum(count, lid);
    if (lid == 0u && s.o < p.n_out) {
        y[w] = total;
    }
}

// dx over workgroup w's chunk: dy shared by every tie of its output (`ties`, all chunks').
@compute @workgroup_size(64)
fn max_backward_chunks(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.y * groups.x + wid.x;
    let s = share_of(w);
    if (s.o >= p.n_out) { return; }
    let top = ymax[s.o];
    let share = dy[s.o] / max(ties[s.o], 1.0);
    for (var r = s.first + lid; r < s.last; r += 64u) {
        let at = element(s.o, r);
        y[at] = select(0.0, share, x[at] == top);
    }
}
