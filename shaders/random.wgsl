// Standard normal noise from a counter-based generator, one invocation per element: element i
// takes two 24-bit uniforms hashed from the counters 2i and 2i+1 and the run's key, and
// returns Box–Muller's √(-2 ln u₁)·cos(2π u₂). Nothing is stored between runs: the host
// derives `key` from the seed and the run (kiln_core::Noise), and the CPU reference draws the
// very same uniforms.
//   random_normal:  out[i] = √(-2 ln u₁)·cos(2π u₂),  u₁ = (a + 1)·2⁻²⁴ ∈ (0, 1],  u₂ = b·2⁻²⁴
// Bindings: 0 params, 1 out.

struct Params {
    n: u32,
    key: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Wellons' lowbias32 integer hash (as dropout.wgsl's).
fn mix32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn uniform24(counter: u32) -> u32 {
    return mix32(mix32(counter) ^ p.key) >> 8u;
}

// ln u for u in (0, 1]. Near 1, where a builtin log may err by a fixed absolute amount that
// swamps ln u itself, the series ln u = 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …), s = (u-1)/(u+1):
// from u ≥ 0.75, |s| ≤ 1/7 and five terms leave less than 2⁻²⁵ relative.
fn ln_unit(u: f32) -> f32 {
    if (u < 0.75) { return log(u); }
    let s = (u - 1.0) / (u + 1.0);
    let s2 = s * s;
    return 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 / 9.0))));
}

@compute @workgroup_size(64)
fn random_normal(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let u1 = f32(uniform24(2u * i) + 1u) * 5.9604645e-8;
    let u2 = f32(uniform24(2u * i + 1u)) * 5.9604645e-8;
    // cos(2π u₂) = -cos(2π (u₂ - ½)): u₂ - ½ is exact, and the argument stays in [-π, π).
    out[i] = -sqrt(-2.0 * ln_unit(u1)) * cos(6.2831855 * (u2 - 0.5));
}
