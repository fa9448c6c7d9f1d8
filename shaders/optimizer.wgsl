// Optimizer updates, in place, one invocation per parameter element (PyTorch semantics).
//   sgd_step:  g = grad + wd·p;  buf = μ·buf + g;  p -= lr·buf         (dampening 0)
//   adam_step: g = grad + wd·p;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//              p -= lr · (m / c1) / (sqrt(v / c2) + eps),  c1 = 1 - β1^t, c2 = 1 - β2^t
// The bias corrections c1, c2 are computed on the host in f64 each step.
// Bindings: 0 params, 1 grad, then the state it updates: 2 param, 3 momentum_buf or m, 4 v.

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

@group(0) @binding(0) var<uniform> sgd: Sgd;
@group(0) @binding(0) var<uniform> adam: Adam;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> first: array<f32>;
@group(0) @binding(4) var<storage, read_write> second: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

@compute @workgroup_size(64)
fn sgd_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= sgd.n) { return; }
    let g = grad[i] + sgd.weight_decay * param[i];
    let buf = sgd.momentum * first[i] + g;
    first[i] = buf;
    param[i] = param[i] - sgd.lr * buf;
}

@compute @workgroup_size(64)
fn adam_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= adam.n) { return; }
    let g = grad[i] + adam.weight_decay * param[i];
    let m = adam.beta1 * first[i] + (1.0 - adam.beta1) * g;
    let v = adam.beta2 * second[i] + (1.0 - adam.beta2) * g * g;
    first[i] = m;
    second[i] = v;
    param[i] = param[i] - adam.lr * (m / adam.c1) / (sqrt(v / adam.c2) + adam.eps);
}
