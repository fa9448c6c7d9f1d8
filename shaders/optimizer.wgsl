// Optimizer updates, in place, one invocation per parameter element, or per four in the `_x4`
// forms (PyTorch semantics).
// `lr` is the scheduled rate of this step; bias corrections c1, c2 are computed on the host
// in f64 each step.
//   sgd_step:      g = grad + wd·p;  buf = μ·buf + g;  p -= lr·buf                (dampening 0)
//   adam_step:     g = grad + wd·p;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//                  p -= lr · (m / c1) / (sqrt(v / c2) + eps),  c1 = 1 - β1^t, c2 = 1 - β2^t
//   adamw_step:    p ← p·(1 - lr·wd), then adam_step's update with g = grad
//   adagrad_step:  g = grad + wd·p;  s += g²;              p -= lr·g / (sqrt(s) + eps)
//   rmsprop_step:  g = grad + wd·p;  s = α·s + (1-α)·g²;   p -= lr·g / (sqrt(s) + eps)
//   clip_factor:   factor = min(1, max_norm / (sqrt(Σg²) + 1e-6)), one invocation
// SCALED: every update's gradient is factor·grad (a loss-scaled step unscaled, clipped or
// both), and a factor of 0 (a step whose gradients were not finite) leaves everything as it was.
// Bindings: 0 params, 1 grad (or Σg²), then the state it updates: 2 param (or the factor),
// 3 momentum_buf, m or the squared-gradient average, 4 v; 5 the factor (another read-only
// buffer in its place when not SCALED).

override SCALED: bool = false;

struct Sgd {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

struct Adam {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    c1: f32,
    c2: f32,
}

struct Squares {
    n: u32,
    lr: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Clip {
    max_norm: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> sgd: Sgd;
@group(0) @binding(0) var<uniform> adam: Adam;
@group(0) @binding(0) var<uniform> squares: Squares;
@group(0) @binding(0) var<uniform> clip: Clip;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> first: array<f32>;
@group(0) @binding(4) var<storage, read_write> second: array<f32>;
@group(0) @binding(5) var<storage, read> factor: array<f32>;

@group(0) @binding(1) var<storage, read> grad4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> param4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> first4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> second4: array<vec4f>;

// Whether this step is skipped (a loss-scaled step whose gradients were not finite).
fn skipped() -> bool {
    return SCALED && factor[0] == 0.0;
}

// The gradient of element i (of four i·4.. in the `_x4` kernels), times the factor when SCALED.
fn gradient(i: u32) -> f32 {
    if (SCALED) { return factor[0] * grad[i]; }
    return grad[i];
}

fn gradient4(i: u32) -> vec4f {
    if (SCALED) { return factor[0] * grad4[i]; }
    return grad4[i];
}

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Each rule once, on four elements: the `_x4` kernels update a whole vec4 of a parameter
// whose size is a multiple of 4 (one 4-wide load and store where Mesa's CPU drivers would go
// lane by lane); the one-element kernels take the first lane of the same arithmetic.
// A step's new parameter and state (`second` unused by the one-state rules).
struct Stepped { param: vec4f, first: vec4f, second: vec4f }

fn sgd_rule(p: vec4f, grad: vec4f, buf0: vec4f) -> Stepped {
    let g = grad + sgd.weight_decay * p;
    let buf = sgd.momentum * buf0 + g;
    return Stepped(p - sgd.lr * buf, buf, vec4f(0.0));
}

// The Adam update from gradient g, with p the (possibly decayed) parameter.
fn adam_rule(p: vec4f, g: vec4f, m0: vec4f, v0: vec4f) -> Stepped {
    let m = adam.beta1 * m0 + (1.0 - adam.beta1) * g;
    let v = adam.beta2 * v0 + (1.0 - adam.beta2) * g * g;
    return Stepped(p - adam.lr * (m / adam.c1) / (sqrt(v / adam.c2) + adam.eps), m, v);
}

fn adam_l2_rule(p: vec4f, grad: vec4f, m0: vec4f, v0: vec4f) -> Stepped {
    return adam_rule(p, grad + adam.weight_decay * p, m0, v0);
}

fn adamw_rule(p: vec4f, grad: vec4f, m0: vec4f, v0: vec4f) -> Stepped {
    return adam_rule(p * (1.0 - adam.lr * adam.weight_decay), grad, m0, v0);
}

// Adagrad and RMSprop: s = α·s + (1-α)·g², with α = 0 meaning s + g² (Adagrad).
fn squares_rule(p: vec4f, grad: vec4f, s0: vec4f, adagrad: bool) -> Stepped {
    let g = grad + squares.weight_decay * p;
    var s = s0 + g * g;
    if (!adagrad) { s = squares.alpha * s0 + (1.0 - squares.alpha) * g * g; }
    return Stepped(p - squares.lr * g / (sqrt(s) + squares.eps), s, vec4f(0.0));
}

fn one(v: f32) -> vec4f {
    return vec4f(v, 0.0, 0.0, 0.0);
}

@compute @workgroup_size(64)
fn sgd_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= sgd.n || skipped()) { return; }
    let s = sgd_rule(one(param[i]), one(gradient(i)), one(first[i]));
    first[i] = s.first.x;
    param[i] = s.param.x;
}

@compute @workgroup_size(64)
fn sgd_step_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= sgd.n / 4u || skipped()) { return; }
    let s = sgd_rule(param4[i], gradient4(i), first4[i]);
    first4[i] = s.first;
    param4[i] = s.param;
}

