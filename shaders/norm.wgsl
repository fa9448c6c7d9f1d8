// Batch and layer normalisation and their gradients. Statistics are (mean, biased variance),
// x̂ = (x - mean)·σ⁻¹ with σ⁻¹ = 1/√(var + eps).
// Batch norm over x [N,C,…], per channel c (INNER elements per sample, `count` = N·INNER):
//   batch_norm_stats:            stats [2,C] = (mean, var), one workgroup per channel, two passes
//   batch_norm:                  y = γ_c·x̂ + β_c, from per-channel coefficients (below)
//   batch_norm_backward_reduce:  sums [2,C] = (Σ dy, Σ dy·x̂), one workgroup per channel
//   batch_norm_backward_input:   dx = γ_c·σ⁻¹·(dy - Σdy/count - x̂·Σdy·x̂/count)  (training)
//                                dx = γ_c·σ⁻¹·dy                           (running statistics)
//                                likewise from per-channel coefficients
//   batch_norm_running_update:   r ← (1-m)·r + m·(mean, var·unbiased), in place
// Layer norm over the last axis of x (CHANNELS = D features, `count` = rows):
//   layer_norm_stats:            stats [R,2] = (mean, var), one invocation per row
//   layer_norm:                  y = γ_d·x̂ + β_d
//   layer_norm_backward_input:   with g = γ·dy: dx = σ⁻¹·(g - mean(g) - x̂·mean(g·x̂)), per row
//   layer_norm_backward_params:  sums [2,D] = (Σ dy, Σ dy·x̂) over rows, one workgroup per feature
// Bindings: 0 params, 1 x, 2 stats, 3 gamma, 4 beta, 5 dy, 6 sums, 7 out, 8 coefficients.

// The layout, fixed per pipeline (Mesa's CPU drivers divide by a runtime value one lane at a
// time, by a constant with a few vector multiplications).
override CHANNELS: u32;
override INNER: u32;

struct Params {
    n: u32,
    count: u32,
    eps: f32,
    momentum: f32,
    training: u32,
    unbiased: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read> sums: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(8) var<storage, read> coefficients: array<vec4f>;

var<workgroup> partial: array<vec2f, 64>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// The sums of every invocation's `v`, given to all of them.
fn workgroup_sum(v: vec2f, lid: u32) -> vec2f {
    partial[lid] = v;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// The elements of a channel that invocation `lid` visits, k = lid, lid + 64, …, as digits
// (sample, position) = (k / INNER, k % INNER), advanced by the digits of 64 rather than
// divided out for every element (lavapipe scalarises integer division).
fn first_digits(lid: u32) -> vec2u {
    return vec2u(lid / INNER, lid % INNER);
}

// The digits of 64, computed once per loop rather than per element.
fn digit_step() -> vec2u {
    return vec2u(64u / INNER, 64u % INNER);
}

fn next_digits(digits: vec2u, step: vec2u) -> vec2u {
    var next = digits + step;
    if (next.y >= INNER) {
        next = vec2u(next.x + 1u, next.y - INNER);
    }
    return next;
}

// Flat index of the element of channel c at `digits`.
fn channel_element(c: u32, digits: vec2u) -> u32 {
    return (digits.x * CHANNELS + c) * INNER + digits.y;
}

fn inv_std(var_: f32) -> f32 {
    return inverseSqrt(var_ + p.eps);
}

@compute @workgroup_size(64)
fn batch_norm_stats(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let step = digit_step();
    var acc = vec2f(0.0);
    var at = first_digits(lid);
    for (var k = lid; k < p.count; k += 64u) {
        acc.x += x[channel_element(c, at)];
        at = next_digits(at, step);
    }
    let mean = workgroup_sum(acc, lid).x / f32(p.count);
    acc = vec2f(0.0);
    at = first_digits(lid);
    for (var k = lid; k < p.count; k += 64u) {
        let d = x[channel_element(c, at)] - mean;
        acc.x += d * d;
        at = next_digits(at, step);
    }
    let var_ = workgroup_sum(acc, lid).x / f32(p.count);
    if (lid == 0u) {
        out[c] = mean;
        out[CHANNELS + c] = var_;
    }
}

// Batch norm and its input gradient as one vec4 of coefficients per channel (computed first,
// one invocation per channel, into `out`), so that each element loads one vec4 besides its x
// and dy rather than five or seven scalars:
//   batch_norm_coefficients:           (mean, s, β, 0) with s = γ·σ⁻¹
//   batch_norm_backward_coefficients:  (mean, s, s·Σdy/count, s·σ⁻¹·Σdy·x̂/count) in training,
//                                      (mean, s, 0, 0) with running statistics
@compute @workgroup_size(64)
fn batch_norm_coefficients(@builtin(global_invocation_id) gid: vec3u) {
    let c = gid.x;
    if (c >= CHANNELS) { return; }
    out4[c] = vec4f(stats[c], gamma[c] * inv_std(stats[CHANNELS + c]), beta[c], 0.0);
}

@compute @workgroup_size(64)
fn batch_norm_backward_coefficients(@builtin(global_invocation_id) gid: vec3u) {
    let c = gid.x;
    if (c >= CHANNELS) { return; }
    let r = inv_std(stats[CHANNELS + c]);
    let s = gamma[c] * r;
    let m = f32(p.count);
    let centring = select(vec2f(0.0), vec2f(s * sums[c] / m, s * r * sums[CHANNELS + c] / m), p.training != 0u);
    out4[c] = vec4f(stats[c], s, centring);
}

@compute @workgroup_size(64)
fn batch_norm(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let k = coefficients[(i / INNER) % CHANNELS];
    out[i] = (x[i] - k.x) * k.y + k.z;
}

@compute @workgroup_size(64)
fn batch_norm_backward_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let step = digit_step();
    let mean = stats[c];
    let scale = inv_std(stats[CHANNELS + c]);
    var acc = vec2f(0.0);
    var at = first_digits(lid);
    for (var k = lid; k < p.count; k += 64u) {
        let i = channel_element(c, at);
        let g = dy[i];
        acc += vec2f(g, g * (x[i] - mean) * scale);
        at = next_digits(at, step);
    }
    let total = workgroup_sum(acc, lid);
    if (lid == 0u) {
        out[c] = total.x;
        out[CHANNELS + c] = total.y;
    }
}

@compute @workgroup_size(64)
fn batch_norm_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let k = coefficients[(i / INNER) % CHANNELS];
    out[i] = k.y * dy[i] - k.z - k.w * (x[i] - k.x);
}

