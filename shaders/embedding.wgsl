// Embedding lookup and its gradient, without float atomics.
//   embedding(table [V,D], ids [M]):  y[m, d] = table[ids[m], d], NaN for an id outside 0..V
//   embedding_backward(ids, dy):      dtable[v, d] = Σ_{m: ids[m] = v} dy[m, d]
// The gradient gathers: the invocation owning dtable[v, d] scans every id in order, so the
// sum is deterministic however many ids repeat.
// Bindings: 0 params, 1 table (dy in backward), 2 ids, 3 out.

struct Params {
    n: u32,
    ids: u32,
    dim: u32,
    vocab: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const NAN_BITS: u32 = 0x7fc00000u;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

@compute @workgroup_size(64)
fn embedding(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let id = ids[e / p.dim];
    let valid = id >= 0 && u32(id) < p.vocab;
    let row = u32(clamp(id, 0, i32(p.vocab) - 1));
    // Bits in a `var`: a constant expression may not be NaN (browsers' compilers refuse it).
    var nan_bits = NAN_BITS;
    out[e] = select(bitcast<f32>(nan_bits), table[row * p.dim + e % p.dim], valid);
}

@compute @workgroup_size(64)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let v = i32(e / p.dim);
    let d = e % p.dim;
    var acc = 0.0;
    for (var m = 0u; m < p.ids; m++) {
        if (ids[m] == v) {
            acc += table[m * p.dim + d];
        }
    }
    out[e] = acc;
}
