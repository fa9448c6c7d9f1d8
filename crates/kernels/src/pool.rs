use bytemuck::{Pod, Zeroable};
use kiln_core::{Pool2d, PoolKind, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, POOL, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "max_pool2d",
    "min_pool2d",
    "avg_pool2d",
    "lp_pool2d",
    "max_pool2d_backward",
    "min_pool2d_backward",
    "avg_pool2d_backward",
    "lp_pool2d_backward",
    "pool2d_backward_tiled",
    "pool2d_2x2_x4",
    "pool2d_2x2_x2",
    "pool2d_backward_2x2_x4",
    "pool2d_backward_2x2_x2",
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    power: f32,
    _pad: [u32; 2],
}

/// The uniform, and pool.wgsl's override constants (the geometry: a pipeline per geometry).
fn params(pool: &Pool2d, x: &[usize], y: &[usize], n: usize) -> (Params, Vec<(&'static str, f64)>) {
    let (count_include_pad, power, kind) = match pool.kind {
        PoolKind::Max => (0, 1.0, 0),
        PoolKind::Min => (0, 1.0, 1),
        PoolKind::Avg { count_include_pad } => (usize::from(count_include_pad), 1.0, 2),
        PoolKind::Lp { p } => (0, p, 3),
    };
    let geometry = [
        ("H", x[2]),
        ("W", x[3]),
        ("OUT_H", y[2]),
        ("OUT_W", y[3]),
        ("K_H", pool.kernel[0]),
        ("K_W", pool.kernel[1]),
        ("STRIDE_H", pool.stride[0]),
        ("STRIDE_W", pool.stride[1]),
        ("PAD_H", pool.padding[0]),
        ("PAD_W", pool.padding[1]),
        ("COUNT_INCLUDE_PAD", count_include_pad),
        ("KIND", kind),
    ];
    let constants = geometry.into_iter().map(|(name, v)| (name, v as f64)).collect();
    (Params { n: n as u32, power, _pad: [0; 2] }, constants)
}

/// Loop passes of a scan over one window (its rows, and each row's columns).
fn window_passes(pool: &Pool2d) -> usize {
    let [kh, kw] = pool.kernel;
    kh + 1 + kh * (kw + 1)
}

/// Where the windows are max or min pooling's 2×2 of stride 2 tiling x, the width of the
/// vectors `pool2d_2x2_x4` / `_x2` and their gradients load: 4 (two windows per invocation)
/// where the rows are a multiple of 4 long, else 2.
fn vectors_of_2x2(pool: &Pool2d, x: &[usize]) -> Option<usize> {
    let extreme = matches!(pool.kind, PoolKind::Max | PoolKind::Min);
    (extreme && pool.kernel == [2, 2] && tiles(pool, x)).then(|| if x[3].is_multiple_of(4) { 4 } else { 2 })
}

/// `y = pool(x)`.
pub fn pool2d(gpu: &Gpu, pool: &Pool2d, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    crate::check_loops(gpu, pool.name(), window_passes(pool), &[x.shape])?;
    let vectors = vectors_of_2x2(pool, x.shape.dims());
    let (entry, n) = match vectors {
        Some(4) => ("pool2d_2x2_x4", y.shape.numel() / 2),
        Some(_) => ("pool2d_2x2_x2", y.shape.numel()),
        None => (pool.name(), y.shape.numel()),
    };
    let (params, constants) = params(pool, x.shape.dims(), y.shape.dims(), n);
    let launch = Launch {
        shader: POOL,
        entry,
        constants,
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, x.buffer), (4, y.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}

/// Whether the windows tile x exactly: every element in exactly one window.
fn tiles(pool: &Pool2d, x: &[usize]) -> bool {
    pool.stride == pool.kernel && pool.padding == [0, 0] && (0..2).all(|i| x[2 + i].is_multiple_of(pool.kernel[i]))
}

/// `dx` of the pooling, or with `relu` the ReLU's gradient at `x` of it (`pool2d_backward_relu`):
/// gathered from the windows over each element of x, or written window by window where the
/// windows tile x (from vector loads for 2×2 max or min pooling).
pub fn pool2d_backward(
    gpu: &Gpu,
    pool: &Pool2d,
    relu: bool,
    x: &B<'_>,
    y: &B<'_>,
    dy: &B<'_>,
    dx: &B<'_>,
) -> Result<Dispatch> {
    let tiled = tiles(pool, x.shape.dims());
    // Tiled: a window scanned twice (its extreme, then its gradient); else every window over
    // an element scanned (as many as fit in a kernel row and column, stride apart).
    let [rows, cols] = [0, 1].map(|i| pool.kernel[i].div_ceil(pool.stride[i]));
    let passes =
        if tiled { 2 * window_passes(pool) } else { rows + 1 + rows * (cols + 1 + cols * window_passes(pool)) };
    crate::check_loops(gpu, pool.backward_name(), passes, &[x.shape])?;
    let vectors = vectors_of_2x2(pool, x.shape.dims());
    let (entry, n) = match (vectors, tiled) {
        (Some(4), _) => ("pool2d_backward_2x2_x4", y.shape.numel() / 2),
        (Some(_), _) => ("pool2d_backward_2x2_x2", y.shape.numel()),
        (None, true) => ("pool2d_backward_tiled", y.shape.numel()),
        (None, false) => (pool.backward_name(), dx.shape.numel()),
    };
    let (params, mut constants) = params(pool, x.shape.dims(), y.shape.dims(), n);
    constants.push(("RELU", f64::from(u8::from(relu))));
    // The 2×2 kernels find each window's extreme again from x: they take no y.
    let bindings = match vectors {
        Some(_) => vec![(1, x.buffer), (3, dy.buffer), (4, dx.buffer)],
        None => vec![(1, x.buffer), (2, y.buffer), (3, dy.buffer), (4, dx.buffer)],
    };
    let launch = Launch {
        shader: POOL,
        entry,
        constants,
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
