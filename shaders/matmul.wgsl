// Batched matrix product  y[b] = A'[b] · B'[b],  A' = op(A) is [M,K], B' = op(B) is [K,N].
// TRANS_A: A is stored [K,M]; TRANS_B: B is stored [N,K] (the backward products, without
// materialising transposes). Batch strides are 0 for a 2-D operand shared by every batch.
// Five kernels; the adapter's host code picks one. K may be cut into slices (gid.z then counts
// batch × slice), each summed into a partial product that matmul_sum_slices adds up: for speed
// (few tiles, long K on CPU adapters) or to keep every invocation's loop within the budget of
// Mesa's CPU drivers, which end a shader's loops after 65,535 passes in all.
//   matmul_naive  one output per invocation: the baseline the benchmarks compare against;
//   matmul        any shape: each invocation computes a 4×4 block of y from scalar loads;
//   matmul_vec4   M, K and N multiples of 4: the same block from 4-wide loads, as mat4x4 FMAs;
//   matmul_vec4_16x16  the same with a 16×16 tile per invocation, for CPU adapters;
//   matmul_texels_16x16  the same reading A and B from texel copies, for CPU adapters;
//   matmul_vec4_8x8, matmul_texels_8x8  8×8 tiles: a quarter of the accumulators;
//   matmul_workgroup  any shape: a 64×64 tile per workgroup of 16×16 invocations, operands
//     staged through workgroup memory 16 k at a time (for discrete GPUs);
//   matmul_lanes_32x8, matmul_lanes_32x4  (matmul_lanes.wgsl, appended to this file where the
//     adapter has subgroups) A' shared across a subgroup by broadcast, for CPU adapters.
// Which of them runs is measured per adapter and shape (the host's tuner); every one computes
// the same product.
// Register blocking wins on lavapipe (a workgroup runs on one CPU thread, barriers are
// coroutine switches), where shared-memory tiling measured slower than the naive kernel.
// Every kernel stores through `finish`, which can add a bias per column of y and apply a ReLU
// (BIAS, RELU: a fused `linear` op), or a bias per row of each y[b] (ROW_BIAS: a convolution's
// per-sample products, y[n] = W · cols[n], whose rows are output channels), or keep the sum only where a tensor of y's shape is
// positive (RELU_MASK: ReLU's gradient there, a fused `matmul_relu_backward`), computed as the
// `add`, `relu` and `relu_backward` kernels compute them; with K split, the partial products
// store plain sums and matmul_sum_slices finishes them.
// Bindings: 0 params, 1 a, 2 b, 3 y (as f32 or vec4 arrays, a and b as textures for the texel
// kernel), 4 the bias, 5 the mask (another read-only buffer in the place of either when off).

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// The workgroup's shape, chosen by the host to fit the output's tiles (a [64, 12544] product
// has four rows of 16×16 tiles: 16×4 invocations, not 8×8 with half of them idle) and lowered
// for small outputs so every core gets work.
override WORKGROUP_X: u32 = 8u;
override WORKGROUP_Y: u32 = 8u;
override BIAS: bool = false;
override ROW_BIAS: bool = false;
override RELU: bool = false;
override RELU_MASK: bool = false;


