// Softmax and log-softmax along one axis, and their gradients, one invocation per row.
// A tensor is viewed as [outer, len, inner]: row r = (o, i) holds x[o, 0..len, i], stride inner.
//   softmax:      y_j = e^(x_j - m) / Σ_k e^(x_k - m),  m = max_k x_k (never overflows)
//   log_softmax:  y_j = x_j - m - ln Σ_k e^(x_k - m)
//   softmax_backward(y, dy):      dx_j = y_j (dy_j - Σ_k dy_k y_k)
//   log_softmax_backward(y, dy):  dx_j = dy_j - e^(y_j) Σ_k dy_k
// Bindings: 0 params, 1 x (y in backward), 2 dy, 3 out.

struct Params {
    rows: u32,
    len: u32,
    inner: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Offset of element 0 of row r.
fn row_start(r: u32) -> u32 {
    return (r / p.inner) * p.len * p.inner + r % p.inner;
}

// (max, Σ e^(x - max)) of row r.
fn row_stats(start: u32) -> vec2f {
    var m = x[start];
    for (var j = 1u; j < p.len; j++) {
        m = max(m, x[start + j * p.inner]);
    }
    var total = 0.0;
    for (var j = 0u; j < p.len; j++) {
        total += exp(x[start + j * p.inner] - m);
    }
    return vec2f(m, total);
}

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.rows) { return; }
    let start = row_start(r);
    let stats = row_stats(start);
    for (var j = 0u; j < p.len; j++) {
        let at = start + j * p.inner;
        out[at] = exp(x[at] - stats.x) / stats.y;
    }
}

@compute @workgroup_size(64)
fn log_softmax(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.rows) { return; }
    let start = row_start(r);
    let stats = row_stats(start);
    let shift = stats.x + log(stats.y);
    for (var j = 0u; j < p.len; j++) {
        let at = start + j * p.inner;
        out[at] = x[at] - shift;
    }
}

@compute @workgroup_size(64)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.rows) { return; }
    let start = row_start(r);
    var dot = 0.0;
    for (var j = 0u; j < p.len; j++) {
        dot += dy[start + j * p.inner] * x[start + j * p.inner];
    }
    for (var j = 0u; j < p.len; j++) {
        let at = start + j * p.inner;
        out[at] = x[at] * (dy[at] - dot);
    }
}

@compute @workgroup_size(64)
fn log_softmax_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= p.rows) { return; }
    let start = row_start(r);
    var total = 0.0;
    for (var j = 0u; j < p.len; j++) {
        total += dy[start + j * p.inner];
    }
    for (var j = 0u; j < p.len; j++) {
        let at = start + j * p.inner;
        out[at] = dy[at] - exp(x[at]) * total;
    }
}
