// Losses and their gradients.
// Per sample, one invocation per row of [N, C] scores with i32 labels:
//   cross_entropy_per_sample:  loss_n = m + ln Σ_j e^(x_nj - m) - x_n[label_n],  m = max_j x_nj
//   cross_entropy_per_sample_backward(x, labels, dy):  dx_nj = dy_n (softmax(x_n)_j - [j = label_n])
//   nll_per_sample:            loss_n = -logp_n[label_n]
//   nll_per_sample_backward:   dx_nj = -dy_n [j = label_n]
// Subtracting the row maximum keeps logits of magnitude 1e4 finite. A label outside 0..C
// yields NaN rather than a plausible number (the executor refuses such labels when fed).
// Rows past a CPU adapter's loop budget take their (max, Σ e^(x - max)) from softmax.wgsl's
// chunked kernels (stats[stats_offset + n]): cross_entropy_from_stats per row,
// cross_entropy_backward_from_stats per element.
// Elementwise, one invocation per element of pred p and target t (`delta` for Huber):
//   l1_loss          |p - t|                                  ∂p = sign(p - t)
//   huber_loss       ½d² if |d| < δ else δ(|d| - ½δ)           ∂p = clamp(d, -δ, δ)
//   bce_loss         -(t ln p + (1-t) ln(1-p)), ln ≥ -100       ∂p = (p - t)/max(p(1-p), 1e-12)
//   bce_with_logits  max(p,0) - p·t + ln(1 + e^-|p|)           ∂p = σ(p) - t
//   hinge_loss       max(0, 1 - t·p)                          ∂p = -t where 1 - t·p > 0
//   kl_div           t(ln t - p), 0 where t = 0                ∂p = -t
// and ∂t: l1 -sign(d), huber -clamp(d), bce ln(1-p) - ln p, bce_with_logits -p,
// hinge -p where 1 - t·p > 0, kl_div ln t + 1 - p. Each `*_backward_*` returns dy·∂.
// Bindings: 0 params (rows, or elems), 1 scores / pred, 2 labels / target, 3 dy, 4 out,
// 5 row statistics.

struct Params {
    rows: u32,
    classes: u32,
    stats_offset: u32,
    _pad1: u32,
}

struct Elems {
    n: u32,
    delta: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(0) var<uniform> e: Elems;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<vec2f>;

const NAN_BITS: u32 = 0x7fc00000u;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// ln Σ_j e^(x_j) of the row starting at `start`.
fn logsumexp(start: u32) -> f32 {
    var m = scores[start];
    for (var j = 1u; j < p.classes; j++) {
        m = max(m, scores[start + j]);
    }
    var total = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        total += exp(scores[start + j] - m);
    }
    return m + log(total);
}

fn valid_label(label: i32) -> bool {
    return label >= 0 && u32(label) < p.classes;
}

// `v`, or NaN (never a plausible number) when `ok` is false.
fn nan_unless(ok: bool, v: f32) -> f32 {
    // Bits in a `var`: a constant expression may not be NaN (browsers' compilers refuse it).
    var bits = NAN_BITS;
    return select(bitcast<f32>(bits), v, ok);
}

@compute @workgroup_size(64)
fn cross_entropy_per_sample(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let n = flat(gid, groups);
    if (n >= p.rows) { return; }
    let label = labels[n];
    let start = n * p.classes;
    let picked = scores[start + u32(clamp(label, 0, i32(p.classes) - 1))];
    out[n] = nan_unless(valid_label(label), logsumexp(start) - picked);
}

@compute @workgroup_size(64)
fn cross_entropy_per_sample_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let n = flat(gid, groups);
    if (n >= p.rows) { return; }
    let start = n * p.classes;
    let lse = logsumexp(start);
    let label = labels[n];
    let g = nan_unless(valid_label(label), dy[n]);
    for (var j = 0u; j < p.classes; j++) {
        let onehot = select(0.0, 1.0, i32(j) == label);
        out[start + j] = g * (exp(scores[start + j] - lse) - onehot);
    }
}

@compute @workgroup_size(64)
fn nll_per_sample(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let n = flat(gid, groups);
    if (n >= p.rows) { return; }
    let label = labels[n];
    let picked = scores[n * p.classes + u32(clamp(label, 0, i32(p.classes) - 1))];
    out[n] = nan_unless(valid_label(label), -picked);
}

// One invocation per element.
@compute @workgroup_size(64)
fn nll_per_sample_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.rows * p.classes) { return; }
    let n = e / p.classes;
    let label = labels[n];
    out[e] = select(0.0, -nan_unless(valid_label(label), dy[n]), i32(e % p.classes) == label);
}