struct Params {
    m: u32,
    n: u32,
    k: u32,
    // With K split: the steps of k each slice sums (a step is 4 k for the 4-wide kernels, one
    // for the scalar ones), and the slices per batch element (0 when K is whole).
    steps_per_slice: u32,
    stride_a: u32,
    stride_b: u32,
    stride_y: u32,
    slices: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> bias4: array<vec4f>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> mask4: array<vec4f>;

// The value stored for sum v at element at, row row and column col of y.
fn finish(v: f32, at: u32, row: u32, col: u32) -> f32 {
    var r = v;
    if (BIAS) { r = r + bias[col]; }
    if (ROW_BIAS) { r = r + bias[row]; }
    if (RELU) { r = max(r, 0.0); }
    if (RELU_MASK) { r = select(0.0, r, mask[at] > 0.0); }
    return r;
}

// The same for the vec4 at (row row, columns 4·col4 .. 4·col4 + 3).
fn finish4(v: vec4f, at: u32, row: u32, col4: u32) -> vec4f {
    var r = v;
    if (BIAS) { r = r + bias4[col4]; }
    // bias4: an entry point reads binding 4 through one type (M is a multiple of 4 here).
    if (ROW_BIAS) { r = r + vec4f(bias4[row / 4u][row % 4u]); }
    if (RELU) { r = max(r, vec4f(0.0)); }
    if (RELU_MASK) { r = select(vec4f(0.0), r, mask4[at] > vec4f(0.0)); }
    return r;
}

fn a_at(base: u32, row: u32, k: u32) -> f32 {
    if (TRANS_A) { return a[base + k * p.m + row]; }
    return a[base + row * p.k + k];
}

fn b_at(base: u32, k: u32, col: u32) -> f32 {
    if (TRANS_B) { return b[base + col * p.k + k]; }
    return b[base + k * p.n + col];
}

// The batch element gid.z computes (with K split, gid.z = batch · slices + slice).
fn batch_of(z: u32) -> u32 {
    return z / max(p.slices, 1u);
}

// The steps of k invocation z sums: all `steps`, or with K split, its slice of them (its
// partial product goes to slice z of y, which matmul_sum_slices adds up).
fn k_range(z: u32, steps: u32) -> vec2u {
    if (p.slices == 0u) { return vec2u(0u, steps); }
    let begin = (z % p.slices) * p.steps_per_slice;
    return vec2u(begin, min(begin + p.steps_per_slice, steps));
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3u) {
    let col = gid.x;
    let row = gid.y;
    if (row >= p.m || col >= p.n) { return; }
    let base_a = batch_of(gid.z) * p.stride_a;
    let base_b = batch_of(gid.z) * p.stride_b;
    var acc = 0.0;
    let ks = k_range(gid.z, p.k);
    for (var k = ks.x; k < ks.y; k++) {
        acc += a_at(base_a, row, k) * b_at(base_b, k, col);
    }
    let at = gid.z * p.stride_y + row * p.n + col;
    y[at] = finish(acc, at, row, col);
}

// Edge indices are clamped so the inner loop has no branches; only valid outputs are stored.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul(@builtin(global_invocation_id) gid: vec3u) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) { return; }
    let rows = min(vec4u(row0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.m - 1u));
    let cols = min(vec4u(col0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.n - 1u));
    let base_a = batch_of(gid.z) * p.stride_a;
    let base_b = batch_of(gid.z) * p.stride_b;
    var c0 = vec4f(0.0);
    var c1 = vec4f(0.0);
    var c2 = vec4f(0.0);
    var c3 = vec4f(0.0);
    let ks = k_range(gid.z, p.k);
    for (var k = ks.x; k < ks.y; k++) {
        let bk = vec4f(b_at(base_b, k, cols.x), b_at(base_b, k, cols.y), b_at(base_b, k, cols.z), b_at(base_b, k, cols.w));
        c0 += a_at(base_a, rows.x, k) * bk;
        c1 += a_at(base_a, rows.y, k) * bk;
        c2 += a_at(base_a, rows.z, k) * bk;
        c3 += a_at(base_a, rows.w, k) * bk;
    }
    let base_y = gid.z * p.stride_y;
    let block = array<vec4f, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (row0 + i < p.m && col0 + j < p.n) {
                let at = base_y + (row0 + i) * p.n + col0 + j;
                y[at] = finish(block[i][j], at, row0 + i, col0 + j);
            }
        }
    }
}

// The vec4 indices of B'[k0..k0+4, col0..col0+4] as stored: rows k0.. of B, or rows col0..
// of B when it is stored transposed.
fn b_quads(base: u32, kq: u32, col4: u32) -> vec4u {
    if (TRANS_B) { return base + (col4 * 4u + vec4u(0u, 1u, 2u, 3u)) * (p.k / 4u) + kq; }
    return base + (kq * 4u + vec4u(0u, 1u, 2u, 3u)) * (p.n / 4u) + col4;
}

// The vec4 indices of A'[row0..row0+4, k0..k0+4] as stored.
fn a_quads(base: u32, row4: u32, kq: u32) -> vec4u {
    if (TRANS_A) { return base + (kq * 4u + vec4u(0u, 1u, 2u, 3u)) * (p.m / 4u) + row4; }
    return base + (row4 * 4u + vec4u(0u, 1u, 2u, 3u)) * (p.k / 4u) + kq;
}

// B'[k0..k0+4, col0..col0+4] from its four stored vec4s, as a matrix whose column k is row
// k0+k of B' (4 columns of y).
fn b_oriented(q: mat4x4f) -> mat4x4f {
    if (TRANS_B) { return transpose(q); }
    return q;
}

