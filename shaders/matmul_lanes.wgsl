// Products whose A' a subgroup of 8 invocations shares by broadcast, for CPU adapters whose
// subgroups are 8 lanes of one SIMD register (lavapipe). This file is appended to matmul.wgsl
// (its parameters, bindings, texel copies and stores) in a module of its own, built only on
// adapters with subgroups: a module using subgroup operations fails to build elsewhere.
//   matmul_lanes_32x8  each invocation computes 32 rows × 8 columns of y;
//   matmul_lanes_32x4  32 rows × 4 columns (half the accumulators, the same fetches of A').
// A workgroup is one row of invocations, so the 8 of a subgroup share gid.y (and gid.z): their
// 32 rows, and A (also where the batch runs on along the columns: see FOLDED_BATCH). Per step
// of 4 k, each fetches one texel of A' per 8 rows and broadcasts it to the other seven, then
// fetches its own columns of B'. The tile kernels fetch every value of A' an invocation uses;
// here each fetches one in eight, and a broadcast is one register shuffle where a texel fetch
// goes through the driver's sampling code.
// Subgroup operations need uniform control flow: every invocation runs the loop over k whole,
// those past the edges of y fetching clamped texels and storing nothing.

// The texel of A' the invocation at `lane` fetches for rows 8·row8 .. 8·row8 + 7 at the first
// step of k: row 8·row8 + lane at its 4 k, or with A stored transposed ([K, M]), 4 rows at
// k = lane / 2 (rows 0-3 of the eight from even lanes, 4-7 from odd ones). Rows past y's edge
// are clamped to its last.
fn lane_a_texel(base: u32, row8: u32, lane: u32) -> u32 {
    if (TRANS_A) {
        let row4 = min(row8 * 2u + (lane & 1u), p.m / 4u - 1u);
        return base + (lane >> 1u) * (p.m / 4u) + row4;
    }
    return base + min(row8 * 8u + lane, p.m - 1u) * (p.k / 4u);
}

// The texels between one step of k and the next in `lane_a_texel`'s order.
fn lane_a_step() -> u32 {
    return select(1u, p.m, TRANS_A);
}

// Rows 0-3 and 4-7 of the eight at this step's 4 k, from the texel each lane fetched, as
// `a_block` orients them (column r: row r's 4 values of k). The lane index of a broadcast must
// be a constant.
fn broadcast_rows(fetched: vec4f) -> array<mat4x4f, 2> {
    let l0 = subgroupBroadcast(fetched, 0u);
    let l1 = subgroupBroadcast(fetched, 1u);
    let l2 = subgroupBroadcast(fetched, 2u);
    let l3 = subgroupBroadcast(fetched, 3u);
    let l4 = subgroupBroadcast(fetched, 4u);
    let l5 = subgroupBroadcast(fetched, 5u);
    let l6 = subgroupBroadcast(fetched, 6u);
    let l7 = subgroupBroadcast(fetched, 7u);
    if (TRANS_A) {
        return array(transpose(mat4x4f(l0, l2, l4, l6)), transpose(mat4x4f(l1, l3, l5, l7)));
    }
    return array(mat4x4f(l0, l1, l2, l3), mat4x4f(l4, l5, l6, l7));
}

// 8 rows by one or two blocks of 4 columns: rows 0-3 (lo) and 4-7 (hi) of each, column r of a
// block being row r (as the tile kernels hold them).
struct Rows8 { lo0: mat4x4f, hi0: mat4x4f, lo1: mat4x4f, hi1: mat4x4f }

fn rows8_step(c: ptr<function, Rows8>, rows: array<mat4x4f, 2>, b0: mat4x4f, b1: mat4x4f, col_blocks: u32) {
    (*c).lo0 += b0 * rows[0];
    (*c).hi0 += b0 * rows[1];
    if (col_blocks == 2u) {
        (*c).lo1 += b1 * rows[0];
        (*c).hi1 += b1 * rows[1];
    }
}

