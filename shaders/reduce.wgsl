// sum(x, axes) · scale (mean is sum with scale = 1/count), one workgroup per output element.
// Its gradient is `broadcast_to` in layout.wgsl.
// The 64 invocations of a workgroup stride over the reduced elements, then add their partial
// sums in a tree in workgroup memory: log2(64) barriers, pairwise-style rounding.
// `kept_*` describe the output's axes in x, `red_*` the reduced axes (shape, stride in x).
// Bindings: 0 params, 1 x, 2 y.

struct Params {
    n_out: u32,
    n_red: u32,
    kept_rank: u32,
    red_rank: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    kept_shape: array<vec4u, 2>,
    kept_strides: array<vec4u, 2>,
    red_shape: array<vec4u, 2>,
    red_strides: array<vec4u, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

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

@compute @workgroup_size(64)
fn sum(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.y * groups.x + wid.x;
    var acc = 0.0;
    if (o < p.n_out) {
        let base = strided_offset(o, p.kept_rank, p.kept_shape, p.kept_strides);
        for (var r = lid; r < p.n_red; r += 64u) {
            acc += x[base + strided_offset(r, p.red_rank, p.red_shape, p.red_strides)];
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u && o < p.n_out) {
        y[o] = partial[0] * p.scale;
    }
}