// A'[row0..row0+4, k0..k0+4] from its four stored vec4s, as a matrix whose column i is row
// row0+i of A' (4 values of k).
fn a_oriented(q: mat4x4f) -> mat4x4f {
    if (TRANS_A) { return transpose(q); }
    return q;
}

fn b_block(base: u32, kq: u32, col4: u32) -> mat4x4f {
    let i = b_quads(base, kq, col4);
    return b_oriented(mat4x4f(b4[i.x], b4[i.y], b4[i.z], b4[i.w]));
}

fn a_block(base: u32, row4: u32, kq: u32) -> mat4x4f {
    let i = a_quads(base, row4, kq);
    return a_oriented(mat4x4f(a4[i.x], a4[i.y], a4[i.z], a4[i.w]));
}

// Stores a 4×4 block whose column r is row r of the block (as the accumulators hold it),
// unless the block lies past the edge of y.
fn store_block(base: u32, row4: u32, col4: u32, block: mat4x4f) {
    let nq = p.n / 4u;
    if (row4 >= p.m / 4u || col4 >= nq) { return; }
    let at = base + row4 * 4u * nq + col4;
    let row = row4 * 4u;
    y4[at] = finish4(block[0], at, row, col4);
    y4[at + nq] = finish4(block[1], at + nq, row + 1u, col4);
    y4[at + 2u * nq] = finish4(block[2], at + 2u * nq, row + 2u, col4);
    y4[at + 3u * nq] = finish4(block[3], at + 3u * nq, row + 3u, col4);
}

// One 4×4 block of y per invocation, accumulated as a mat4x4 product (`b · a`: column r is
// row r of the block): many light invocations, what real GPUs want.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_vec4(@builtin(global_invocation_id) gid: vec3u) {
    let row4 = gid.y;
    let col4 = gid.x;
    if (row4 >= p.m / 4u || col4 >= p.n / 4u) { return; }
    let base_a = batch_of(gid.z) * p.stride_a / 4u;
    let base_b = batch_of(gid.z) * p.stride_b / 4u;
    var c = mat4x4f();
    let ks = k_range(gid.z, p.k / 4u);
    for (var kq = ks.x; kq < ks.y; kq++) {
        c += b_block(base_b, kq, col4) * a_block(base_a, row4, kq);
    }
    store_block(gid.z * p.stride_y / 4u, row4, col4, c);
}

// A 16×16 tile of y: sixteen 4×4 blocks, each load shared four times. On lavapipe, where an
// invocation is a SIMD lane of one CPU thread, this heavy register blocking measured 3.3× the
// 4×4 block. (Named fields, not an array: an indexed array lands in memory there, 7× slower.)
struct Tile16 {
    c00: mat4x4f, c01: mat4x4f, c02: mat4x4f, c03: mat4x4f,
    c10: mat4x4f, c11: mat4x4f, c12: mat4x4f, c13: mat4x4f,
    c20: mat4x4f, c21: mat4x4f, c22: mat4x4f, c23: mat4x4f,
    c30: mat4x4f, c31: mat4x4f, c32: mat4x4f, c33: mat4x4f,
}

// The first row and column of 4×4 blocks of the tile an invocation computes, and the last
// ones of y: edge tiles are clamped on load and skipped on store.
struct TileAt { row4: u32, col4: u32, last_row4: u32, last_col4: u32 }

fn tile16_at(gid: vec3u) -> TileAt {
    return TileAt(gid.y * 4u, gid.x * 4u, p.m / 4u - 1u, p.n / 4u - 1u);
}

// The tile's i-th row and j-th column of blocks, clamped to y.
fn tile_row(t: TileAt, i: u32) -> u32 { return min(t.row4 + i, t.last_row4); }
fn tile_col(t: TileAt, j: u32) -> u32 { return min(t.col4 + j, t.last_col4); }