fn store_adam(i: u32, s: Stepped) {
    first[i] = s.first.x;
    second[i] = s.second.x;
    param[i] = s.param.x;
}

fn store_adam4(i: u32, s: Stepped) {
    first4[i] = s.first;
    second4[i] = s.second;
    param4[i] = s.param;
}

@compute @workgroup_size(64)
fn adam_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n || skipped()) { return; }
    store_adam(i, adam_l2_rule(one(param[i]), one(gradient(i)), one(first[i]), one(second[i])));
}

@compute @workgroup_size(64)
fn adam_step_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n / 4u || skipped()) { return; }
    store_adam4(i, adam_l2_rule(param4[i], gradient4(i), first4[i], second4[i]));
}

@compute @workgroup_size(64)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n || skipped()) { return; }
    store_adam(i, adamw_rule(one(param[i]), one(gradient(i)), one(first[i]), one(second[i])));
}

@compute @workgroup_size(64)
fn adamw_step_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n / 4u || skipped()) { return; }
    store_adam4(i, adamw_rule(param4[i], gradient4(i), first4[i], second4[i]));
}

fn squares_step(i: u32, adagrad: bool) {
    if (i >= squares.n || skipped()) { return; }
    let s = squares_rule(one(param[i]), one(gradient(i)), one(first[i]), adagrad);
    first[i] = s.first.x;
    param[i] = s.param.x;
}

fn squares_step4(i: u32, adagrad: bool) {
    if (i >= squares.n / 4u || skipped()) { return; }
    let s = squares_rule(param4[i], gradient4(i), first4[i], adagrad);
    first4[i] = s.first;
    param4[i] = s.param;
}

@compute @workgroup_size(64)
fn adagrad_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    squares_step(flat(gid, groups), true);
}

@compute @workgroup_size(64)
fn adagrad_step_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    squares_step4(flat(gid, groups), true);
}

@compute @workgroup_size(64)
fn rmsprop_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    squares_step(flat(gid, groups), false);
}

@compute @workgroup_size(64)
fn rmsprop_step_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    squares_step4(flat(gid, groups), false);
}

@compute @workgroup_size(1)
fn clip_factor() {
    param[0] = min(1.0, clip.max_norm / (sqrt(grad[0]) + 1e-6));
}
