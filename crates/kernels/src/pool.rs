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
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    out_h: u32,
    out_w: u32,
    k_h: u32,
    k_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    count_include_pad: u32,
    power: f32,
    kind: u32,
    _pad: [u32; 2],
}

fn params(pool: &Pool2d, x: &[usize], y: &[usize], n: usize) -> Params {
    let u = |v: usize| v as u32;
    let (count_include_pad, power, kind) = match pool.kind {
        PoolKind::Max => (0, 1.0, 0),
        PoolKind::Min => (0, 1.0, 1),
        PoolKind::Avg { count_include_pad } => (u32::from(count_include_pad), 1.0, 2),
        PoolKind::Lp { p } => (0, p, 3),
    };
    Params {
        n: u(n),
        h: u(x[2]),
        w: u(x[3]),
        out_h: u(y[2]),
        out_w: u(y[3]),
        k_h: u(pool.kernel[0]),
        k_w: u(pool.kernel[1]),
        stride_h: u(pool.stride[0]),
        stride_w: u(pool.stride[1]),
        pad_h: u(pool.padding[0]),
        pad_w: u(pool.padding[1]),
        count_include_pad,
        power,
        kind,
        _pad: [0; 2],
    }
}

/// `y = pool(x)`.
pub fn pool2d(gpu: &Gpu, pool: &Pool2d, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let n = y.shape.numel();
    let params = params(pool, x.shape.dims(), y.shape.dims(), n);
    let launch = Launch {
        shader: POOL,
        entry: pool.name(),
        constants: vec![],
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

/// `dx` gathered from the windows over each element of x, or written window by window where
/// the windows tile x.
pub fn pool2d_backward(gpu: &Gpu, pool: &Pool2d, x: &B<'_>, y: &B<'_>, dy: &B<'_>, dx: &B<'_>) -> Result<Dispatch> {
    let tiled = tiles(pool, x.shape.dims());
    let n = if tiled { y.shape.numel() } else { dx.shape.numel() };
    let params = params(pool, x.shape.dims(), y.shape.dims(), n);
    let launch = Launch {
        shader: POOL,
        entry: if tiled { "pool2d_backward_tiled" } else { pool.backward_name() },
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, x.buffer), (2, y.buffer), (3, dy.buffer), (4, dx.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
