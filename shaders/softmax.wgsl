// Softmax and log-softmax along one axis, and their gradients, one invocation per row.
// A tensor is viewed as [outer, len, inner]: row r = (o, i) holds x[o, 0..len, i], stride inner.
//   softmax:      y_j = e^(x_j - m) / Σ_k e^(x_k - m),  m = max_k x_k (never overflows)
//   log_softmax:  y_j = x_j - m - ln Σ_k e^(x_k - m)
//   softmax_backward(y, dy):      dx_j = y_j (dy_j - Σ_k dy_k y_k)
//   log_softmax_backward(y, dy):  dx_j = dy_j - e^(y_j) Σ_k dy_k
// A row longer than a CPU adapter's loop budget (Mesa ends an invocation's loops after 65,535
// passes) is cut into `chunks` chunks of `chunk` elements, in three dispatches:
//   softmax_chunks               per chunk, (max, Σ e^(x - max))
//   softmax_backward_chunks      per chunk, Σ dy·y;  log_softmax_backward_chunks: Σ dy
//   softmax_rows    per row, its chunks folded: with KIND 0 a running log-sum-exp (M, S), else
//                   a sum
//   *_apply         per element, from its row's statistics (stats[rows·chunks + row])
// The cross-entropy kernels of loss.wgsl read the same statistics.
// Bindings: 0 params, 1 x (y in backward), 2 dy, 3 out, 4 stats (vec2 per chunk, then per row).

struct Params {
    rows: u32,
    len: u32,
    inner: u32,
    _pad: u32,
}

// A long row's layout: rows of `len` elements (stride `inner`) cut into `chunks` chunks of
// `chunk` elements; `n` elements in all.
struct Chunked {
    rows: u32,
    len: u32,
    inner: u32,
    chunk: u32,
    chunks: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

// How softmax_rows folds a row's chunks: 0 a running log-sum-exp, else a sum.
override KIND: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(0) var<uniform> c: Chunked;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2f>;

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

// Element 0 of row r in a chunked layout.
fn chunked_row_start(r: u32) -> u32 {
    return (r / c.inner) * c.len * c.inner + r % c.inner;
}

// The chunk of elements invocation w covers: its row's first element, and the chunk's range.
struct ChunkAt { start: u32, first: u32, last: u32 }

fn chunk_at(w: u32) -> ChunkAt {
    let first = (w % c.chunks) * c.chunk;
    return ChunkAt(chunked_row_start(w / c.chunks), first, min(first + c.chunk, c.len));
}

@compute @workgroup_size(64)
fn softmax_chunks(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let w = flat(gid, groups);
    if (w >= c.rows * c.chunks) { return; }
    let k = chunk_at(w);
    var m = x[k.start + k.first * c.inner];
    for (var j = k.first + 1u; j < k.last; j++) {
        m = max(m, x[k.start + j * c.inner]);
    }
    var total = 0.0;
    for (var j = k.first; j < k.last; j++) {
        total += exp(x[k.start + j * c.inner] - m);
    }
    stats[w] = vec2f(m, total);
}

@compute @workgroup_size(64)
fn softmax_backward_chunks(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let w = flat(gid, groups);
    if (w >= c.rows * c.chunks) { return; }
    let k = chunk_at(w);
    var total = 0.0;
    for (var j = k.first; j < k.last; j++) {
        total += dy[k.start + j * c.inner] * x[k.start + j * c.inner];
    }
    stats[w] = vec2f(total, 0.0);
}

@compute @workgroup_size(64)
fn log_softmax_backward_chunks(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let w = flat(gid, groups);
    if (w >= c.rows * c.chunks) { return; }
    let k = chunk_at(w);
    var total = 0.0;
    for (var j = k.first; j < k.last; j++) {
        total += dy[k.start + j * c.inner];
    }
    stats[w] = vec2f(total, 0.0);
}

@compute @workgroup_size(64)
fn softmax_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let r = flat(gid, groups);
    if (r >= c.rows) { return; }
    var folded = stats[r * c.chunks];
    for (var k = 1u; k < c.chunks; k++) {
        let part = stats[r * c.chunks + k];
        if (KIND == 0u) {
            let m = max(folded.x, part.x);
            folded = vec2f(m, folded.y * exp(folded.x - m) + part.y * exp(part.x - m));
        } else {
            folded.x += part.x;
        }
    }
    stats[c.rows * c.chunks + r] = folded;
}

// The statistics of the row element e belongs to.
fn row_of(e: u32) -> vec2f {
    let r = (e / (c.len * c.inner)) * c.inner + e % c.inner;
    return stats[c.rows * c.chunks + r];
}

@compute @workgroup_size(64)
fn softmax_apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= c.n) { return; }
    let s = row_of(e);
    out[e] = exp(x[e] - s.x) / s.y;
}

@compute @workgroup_size(64)
fn log_softmax_apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= c.n) { return; }
    let s = row_of(e);
    out[e] = x[e] - s.x - log(s.y);
}

@compute @workgroup_size(64)
fn softmax_backward_apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= c.n) { return; }
    out[e] = x[e] * (dy[e] - row_of(e).x);
}

@compute @workgroup_size(64)
fn log_softmax_backward_apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= c.n) { return; }
    out[e] = dy[e] - exp(x[e]) * row_of(e).x;
}