// One step of k: four blocks of A' (rows of the tile) times four of B' (its columns).
fn tile16_step(c: ptr<function, Tile16>, a0: mat4x4f, a1: mat4x4f, a2: mat4x4f, a3: mat4x4f,
               b0: mat4x4f, b1: mat4x4f, b2: mat4x4f, b3: mat4x4f) {
    (*c).c00 += b0 * a0; (*c).c01 += b1 * a0; (*c).c02 += b2 * a0; (*c).c03 += b3 * a0;
    (*c).c10 += b0 * a1; (*c).c11 += b1 * a1; (*c).c12 += b2 * a1; (*c).c13 += b3 * a1;
    (*c).c20 += b0 * a2; (*c).c21 += b1 * a2; (*c).c22 += b2 * a2; (*c).c23 += b3 * a2;
    (*c).c30 += b0 * a3; (*c).c31 += b1 * a3; (*c).c32 += b2 * a3; (*c).c33 += b3 * a3;
}

fn tile16_store(base: u32, t: TileAt, c: Tile16) {
    store_block(base, t.row4 + 0u, t.col4 + 0u, c.c00);
    store_block(base, t.row4 + 0u, t.col4 + 1u, c.c01);
    store_block(base, t.row4 + 0u, t.col4 + 2u, c.c02);
    store_block(base, t.row4 + 0u, t.col4 + 3u, c.c03);
    store_block(base, t.row4 + 1u, t.col4 + 0u, c.c10);
    store_block(base, t.row4 + 1u, t.col4 + 1u, c.c11);
    store_block(base, t.row4 + 1u, t.col4 + 2u, c.c12);
    store_block(base, t.row4 + 1u, t.col4 + 3u, c.c13);
    store_block(base, t.row4 + 2u, t.col4 + 0u, c.c20);
    store_block(base, t.row4 + 2u, t.col4 + 1u, c.c21);
    store_block(base, t.row4 + 2u, t.col4 + 2u, c.c22);
    store_block(base, t.row4 + 2u, t.col4 + 3u, c.c23);
    store_block(base, t.row4 + 3u, t.col4 + 0u, c.c30);
    store_block(base, t.row4 + 3u, t.col4 + 1u, c.c31);
    store_block(base, t.row4 + 3u, t.col4 + 2u, c.c32);
    store_block(base, t.row4 + 3u, t.col4 + 3u, c.c33);
}

// 16×16 tiles, A' and B' read from storage buffers.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_vec4_16x16(@builtin(global_invocation_id) gid: vec3u) {
    let t = tile16_at(gid);
    if (t.row4 > t.last_row4 || t.col4 > t.last_col4) { return; }
    let base_a = batch_of(gid.z) * p.stride_a / 4u;
    let base_b = batch_of(gid.z) * p.stride_b / 4u;
    var c = Tile16();
    let ks = k_range(gid.z, p.k / 4u);
    for (var kq = ks.x; kq < ks.y; kq++) {
        tile16_step(&c,
            a_block(base_a, tile_row(t, 0u), kq), a_block(base_a, tile_row(t, 1u), kq),
            a_block(base_a, tile_row(t, 2u), kq), a_block(base_a, tile_row(t, 3u), kq),
            b_block(base_b, kq, tile_col(t, 0u)), b_block(base_b, kq, tile_col(t, 1u)),
            b_block(base_b, kq, tile_col(t, 2u)), b_block(base_b, kq, tile_col(t, 3u)));
    }
    tile16_store(gid.z * p.stride_y / 4u, t, c);
}

// The texel copies of A and B (rgba32float, TEXELS_PER_ROW to a row), for CPU adapters: Mesa
// fetches texels with vector gathers but storage-buffer elements one lane at a time, and
// this kernel measured 5× the buffer one there (copies included).
override TEXELS_PER_ROW: u32 = 1024u;
@group(0) @binding(1) var a_texels: texture_2d<f32>;
@group(0) @binding(2) var b_texels: texture_2d<f32>;

fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
    return textureLoad(t, vec2u(i % TEXELS_PER_ROW, i / TEXELS_PER_ROW), 0);
}

fn b_block_texels(base: u32, kq: u32, col4: u32) -> mat4x4f {
    let i = b_quads(base, kq, col4);
    return b_oriented(mat4x4f(texel(b_texels, i.x), texel(b_texels, i.y), texel(b_texels, i.z), texel(b_texels, i.w)));
}

fn a_block_texels(base: u32, row4: u32, kq: u32) -> mat4x4f {
    let i = a_quads(base, row4, kq);
    return a_oriented(mat4x4f(texel(a_texels, i.x), texel(a_texels, i.y), texel(a_texels, i.z), texel(a_texels, i.w)));
}

