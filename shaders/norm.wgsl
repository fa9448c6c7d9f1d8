// Batch and layer normalisation and their gradients. Statistics are (mean, biased variance),
// x̂ = (x - mean)·σ⁻¹ with σ⁻¹ = 1/√(var + eps).
// Batch norm over x [N,C,…], per channel c (`inner` elements per sample, `count` = N·inner):
//   batch_norm_stats:            stats [2,C] = (mean, var), one workgroup per channel, two passes
//   batch_norm:                  y = γ_c·x̂ + β_c
//   batch_norm_backward_reduce:  sums [2,C] = (Σ dy, Σ dy·x̂), one workgroup per channel
//   batch_norm_backward_input:   dx = γ_c·σ⁻¹·(dy - Σdy/count - x̂·Σdy·x̂/count)  (training)
//                                dx = γ_c·σ⁻¹·dy                           (running statistics)
//   batch_norm_running_update:   r ← (1-m)·r + m·(mean, var·unbiased), in place
// Layer norm over the last axis of x (`channels` = D features, `count` = rows):
//   layer_norm_stats:            stats [R,2] = (mean, var), one invocation per row
//   layer_norm:                  y = γ_d·x̂ + β_d
//   layer_norm_backward_input:   with g = γ·dy: dx = σ⁻¹·(g - mean(g) - x̂·mean(g·x̂)), per row
//   layer_norm_backward_params:  sums [2,D] = (Σ dy, Σ dy·x̂) over rows, one workgroup per feature
// Bindings: 0 params, 1 x, 2 stats, 3 gamma, 4 beta, 5 dy, 6 sums, 7 out.

struct Params {
    n: u32,
    channels: u32,
    inner: u32,
    count: u32,
    eps: f32,
    momentum: f32,
    training: u32,
    unbiased: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read> sums: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

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
// (sample, position) = (k / inner, k % inner), advanced by the digits of 64 rather than
// divided out for every element (lavapipe scalarises integer division).
fn first_digits(lid: u32) -> vec2u {
    return vec2u(lid / p.inner, lid % p.inner);
}

// The digits of 64, computed once per loop rather than per element.
fn digit_step() -> vec2u {
    return vec2u(64u / p.inner, 64u % p.inner);
}

fn next_digits(digits: vec2u, step: vec2u) -> vec2u {
    var next = digits + step;
    if (next.y >= p.inner) {
        next = vec2u(next.x + 1u, next.y - p.inner);
    }
    return next;
}

// Flat index of the element of channel c at `digits`.
fn channel_element(c: u32, digits: vec2u) -> u32 {
    return (digits.x * p.channels + c) * p.inner + digits.y;
}

fn inv_std(var_: f32) -> f32 {
    return inverseSqrt(var_ + p.eps);
}

// x̂ of element i of channel c.
fn batch_xhat(i: u32, c: u32) -> f32 {
    return (x[i] - stats[c]) * inv_std(stats[p.channels + c]);
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
        out[p.channels + c] = var_;
    }
}

@compute @workgroup_size(64)
fn batch_norm(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let c = (i / p.inner) % p.channels;
    out[i] = gamma[c] * batch_xhat(i, c) + beta[c];
}

@compute @workgroup_size(64)
fn batch_norm_backward_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let step = digit_step();
    var acc = vec2f(0.0);
    var at = first_digits(lid);
    for (var k = lid; k < p.count; k += 64u) {
        let i = channel_element(c, at);
        acc += vec2f(dy[i], dy[i] * batch_xhat(i, c));
        at = next_digits(at, step);
    }
    let total = workgroup_sum(acc, lid);
    if (lid == 0u) {
        out[c] = total.x;
        out[p.channels + c] = total.y;
    }
}

@compute @workgroup_size(64)
fn batch_norm_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let c = (i / p.inner) % p.channels;
    let scale = gamma[c] * inv_std(stats[p.channels + c]);
    let m = f32(p.count);
    let centred = dy[i] - sums[c] / m - batch_xhat(i, c) * sums[p.channels + c] / m;
    out[i] = scale * select(dy[i], centred, p.training != 0u);
}

@compute @workgroup_size(64)
fn batch_norm_running_update(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let batch = stats[i] * select(1.0, p.unbiased, i >= p.channels);
    out[i] = (1.0 - p.momentum) * out[i] + p.momentum * batch;
}

@compute @workgroup_size(64)
fn layer_norm_stats(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.count) { return; }
    let start = r * p.channels;
    var total = 0.0;
    for (var j = 0u; j < p.channels; j++) {
        total += x[start + j];
    }
    let mean = total / f32(p.channels);
    var squares = 0.0;
    for (var j = 0u; j < p.channels; j++) {
        let d = x[start + j] - mean;
        squares += d * d;
    }
    out[2u * r] = mean;
    out[2u * r + 1u] = squares / f32(p.channels);
}

fn layer_xhat(i: u32) -> f32 {
    let r = i / p.channels;
    return (x[i] - stats[2u * r]) * inv_std(stats[2u * r + 1u]);
}

@compute @workgroup_size(64)
fn layer_norm(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let i = flat(gid, groups);
    if (i >= p.n) { return; }
    let d = i % p.channels;
    out[i] = gamma[d] * layer_xhat(i) + beta[d];
}

@compute @workgroup_size(64)
fn layer_norm_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.count) { return; }
    let start = r * p.channels;
    var means = vec2f(0.0);
    for (var j = 0u; j < p.channels; j++) {
        let g = gamma[j] * dy[start + j];
        means += vec2f(g, g * layer_xhat(start + j));
    }
    means /= f32(p.channels);
    let scale = inv_std(stats[2u * r + 1u]);
    for (var j = 0u; j < p.channels; j++) {
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
        let i = r * p.channels + d;
        acc += vec2f(dy[i], dy[i] * layer_xhat(i));
    }
    let total = workgroup_sum(acc, lid);
    if (lid == 0u) {
        out[d] = total.x;
        out[p.channels + d] = total.y;
    }
}