fn rows8_store(row8: u32, first: ColBlock, second: ColBlock, c: Rows8, col_blocks: u32) {
    if (first.inside) {
        let base = first.z * p.stride_y / 4u;
        store_block(base, row8 * 2u, first.col4, c.lo0);
        store_block(base, row8 * 2u + 1u, first.col4, c.hi0);
    }
    if (col_blocks == 2u && second.inside) {
        let base = second.z * p.stride_y / 4u;
        store_block(base, row8 * 2u, second.col4, c.lo1);
        store_block(base, row8 * 2u + 1u, second.col4, c.hi1);
    }
}

// The samples whose columns one row of invocations runs through, where A is shared by the
// batch (0: none, gid.z counts the batch): column block c of the grid is then block c % (N/4)
// of sample c / (N/4), and a subgroup reaching the end of a sample's columns goes on into the
// next sample's instead of idling (a 196-column sample leaves 7 of 56 lanes idle otherwise).
override FOLDED_BATCH: u32 = 0u;

// A column block of an invocation: the plane of y it lies in (batch · slices + slice, as gid.z
// counts them without folding), its block there (clamped to the last), and whether it lies
// inside y at all.
struct ColBlock { z: u32, col4: u32, inside: bool }

fn col_block(z: u32, col4: u32) -> ColBlock {
    let per_plane = p.n / 4u;
    if (FOLDED_BATCH == 0u) {
        return ColBlock(z, min(col4, per_plane - 1u), col4 < per_plane);
    }
    let all = FOLDED_BATCH * per_plane;
    let clamped = min(col4, all - 1u);
    return ColBlock((clamped / per_plane) * max(p.slices, 1u) + z, clamped % per_plane, col4 < all);
}

// 32 rows (four blocks of 8) by `col_blocks` blocks of 4 columns per invocation.
fn lanes_product(gid: vec3u, lane: u32, col_blocks: u32) {
    let row8 = gid.y * 4u;
    let first = col_block(gid.z, gid.x * col_blocks);
    let second = col_block(gid.z, gid.x * col_blocks + col_blocks - 1u);
    // With the batch folded into the columns, A is shared (stride_a 0) and the two blocks may
    // lie in two samples' B.
    let base_a = batch_of(first.z) * p.stride_a / 4u;
    let base_b0 = batch_of(first.z) * p.stride_b / 4u;
    let base_b1 = batch_of(second.z) * p.stride_b / 4u;
    let a0 = lane_a_texel(base_a, row8, lane);
    let a1 = lane_a_texel(base_a, row8 + 1u, lane);
    let a2 = lane_a_texel(base_a, row8 + 2u, lane);
    let a3 = lane_a_texel(base_a, row8 + 3u, lane);
    let a_step = lane_a_step();
    var c0 = Rows8();
    var c1 = Rows8();
    var c2 = Rows8();
    var c3 = Rows8();
    let ks = k_range(first.z, p.k / 4u);
    for (var kq = ks.x; kq < ks.y; kq++) {
        let b0 = b_block_texels(base_b0, kq, first.col4);
        var b1 = b0;
        if (col_blocks == 2u) {
            b1 = b_block_texels(base_b1, kq, second.col4);
        }
        let at = kq * a_step;
        rows8_step(&c0, broadcast_rows(texel(a_texels, a0 + at)), b0, b1, col_blocks);
        rows8_step(&c1, broadcast_rows(texel(a_texels, a1 + at)), b0, b1, col_blocks);
        rows8_step(&c2, broadcast_rows(texel(a_texels, a2 + at)), b0, b1, col_blocks);
        rows8_step(&c3, broadcast_rows(texel(a_texels, a3 + at)), b0, b1, col_blocks);
    }
    rows8_store(row8, first, second, c0, col_blocks);
    rows8_store(row8 + 1u, first, second, c1, col_blocks);
    rows8_store(row8 + 2u, first, second, c2, col_blocks);
    rows8_store(row8 + 3u, first, second, c3, col_blocks);
}

// Subgroup built-ins need a one-dimensional workgroup.
@compute @workgroup_size(WORKGROUP_X)
fn matmul_lanes_32x8(@builtin(global_invocation_id) gid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
    lanes_product(gid, lane, 2u);
}

@compute @workgroup_size(WORKGROUP_X)
fn matmul_lanes_32x4(@builtin(global_invocation_id) gid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
    lanes_product(gid, lane, 1u);
}
