// Pointwise activations and their gradients, one invocation per element; `a` is the
// activation's parameter (leaky_relu's slope, elu's alpha).
//   relu        y = max(x, 0)                    dx = dy·[x > 0]
//   sigmoid     y = 1/(1 + e^-x)                 dx = dy·e^-|x|/(1 + e^-|x|)²
//   tanh        y = tanh(x)                      dx = dy·4e^-2|x|/(1 + e^-2|x|)²
//   leaky_relu  y = x > 0 ? x : a·x              dx = dy·(x > 0 ? 1 : a)
//   elu         y = x > 0 ? x : a·(e^x - 1)      dx = dy·(x > 0 ? 1 : a·e^x)
//   gelu        y = x·Φ(x)                       dx = dy·(Φ(x) + x·φ(x))
//   gelu_tanh   y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
//   silu        y = x·σ(x)                       dx = dy·σ(x)(1 + x(1 - σ(x)))
//   softplus    y = max(x,0) + ln(1 + e^-|x|)    dx = dy·σ(x)
//   step        y = [x > 0]                      dx = 0 (entry step_forward: `step` is a builtin)
//   prelu       y = x > 0 ? x : α_c·x            dx = dy·(x > 0 ? 1 : α_c),  dα_c = Σ_{x≤0} dy·x
// Backward entry points read x at binding 1 and dy at 2; written in x, the slopes of sigmoid
// and tanh keep full precision where the outputs saturate (1 - y² from a rounded y would not).
// Bindings: 0 params, 1 x, 2 dy, 3 out, 4 alpha. `inner` is the size of one channel plane.

struct Params {
    n: u32,
    a: f32,
    inner: u32,
    channels: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> alpha: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608;
const INV_SQRT_2PI: f32 = 0.3989422804;
const GELU_CUBIC: f32 = 0.044715;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Stable on both sides: e^-|v| never overflows.
fn sigmoid_of(v: f32) -> f32 {
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// ln(1 + z) without losing z when it is far below 1 (Goldberg's correction).
fn log1p_of(z: f32) -> f32 {
    let u = 1.0 + z;
    return select(log(u) * z / (u - 1.0), z, u == 1.0);
}

// e^v - 1 without cancellation near 0 (Kahan's correction).
fn expm1_of(v: f32) -> f32 {
    let u = exp(v);
    if (u == 1.0) { return v; }
    if (u - 1.0 == -1.0) { return -1.0; }
    return (u - 1.0) * v / log(u);
}

// erfc with relative error below 1.2e-7 everywhere (Chebyshev fit, Numerical Recipes).
fn erfc_of(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(poly);
    return select(2.0 - r, r, v >= 0.0);
}

// Φ(v), the standard normal CDF.
fn normal_cdf(v: f32) -> f32 {
    return 0.5 * erfc_of(-v * 0.7071067812);
}

// tanh saturates to ±1 in f32 beyond |v| = 10; clamping keeps drivers' exp-based tanh finite.
fn tanh_of(v: f32) -> f32 {
    return tanh(clamp(v, -10.0, 10.0));
}

fn gelu_tanh_inner(v: f32) -> f32 {
    return tanh_of(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
}

@compute @workgroup_size(64)
fn relu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = max(x[i], 0.0);
}

@compute @workgroup_size(64)
fn relu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = select(0.0, dy[i], x[i] > 0.0);
}

// ReLU four elements at a time, for a multiple of 4 elements (p.n counts fours): 4-wide loads
// and stores where Mesa's CPU drivers would move lane by lane.
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;

@compute @workgroup_size(64)
fn relu_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out4[i] = max(x4[i], vec4f(0.0));
}

@compute @workgroup_size(64)
fn relu_backward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out4[i] = select(vec4f(0.0), dy4[i], x4[i] > vec4f(0.0));
}

@compute @workgroup_size(64)
fn sigmoid(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = sigmoid_of(x[i]);
}

// σ'(v) = e^-|v| / (1 + e^-|v|)².
fn sigmoid_slope(v: f32) -> f32 {
    let e = exp(-abs(v));
    return e / ((1.0 + e) * (1.0 + e));
}

@compute @workgroup_size(64)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * sigmoid_slope(x[i]);
}

@compute @workgroup_size(64)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = tanh_of(x[i]);
}

@compute @workgroup_size(64)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * 4.0 * sigmoid_slope(2.0 * x[i]);
}

// Four-element forms of the activations the recurrent and transformer models run every step
// (and leaky ReLU, the GANs'), for a multiple of 4 elements (p.n counts fours): each component
// through the one-element kernel's own function, so the results are the same bits.
@compute @workgroup_size(64)
fn sigmoid_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x4[i];
    out4[i] = vec4f(sigmoid_of(v.x), sigmoid_of(v.y), sigmoid_of(v.z), sigmoid_of(v.w));
}

