// Optimizer updates, in place, one invocation per parameter element (PyTorch semantics).
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

// Whether this step is skipped (a loss-scaled step whose gradients were not finite).
fn skipped() -> bool {
    return SCALED && factor[0] == 0.0;
}

// The gradient of element i, times the factor when SCALED.
fn gradient(i: u32) -> f32 {
    if (SCALED) { return factor[0] * grad[i]; }
    return grad[i];
}

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

@compute @workgroup_size(64)
fn sgd_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= sgd.n || skipped()) { return; }
    let g = gradient(i) + sgd.weight_decay * param[i];
    let buf = sgd.momentum * first[i] + g;
    first[i] = buf;
    param[i] = param[i] - sgd.lr * buf;
}

// The Adam update of element i from gradient g, with p the (possibly decayed) parameter.
fn adam_update(i: u32, p: f32, g: f32) {
    let m = adam.beta1 * first[i] + (1.0 - adam.beta1) * g;
    let v = adam.beta2 * second[i] + (1.0 - adam.beta2) * g * g;
    first[i] = m;
    second[i] = v;
    param[i] = p - adam.lr * (m / adam.c1) / (sqrt(v / adam.c2) + adam.eps);
}

@compute @workgroup_size(64)
fn adam_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n || skipped()) { return; }
    adam_update(i, param[i], gradient(i) + adam.weight_decay * param[i]);
}

@compute @workgroup_size(64)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n || skipped()) { return; }
    adam_update(i, param[i] * (1.0 - adam.lr * adam.weight_decay), gradient(i));
}

@compute @workgroup_size(64)
fn adagrad_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= squares.n || skipped()) { return; }
    let g = gradient(i) + squares.weight_decay * param[i];
    let s = first[i] + g * g;
    first[i] = s;
    param[i] = param[i] - squares.lr * g / (sqrt(s) + squares.eps);
}

@compute @workgroup_size(64)
fn rmsprop_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= squares.n || skipped()) { return; }
    let g = gradient(i) + squares.weight_decay * param[i];
    let s = squares.alpha * first[i] + (1.0 - squares.alpha) * g * g;
    first[i] = s;
    param[i] = param[i] - squares.lr * g / (sqrt(s) + squares.eps);
}

@compute @workgroup_size(1)
fn clip_factor() {
    param[0] = min(1.0, clip.max_norm / (sqrt(grad[0]) + 1e-6));
}