@compute @workgroup_size(64)
fn batch_norm_running_update(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let batch = stats[i] * select(1.0, p.unbiased, i >= CHANNELS);
    out[i] = (1.0 - p.momentum) * out[i] + p.momentum * batch;
}

@compute @workgroup_size(64)
fn layer_norm_stats(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.count) { return; }
    let start = r * CHANNELS;
    var total = 0.0;
    for (var j = 0u; j < CHANNELS; j++) {
        total += x[start + j];
    }
    let mean = total / f32(CHANNELS);
    var squares = 0.0;
    for (var j = 0u; j < CHANNELS; j++) {
        let d = x[start + j] - mean;
        squares += d * d;
    }
    out[2u * r] = mean;
    out[2u * r + 1u] = squares / f32(CHANNELS);
}

fn layer_xhat(i: u32) -> f32 {
    let r = i / CHANNELS;
    return (x[i] - stats[2u * r]) * inv_std(stats[2u * r + 1u]);
}

@compute @workgroup_size(64)
fn layer_norm(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let d = i % CHANNELS;
    out[i] = gamma[d] * layer_xhat(i) + beta[d];
}

@compute @workgroup_size(64)
fn layer_norm_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.count) { return; }
    let start = r * CHANNELS;
    var means = vec2f(0.0);
    for (var j = 0u; j < CHANNELS; j++) {
        let g = gamma[j] * dy[start + j];
        means += vec2f(g, g * layer_xhat(start + j));
    }
    means /= f32(CHANNELS);
    let scale = inv_std(stats[2u * r + 1u]);
    for (var j = 0u; j < CHANNELS; j++) {
        let g = gamma[j] * dy[start + j];
        out[start + j] = scale * (g - means.x - layer_xhat(start + j) * means.y);
    }
}

// One workgroup per feature: 64 invocations stride over the rows.
@compute @workgroup_size(64)
fn layer_norm_backward_params(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
    let d = wid.x;
    var acc = vec2f(0.0);
    for (var r = lid; r < p.count; r += 64u) {
        let i = r * CHANNELS + d;
        acc += vec2f(dy[i], dy[i] * layer_xhat(i));
    }
    let total = workgroup_sum(acc, lid);
    if (lid == 0u) {
        out[d] = total.x;
        out[CHANNELS + d] = total.y;
    }
}
