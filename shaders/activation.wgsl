// Pointwise activations and their gradients, one invocation per element.
//   relu:    y = max(x, 0)           relu_backward(x, dy):    dx = dy·[x > 0]
//   sigmoid: y = 1 / (1 + e^-x)      sigmoid_backward(y, dy): dx = dy·y·(1 - y)
//   tanh:    y = tanh(x)             tanh_backward(y, dy):    dx = dy·(1 - y²)
// Bindings: 0 params, 1 x (the saved forward tensor in backward), 2 dy, 3 out.
// The grid is folded over y past 65535 workgroups; `flat` recovers the element index.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
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

// Stable on both sides: e^-|x| never overflows.
@compute @workgroup_size(64)
fn sigmoid(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let e = exp(-abs(x[i]));
    out[i] = select(e / (1.0 + e), 1.0 / (1.0 + e), x[i] >= 0.0);
}

@compute @workgroup_size(64)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * x[i] * (1.0 - x[i]);
}

// tanh saturates to ±1 in f32 beyond |x| = 10; clamping keeps drivers' exp-based tanh finite.
@compute @workgroup_size(64)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = tanh(clamp(x[i], -10.0, 10.0));
}

@compute @workgroup_size(64)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    out[i] = dy[i] * (1.0 - x[i] * x[i]);
}
