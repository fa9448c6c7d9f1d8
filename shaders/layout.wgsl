// Strided gathers that materialise a view, one invocation per output element:
//   transpose(x, perm):           y[i_0..i_r] with axis k of y = axis perm[k] of x
//   broadcast_to(x, shape, s):    y = s · x broadcast to `shape` (the gradient of `sum`)
// Both split the output index into coordinates over `shape` and dot them with `strides`, the
// input's stride for each output axis (0 along broadcast axes). Reshape needs no kernel: the
// executor lets it share its input's buffer.
// Bindings: 0 params, 1 x, 2 y.

struct Params {
    n: u32,
    rank: u32,
    scale: f32,
    _pad: u32,
    shape: array<vec4u, 2>,
    strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

fn source(i: u32) -> u32 {
    var rest = i;
    var at = 0u;
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
