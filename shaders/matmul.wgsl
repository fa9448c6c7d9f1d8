// Batched matrix product  y[b] = A'[b] · B'[b],  A' = op(A) is [M,K], B' = op(B) is [K,N].
// TRANS_A: A is stored [K,M]; TRANS_B: B is stored [N,K] (the backward products, without
// materialising transposes). Batch strides are 0 for a 2-D operand shared by every batch.
// Three kernels, the adapter's host code picks one:
//   matmul_naive  one output per invocation: the baseline the benchmarks compare against;
//   matmul        any shape: each invocation computes a 4×4 block of y from scalar loads;
//   matmul_vec4   M, K and N multiples of 4: the same block from 4-wide loads, as mat4x4 FMAs;
//   matmul_vec4_16x16  the same with a 16×16 tile per invocation, for CPU adapters.
// Register blocking wins on lavapipe (a workgroup runs on one CPU thread, barriers are
// coroutine switches), where shared-memory tiling measured slower than the naive kernel.
// Bindings: 0 params, 1 a, 2 b, 3 y (as f32 or vec4 arrays).

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// The workgroup's shape, chosen by the host to fit the output's tiles (a [64, 12544] product
// has four rows of 16×16 tiles: 16×4 invocations, not 8×8 with half of them idle) and lowered
// for small outputs so every core gets work.
override WORKGROUP_X: u32 = 8u;
override WORKGROUP_Y: u32 = 8u;


struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad0: u32,
    stride_a: u32,
    stride_b: u32,
    stride_y: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4f>;

fn a_at(base: u32, row: u32, k: u32) -> f32 {
    if (TRANS_A) { return a[base + k * p.m + row]; }
    return a[base + row * p.k + k];
}

fn b_at(base: u32, k: u32, col: u32) -> f32 {
    if (TRANS_B) { return b[base + col * p.k + k]; }
    return b[base + k * p.n + col];
}

@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3u) {
    let col = gid.x;
    let row = gid.y;
    if (row >= p.m || col >= p.n) { return; }
    let base_a = gid.z * p.stride_a;
    let base_b = gid.z * p.stride_b;
    var acc = 0.0;
    for (var k = 0u; k < p.k; k++) {
        acc += a_at(base_a, row, k) * b_at(base_b, k, col);
    }
    y[gid.z * p.stride_y + row * p.n + col] = acc;
}

// Edge indices are clamped so the inner loop has no branches; only valid outputs are stored.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul(@builtin(global_invocation_id) gid: vec3u) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) { return; }
    let rows = min(vec4u(row0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.m - 1u));
    let cols = min(vec4u(col0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.n - 1u));
    let base_a = gid.z * p.stride_a;
    let base_b = gid.z * p.stride_b;
    var c0 = vec4f(0.0);
    var c1 = vec4f(0.0);
    var c2 = vec4f(0.0);
    var c3 = vec4f(0.0);
    for (var k = 0u; k < p.k; k++) {
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
                y[base_y + (row0 + i) * p.n + col0 + j] = block[i][j];
            }
        }
    }
}

// B'[k0..k0+4, col0..col0+4] as a matrix whose column k is row k0+k of B' (4 columns of y).
fn b_block(base: u32, kq: u32, col4: u32) -> mat4x4f {
    if (TRANS_B) {
        let c = col4 * 4u;
        return transpose(mat4x4f(b4[base + c * (p.k / 4u) + kq], b4[base + (c + 1u) * (p.k / 4u) + kq],
                                 b4[base + (c + 2u) * (p.k / 4u) + kq], b4[base + (c + 3u) * (p.k / 4u) + kq]));
    }
    let k = kq * 4u;
    let nq = p.n / 4u;
    return mat4x4f(b4[base + k * nq + col4], b4[base + (k + 1u) * nq + col4],
                   b4[base + (k + 2u) * nq + col4], b4[base + (k + 3u) * nq + col4]);
}

// A'[row0..row0+4, k0..k0+4] as a matrix whose column i is row row0+i of A' (4 values of k).
fn a_block(base: u32, row4: u32, kq: u32) -> mat4x4f {
    if (TRANS_A) {
        let k = kq * 4u;
        let mq = p.m / 4u;
        return transpose(mat4x4f(a4[base + k * mq + row4], a4[base + (k + 1u) * mq + row4],
                                 a4[base + (k + 2u) * mq + row4], a4[base + (k + 3u) * mq + row4]));
    }
    let r = row4 * 4u;
    let kn = p.k / 4u;
    return mat4x4f(a4[base + r * kn + kq], a4[base + (r + 1u) * kn + kq],
                   a4[base + (r + 2u) * kn + kq], a4[base + (r + 3u) * kn + kq]);
}