@compute @workgroup_size(64)
fn sigmoid_backward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x4[i];
    out4[i] = dy4[i] * vec4f(sigmoid_slope(v.x), sigmoid_slope(v.y), sigmoid_slope(v.z), sigmoid_slope(v.w));
}

@compute @workgroup_size(64)
fn tanh_forward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x4[i];
    out4[i] = vec4f(tanh_of(v.x), tanh_of(v.y), tanh_of(v.z), tanh_of(v.w));
}

@compute @workgroup_size(64)
fn tanh_backward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = 2.0 * x4[i];
    out4[i] = dy4[i] * 4.0 * vec4f(sigmoid_slope(v.x), sigmoid_slope(v.y), sigmoid_slope(v.z), sigmoid_slope(v.w));
}

@compute @workgroup_size(64)
fn gelu_tanh_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x4[i];
    out4[i] = vec4f(gelu_tanh_of(v.x), gelu_tanh_of(v.y), gelu_tanh_of(v.z), gelu_tanh_of(v.w));
}

@compute @workgroup_size(64)
fn gelu_tanh_backward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x4[i];
    out4[i] = dy4[i] * vec4f(gelu_tanh_slope(v.x), gelu_tanh_slope(v.y), gelu_tanh_slope(v.z), gelu_tanh_slope(v.w));
}

@compute @workgroup_size(64)
fn leaky_relu_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x4[i];
    out4[i] = select(p.a * v, v, v > vec4f(0.0));
}

@compute @workgroup_size(64)
fn leaky_relu_backward_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out4[i] = dy4[i] * select(vec4f(p.a), vec4f(1.0), x4[i] > vec4f(0.0));
}

@compute @workgroup_size(64)
fn leaky_relu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = select(p.a * x[i], x[i], x[i] > 0.0);
}

@compute @workgroup_size(64)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * select(p.a, 1.0, x[i] > 0.0);
}

@compute @workgroup_size(64)
fn elu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = select(p.a * expm1_of(x[i]), x[i], x[i] > 0.0);
}

@compute @workgroup_size(64)
fn elu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * select(p.a * exp(min(x[i], 0.0)), 1.0, x[i] > 0.0);
}

@compute @workgroup_size(64)
fn gelu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = x[i] * normal_cdf(x[i]);
}

@compute @workgroup_size(64)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let v = x[i];
    out[i] = dy[i] * (normal_cdf(v) + v * INV_SQRT_2PI * exp(-0.5 * v * v));
}

fn gelu_tanh_of(v: f32) -> f32 {
    return 0.5 * v * (1.0 + gelu_tanh_inner(v));
}

fn gelu_tanh_slope(v: f32) -> f32 {
    let t = gelu_tanh_inner(v);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * v * v);
    return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
}

@compute @workgroup_size(64)
fn gelu_tanh(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = gelu_tanh_of(x[i]);
}

@compute @workgroup_size(64)
fn gelu_tanh_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * gelu_tanh_slope(x[i]);
}

@compute @workgroup_size(64)
fn silu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = x[i] * sigmoid_of(x[i]);
}

@compute @workgroup_size(64)
fn silu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let s = sigmoid_of(x[i]);
    out[i] = dy[i] * s * (1.0 + x[i] * (1.0 - s));
}

@compute @workgroup_size(64)
fn softplus(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = max(x[i], 0.0) + log1p_of(exp(-abs(x[i])));
}

@compute @workgroup_size(64)
fn softplus_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * sigmoid_of(x[i]);
}

@compute @workgroup_size(64)
fn step_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = select(0.0, 1.0, x[i] > 0.0);
}

// The step's slope is zero wherever it has one: 0·dy, as the CPU reference computes it (a NaN or
// an infinity in dy stays NaN). x is read, as every backward entry point's layout binds it.
@compute @workgroup_size(64)
fn step_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let zero = 0.0 * dy[i];
    out[i] = select(zero, zero, x[i] > 0.0);
}

fn channel_of(i: u32) -> u32 {
    return (i / p.inner) % p.channels;
}

@compute @workgroup_size(64)
fn prelu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = select(alpha[channel_of(i)] * x[i], x[i], x[i] > 0.0);
}

@compute @workgroup_size(64)
fn prelu_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * select(alpha[channel_of(i)], 1.0, x[i] > 0.0);
}

var<workgroup> partial: array<f32, 64>;

// One workgroup per channel: 64 invocations stride over its elements, then add their partial
// sums in a tree.
@compute @workgroup_size(64)
fn prelu_backward_alpha(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    var acc = 0.0;
    for (var k = lid; k < p.n / p.channels; k += 64u) {
        let j = ((k / p.inner) * p.channels + c) * p.inner + k % p.inner;
        acc += select(dy[j] * x[j], 0.0, x[j] > 0.0);
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[c] = partial[0];
    }
}
