// Inverted dropout, one invocation per element: element i survives when the top 24 bits of
// mix32(i ^ key) reach `threshold` (= p·2²⁴), and is then scaled by 1/(1-p).
//   dropout(x):           y = keep(i) ? x·scale : 0
//   dropout_backward(dy): dx = keep(i) ? dy·scale : 0   (the same mask: the same key)
// The host derives `key` from the seed and the run, so each run draws a fresh mask and the
// CPU reference draws the very same one (kiln_core::Dropout::keeps).
// Bindings: 0 params, 1 x (dy in backward), 2 out.

struct Params {
    n: u32,
    threshold: u32,
    key: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Wellons' lowbias32 integer hash.
fn mix32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn masked(i: u32) -> f32 {
    return select(0.0, x[i] * p.scale, mix32(i ^ p.key) >> 8u >= p.threshold);
}

@compute @workgroup_size(64)
fn dropout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = masked(i);
}

@compute @workgroup_size(64)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = masked(i);
}