// 16×16 tiles, A' and B' fetched from their texel copies.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_texels_16x16(@builtin(global_invocation_id) gid: vec3u) {
    let t = tile16_at(gid);
    if (t.row4 > t.last_row4 || t.col4 > t.last_col4) { return; }
    let base_a = batch_of(gid.z) * p.stride_a / 4u;
    let base_b = batch_of(gid.z) * p.stride_b / 4u;
    var c = Tile16();
    let ks = k_range(gid.z, p.k / 4u);
    for (var kq = ks.x; kq < ks.y; kq++) {
        tile16_step(&c,
            a_block_texels(base_a, tile_row(t, 0u), kq), a_block_texels(base_a, tile_row(t, 1u), kq),
            a_block_texels(base_a, tile_row(t, 2u), kq), a_block_texels(base_a, tile_row(t, 3u), kq),
            b_block_texels(base_b, kq, tile_col(t, 0u)), b_block_texels(base_b, kq, tile_col(t, 1u)),
            b_block_texels(base_b, kq, tile_col(t, 2u)), b_block_texels(base_b, kq, tile_col(t, 3u)));
    }
    tile16_store(gid.z * p.stride_y / 4u, t, c);
}

// An 8×8 tile of y: four 4×4 blocks, each load shared twice; a quarter of the 16×16 tile's
// accumulators (what spills there may not here).
struct Tile8 { c00: mat4x4f, c01: mat4x4f, c10: mat4x4f, c11: mat4x4f }

fn tile8_at(gid: vec3u) -> TileAt {
    return TileAt(gid.y * 2u, gid.x * 2u, p.m / 4u - 1u, p.n / 4u - 1u);
}

fn tile8_step(c: ptr<function, Tile8>, a0: mat4x4f, a1: mat4x4f, b0: mat4x4f, b1: mat4x4f) {
    (*c).c00 += b0 * a0; (*c).c01 += b1 * a0;
    (*c).c10 += b0 * a1; (*c).c11 += b1 * a1;
}

fn tile8_store(base: u32, t: TileAt, c: Tile8) {
    store_block(base, t.row4, t.col4, c.c00);
    store_block(base, t.row4, t.col4 + 1u, c.c01);
    store_block(base, t.row4 + 1u, t.col4, c.c10);
    store_block(base, t.row4 + 1u, t.col4 + 1u, c.c11);
}

// 8×8 tiles, A' and B' read from storage buffers.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_vec4_8x8(@builtin(global_invocation_id) gid: vec3u) {
    let t = tile8_at(gid);
    if (t.row4 > t.last_row4 || t.col4 > t.last_col4) { return; }
    let base_a = batch_of(gid.z) * p.stride_a / 4u;
    let base_b = batch_of(gid.z) * p.stride_b / 4u;
    var c = Tile8();
    let ks = k_range(gid.z, p.k / 4u);
    for (var kq = ks.x; kq < ks.y; kq++) {
        tile8_step(&c,
            a_block(base_a, tile_row(t, 0u), kq), a_block(base_a, tile_row(t, 1u), kq),
            b_block(base_b, kq, tile_col(t, 0u)), b_block(base_b, kq, tile_col(t, 1u)));
    }
    tile8_store(gid.z * p.stride_y / 4u, t, c);
}

// 8×8 tiles, A' and B' fetched from their texel copies.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_texels_8x8(@builtin(global_invocation_id) gid: vec3u) {
    let t = tile8_at(gid);
    if (t.row4 > t.last_row4 || t.col4 > t.last_col4) { return; }
    let base_a = batch_of(gid.z) * p.stride_a / 4u;
    let base_b = batch_of(gid.z) * p.stride_b / 4u;
    var c = Tile8();
    let ks = k_range(gid.z, p.k / 4u);
    for (var kq = ks.x; kq < ks.y; kq++) {
        tile8_step(&c,
            a_block_texels(base_a, tile_row(t, 0u), kq), a_block_texels(base_a, tile_row(t, 1u), kq),
            b_block_texels(base_b, kq, tile_col(t, 0u)), b_block_texels(base_b, kq, tile_col(t, 1u)));
    }
    tile8_store(gid.z * p.stride_y / 4u, t, c);
}

