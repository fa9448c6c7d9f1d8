// Mixed precision: products' operands rounded to binary16, and dynamic loss scaling.
//   round_half, round_half_x4  out = x rounded to the nearest binary16 value, kept in f32
//       (ties to even; from 65520 on, halfway past the largest finite half, to ±inf; NaN kept).
//       Integer arithmetic on the bits, exact on every adapter and needing no SHADER_F16
//       (quantizeToF16 leaves out-of-range values indeterminate).
//   loss_scale_factor  out = 1/scale where Σg² is finite, else 0 (the step is skipped); with
//       clip, times min(1, max_norm / (√Σg²/scale + 1e-6)), clip_factor's of the unscaled Σg²
//   loss_scale_update  in place: a skipped step halves the scale and restarts the count of
//       finite steps; growth_interval finite steps in a row double it, within [min, max].
// Bindings: 0 params, 1 x (or Σg², or the step's factor), 2 out (the factor, or the scale
// updated), 3 the scale read by loss_scale_factor, or the count of finite steps updated.

struct Params {
    n: u32,
    growth_interval: f32,
    min_scale: f32,
    max_scale: f32,
    clip: u32,
    max_norm: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> good_steps: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

fn round_half4(v: vec4f) -> vec4f {
    let bits = bitcast<vec4u>(v);
    let sign = bits & vec4u(0x80000000u);
    let mag = bits & vec4u(0x7fffffffu);
    // Normal halves: 13 mantissa bits dropped, ties to even (a carry steps the exponent).
    let normal = (mag + vec4u(0xfffu) + ((mag >> vec4u(13u)) & vec4u(1u))) & vec4u(0xffffe000u);
    // Below 2^-14, halves are the multiples of 2^-24: scaled exactly, rounded ties to even.
    let tiny = bitcast<vec4u>(round(bitcast<vec4f>(mag) * 16777216.0) * (1.0 / 16777216.0));
    var r = select(normal, tiny, mag < vec4u(0x38800000u));
    r = select(r, vec4u(0x7f800000u), mag >= vec4u(0x477ff000u));
    r = select(r, mag, mag > vec4u(0x7f800000u));
    return bitcast<vec4f>(r | sign);
}

@compute @workgroup_size(64)
fn round_half(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = round_half4(vec4f(x[i])).x;
}

@compute @workgroup_size(64)
fn round_half_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out4[i] = round_half4(x4[i]);
}

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(1)
fn loss_scale_factor() {
    let s = scale[0];
    var clip = 1.0;
    if (p.clip != 0u) { clip = min(1.0, p.max_norm / (sqrt(x[0]) / s + 1e-6)); }
    out[0] = select(0.0, clip / s, finite(x[0]));
}

@compute @workgroup_size(1)
fn loss_scale_update() {
    if (x[0] == 0.0) {
        out[0] = max(out[0] * 0.5, p.min_scale);
        good_steps[0] = 0.0;
        return;
    }
    let count = good_steps[0] + 1.0;
    if (count >= p.growth_interval) {
        out[0] = min(out[0] * 2.0, p.max_scale);
        good_steps[0] = 0.0;
    } else {
        good_steps[0] = count;
    }
}