// ln Σ_j e^(x_nj) from row n's statistics.
fn logsumexp_of(n: u32) -> f32 {
    let s = stats[p.stats_offset + n];
    return s.x + log(s.y);
}

@compute @workgroup_size(64)
fn cross_entropy_from_stats(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let n = flat(gid, groups);
    if (n >= p.rows) { return; }
    let label = labels[n];
    let picked = scores[n * p.classes + u32(clamp(label, 0, i32(p.classes) - 1))];
    out[n] = nan_unless(valid_label(label), logsumexp_of(n) - picked);
}

// One invocation per element.
@compute @workgroup_size(64)
fn cross_entropy_backward_from_stats(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.rows * p.classes) { return; }
    let n = e / p.classes;
    let label = labels[n];
    let onehot = select(0.0, 1.0, i32(e % p.classes) == label);
    out[e] = nan_unless(valid_label(label), dy[n]) * (exp(scores[e] - logsumexp_of(n)) - onehot);
}

// ln v clamped at -100, as PyTorch's binary cross-entropy does.
fn clamped_ln(v: f32) -> f32 {
    return max(log(v), -100.0);
}

// ln(1 + z) without losing z when it is far below 1 (Goldberg's correction).
fn log1p_of(z: f32) -> f32 {
    let u = 1.0 + z;
    return select(log(u) * z / (u - 1.0), z, u == 1.0);
}

// (pred, target) of element i; every elementwise entry point binds both.
fn pair(i: u32) -> vec2f {
    return vec2f(scores[i], targets[i]);
}

fn huber_slope(d: f32) -> f32 {
    return clamp(d, -e.delta, e.delta);
}

@compute @workgroup_size(64)
fn l1_loss(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = abs(q.x - q.y);
}

@compute @workgroup_size(64)
fn l1_loss_backward_pred(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = dy[i] * sign(q.x - q.y);
}

@compute @workgroup_size(64)
fn l1_loss_backward_target(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = -dy[i] * sign(q.x - q.y);
}

@compute @workgroup_size(64)
fn huber_loss(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    let d = abs(q.x - q.y);
    out[i] = select(e.delta * (d - 0.5 * e.delta), 0.5 * d * d, d < e.delta);
}

@compute @workgroup_size(64)
fn huber_loss_backward_pred(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = dy[i] * huber_slope(q.x - q.y);
}

@compute @workgroup_size(64)
fn huber_loss_backward_target(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = -dy[i] * huber_slope(q.x - q.y);
}

@compute @workgroup_size(64)
fn bce_loss(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    let t = q.y;
    out[i] = -(t * clamped_ln(q.x) + (1.0 - t) * clamped_ln(1.0 - q.x));
}

@compute @workgroup_size(64)
fn bce_loss_backward_pred(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = dy[i] * (q.x - q.y) / max(q.x * (1.0 - q.x), 1e-12);
}

@compute @workgroup_size(64)
fn bce_loss_backward_target(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = dy[i] * (clamped_ln(1.0 - q.x) - clamped_ln(q.x));
}

@compute @workgroup_size(64)
fn bce_with_logits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    let x = q.x;
    out[i] = max(x, 0.0) - x * q.y + log1p_of(exp(-abs(x)));
}

@compute @workgroup_size(64)
fn bce_with_logits_backward_pred(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    let x = q.x;
    let z = exp(-abs(x));
    let sigmoid = select(z / (1.0 + z), 1.0 / (1.0 + z), x >= 0.0);
    out[i] = dy[i] * (sigmoid - q.y);
}

@compute @workgroup_size(64)
fn bce_with_logits_backward_target(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = -dy[i] * q.x;
}

@compute @workgroup_size(64)
fn hinge_loss(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = max(0.0, 1.0 - q.y * q.x);
}

@compute @workgroup_size(64)
fn hinge_loss_backward_pred(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = select(0.0, -dy[i] * q.y, 1.0 - q.y * q.x > 0.0);
}

@compute @workgroup_size(64)
fn hinge_loss_backward_target(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = select(0.0, -dy[i] * q.x, 1.0 - q.y * q.x > 0.0);
}

@compute @workgroup_size(64)
fn kl_div(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    let t = q.y;
    out[i] = select(0.0, t * (log(t) - q.x), t > 0.0);
}

@compute @workgroup_size(64)
fn kl_div_backward_pred(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = -dy[i] * q.y;
}

@compute @workgroup_size(64)
fn kl_div_backward_target(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= e.n) { return; }
    let q = pair(i);
    out[i] = dy[i] * (log(q.y) + 1.0 - q.x);
}
