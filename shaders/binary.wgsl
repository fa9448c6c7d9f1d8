// Elementwise binary ops with NumPy broadcasting, one invocation per output element:
//   add: y = a + b    sub: y = a - b    mul: y = a · b    div: y = a / b
// Their gradients are built from these ops and `sum` in the graph, not written here.
// Broadcasting: the output index is split into coordinates over `shape`, and each operand's
// offset is the dot product with its strides (0 along broadcast axes). When both operands
// already have the output's shape, `contiguous` skips that arithmetic, and where they also
// hold whole fours the `_x4` forms compute a vec4 per invocation (one 4-wide load and store
// where Mesa's CPU drivers would go lane by lane; p.n then counts fours).
// Bindings: 0 params, 1 a, 2 b, 3 y.

struct Params {
    n: u32,
    rank: u32,
    contiguous: u32,
    _pad: u32,
    shape: array<vec4u, 2>,
    a_strides: array<vec4u, 2>,
    b_strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Offsets of element i of y in a (x) and b (y).
fn offsets(i: u32) -> vec2u {
    if (p.contiguous == 1u) { return vec2u(i, i); }
    var rest = i;
    var at = vec2u(0u, 0u);
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let coord = rest % p.shape[q][r];
        rest = rest / p.shape[q][r];
        at += coord * vec2u(p.a_strides[q][r], p.b_strides[q][r]);
    }
    return at;
}

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let o = offsets(i);
    y[i] = a[o.x] + b[o.y];
}

@compute @workgroup_size(64)
fn sub(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let o = offsets(i);
    y[i] = a[o.x] - b[o.y];
}

@compute @workgroup_size(64)
fn mul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let o = offsets(i);
    y[i] = a[o.x] * b[o.y];
}

@compute @workgroup_size(64)
fn div(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let o = offsets(i);
    y[i] = a[o.x] / b[o.y];
}

@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(64)
fn add_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y4[i] = a4[i] + b4[i];
}

@compute @workgroup_size(64)
fn sub_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y4[i] = a4[i] - b4[i];
}

@compute @workgroup_size(64)
fn mul_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y4[i] = a4[i] * b4[i];
}

@compute @workgroup_size(64)
fn div_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    y4[i] = a4[i] / b4[i];
}