// The shared-memory kernel's tile: 64×64 outputs per workgroup of 16×16 invocations, 4×4
// each, over K staged 16 at a time (A' as [16 k][64 rows], B' as [16 k][64 cols]).
const WG_TILE: u32 = 64u;
const WG_K: u32 = 16u;
var<workgroup> a_stage: array<vec4f, 256>;
var<workgroup> b_stage: array<vec4f, 256>;

// A'[row, k] (0 past its edges).
fn a_or_zero(base: u32, row: u32, k: u32) -> f32 {
    if (row >= p.m || k >= p.k) { return 0.0; }
    return a_at(base, row, k);
}

// B'[k, col] (0 past its edges).
fn b_or_zero(base: u32, k: u32, col: u32) -> f32 {
    if (k >= p.k || col >= p.n) { return 0.0; }
    return b_at(base, k, col);
}

// Any shape. Each invocation stages one vec4 of A' (4 rows at one k) and one of B' (4 columns
// at one k) per step of 16 k, then accumulates its 4×4 block from workgroup memory. With K
// split, a step is 16 k and the slices count steps.
@compute @workgroup_size(16, 16)
fn matmul_workgroup(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                    @builtin(workgroup_id) wid: vec3u) {
    let base_a = batch_of(wid.z) * p.stride_a;
    let base_b = batch_of(wid.z) * p.stride_b;
    let row0 = wid.y * WG_TILE;
    let col0 = wid.x * WG_TILE;
    // The vec4 this invocation stages: k = local index / 16, 4 rows (columns) from 4 · (index % 16).
    let index = lid.y * 16u + lid.x;
    let stage_k = index / 16u;
    let stage_at = 4u * (index % 16u);
    var c0 = vec4f(0.0);
    var c1 = vec4f(0.0);
    var c2 = vec4f(0.0);
    var c3 = vec4f(0.0);
    let ks = k_range(wid.z, (p.k + WG_K - 1u) / WG_K);
    for (var s = ks.x; s < ks.y; s++) {
        let k = s * WG_K + stage_k;
        let r = row0 + stage_at;
        a_stage[index] = vec4f(a_or_zero(base_a, r, k), a_or_zero(base_a, r + 1u, k),
                               a_or_zero(base_a, r + 2u, k), a_or_zero(base_a, r + 3u, k));
        let n = col0 + stage_at;
        b_stage[index] = vec4f(b_or_zero(base_b, k, n), b_or_zero(base_b, k, n + 1u),
                               b_or_zero(base_b, k, n + 2u), b_or_zero(base_b, k, n + 3u));
        workgroupBarrier();
        for (var kk = 0u; kk < WG_K; kk++) {
            let av = a_stage[kk * 16u + lid.y];
            let bv = b_stage[kk * 16u + lid.x];
            c0 += av.x * bv;
            c1 += av.y * bv;
            c2 += av.z * bv;
            c3 += av.w * bv;
        }
        workgroupBarrier();
    }
    let row = row0 + 4u * lid.y;
    let col = col0 + 4u * lid.x;
    let base_y = wid.z * p.stride_y;
    let block = array<vec4f, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (row + i < p.m && col + j < p.n) {
                let at = base_y + (row + i) * p.n + col + j;
                y[at] = finish(block[i][j], at, row + i, col + j);
            }
        }
    }
}

// y[b] = Σ_s partial[b · slices + s] (bound as a) over the p.slices slices of each of the
// p.k batch elements of a split product, in order; scalar elements (N need not be a multiple
// of 4).
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_sum_slices(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let plane = p.m * p.n;
    let e = gid.y * groups.x * WORKGROUP_X + gid.x;
    if (e >= p.k * plane) { return; }
    let first = (e / plane) * p.slices * plane + e % plane;
    var acc = 0.0;
    for (var s = 0u; s < p.slices; s++) {
        acc += a[first + s * plane];
    }
    y[e] = finish(acc, e, (e / p.n) % p.m, e % p.n);
}

// The same for four adjacent elements from vec4 loads, where N is a multiple of 4.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_sum_slices_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let nq = p.n / 4u;
    let plane = p.m * nq;
    let q = gid.y * groups.x * WORKGROUP_X + gid.x;
    if (q >= p.k * plane) { return; }
    let first = (q / plane) * p.slices * plane + q % plane;
    var acc = vec4f(0.0);
    for (var s = 0u; s < p.slices; s++) {
        acc += a4[first + s * plane];
    }
    y4[q] = finish4(acc, q, (q / nq) % p.m, q % nq);
}