// Stores a 4×4 block whose column r is row r of the block (as the accumulators hold it),
// unless the block lies past the edge of y.
fn store_block(base: u32, row4: u32, col4: u32, block: mat4x4f) {
    let nq = p.n / 4u;
    if (row4 >= p.m / 4u || col4 >= nq) { return; }
    let at = base + row4 * 4u * nq + col4;
    y4[at] = block[0];
    y4[at + nq] = block[1];
    y4[at + 2u * nq] = block[2];
    y4[at + 3u * nq] = block[3];
}

// One 4×4 block of y per invocation, accumulated as a mat4x4 product (`b · a`: column r is
// row r of the block): many light invocations, what real GPUs want.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_vec4(@builtin(global_invocation_id) gid: vec3u) {
    let row4 = gid.y;
    let col4 = gid.x;
    if (row4 >= p.m / 4u || col4 >= p.n / 4u) { return; }
    let base_a = gid.z * p.stride_a / 4u;
    let base_b = gid.z * p.stride_b / 4u;
    var c = mat4x4f();
    for (var kq = 0u; kq < p.k / 4u; kq++) {
        c += b_block(base_b, kq, col4) * a_block(base_a, row4, kq);
    }
    store_block(gid.z * p.stride_y / 4u, row4, col4, c);
}

// A 16×16 tile of y per invocation: 4×4 blocks as above, sixteen accumulators sharing each
// load four times. On lavapipe, where an invocation is a SIMD lane of one CPU thread, this
// heavy register blocking measured 3.3× the 4×4 block. Edge blocks are clamped on load and
// skipped on store.
@compute @workgroup_size(WORKGROUP_X, WORKGROUP_Y)
fn matmul_vec4_16x16(@builtin(global_invocation_id) gid: vec3u) {
    let row4 = gid.y * 4u;
    let col4 = gid.x * 4u;
    let mq = p.m / 4u;
    let nq = p.n / 4u;
    if (row4 >= mq || col4 >= nq) { return; }
    let base_a = gid.z * p.stride_a / 4u;
    let base_b = gid.z * p.stride_b / 4u;
    var c00 = mat4x4f(); var c01 = mat4x4f(); var c02 = mat4x4f(); var c03 = mat4x4f();
    var c10 = mat4x4f(); var c11 = mat4x4f(); var c12 = mat4x4f(); var c13 = mat4x4f();
    var c20 = mat4x4f(); var c21 = mat4x4f(); var c22 = mat4x4f(); var c23 = mat4x4f();
    var c30 = mat4x4f(); var c31 = mat4x4f(); var c32 = mat4x4f(); var c33 = mat4x4f();
    for (var kq = 0u; kq < p.k / 4u; kq++) {
        let a0 = a_block(base_a, min(row4 + 0u, mq - 1u), kq);
        let a1 = a_block(base_a, min(row4 + 1u, mq - 1u), kq);
        let a2 = a_block(base_a, min(row4 + 2u, mq - 1u), kq);
        let a3 = a_block(base_a, min(row4 + 3u, mq - 1u), kq);
        let b0 = b_block(base_b, kq, min(col4 + 0u, nq - 1u));
        let b1 = b_block(base_b, kq, min(col4 + 1u, nq - 1u));
        let b2 = b_block(base_b, kq, min(col4 + 2u, nq - 1u));
        let b3 = b_block(base_b, kq, min(col4 + 3u, nq - 1u));
        c00 += b0 * a0; c01 += b1 * a0; c02 += b2 * a0; c03 += b3 * a0;
        c10 += b0 * a1; c11 += b1 * a1; c12 += b2 * a1; c13 += b3 * a1;
        c20 += b0 * a2; c21 += b1 * a2; c22 += b2 * a2; c23 += b3 * a2;
        c30 += b0 * a3; c31 += b1 * a3; c32 += b2 * a3; c33 += b3 * a3;
    }
    let base_y = gid.z * p.stride_y / 4u;
    store_block(base_y, row4 + 0u, col4 + 0u, c00);
    store_block(base_y, row4 + 0u, col4 + 1u, c01);
    store_block(base_y, row4 + 0u, col4 + 2u, c02);
    store_block(base_y, row4 + 0u, col4 + 3u, c03);
    store_block(base_y, row4 + 1u, col4 + 0u, c10);
    store_block(base_y, row4 + 1u, col4 + 1u, c11);
    store_block(base_y, row4 + 1u, col4 + 2u, c12);
    store_block(base_y, row4 + 1u, col4 + 3u, c13);
    store_block(base_y, row4 + 2u, col4 + 0u, c20);
    store_block(base_y, row4 + 2u, col4 + 1u, c21);
    store_block(base_y, row4 + 2u, col4 + 2u, c22);
    store_block(base_y, row4 + 2u, col4 + 3u, c23);
    store_block(base_y, row4 + 3u, col4 + 0u, c30);
    store_block(base_y, row4 + 3u, col4 + 1u, c31);
    store_block(base_y, row4 + 3u, col4 + 2u, c32);
    store_block(base_y, row4 + 3u, col4 + 3u, c33);
}
