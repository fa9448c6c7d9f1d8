use bytemuck::{Pod, Zeroable};
use kiln_core::{Reduce, Result, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, fold_workgroups};

use crate::{B, Launch, REDUCE, pack8};

pub const ENTRY_POINTS: &[&str] = &["sum", "max_forward", "max_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_out: u32,
    n_red: u32,
    kept_rank: u32,
    red_rank: u32,
    scale: f32,
    _pad: [u32; 3],
    kept_shape: [u32; 8],
    kept_strides: [u32; 8],
    red_shape: [u32; 8],
    red_strides: [u32; 8],
}

/// `y = scale · Σ_axes x`, one workgroup per output element.
pub fn sum(gpu: &Gpu, r: &Reduce, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    reduce(gpu, "sum", r, x, vec![(1, x.buffer), (2, y.buffer)], y.shape.numel())
}

/// `y = max_axes x`.
pub fn max(gpu: &Gpu, r: &Reduce, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    reduce(gpu, "max_forward", r, x, vec![(1, x.buffer), (2, y.buffer)], y.shape.numel())
}

/// `dx = dy/k` at the k elements of each reduction equal to its maximum `ymax`.
pub fn max_backward(gpu: &Gpu, r: &Reduce, x: &B<'_>, ymax: &B<'_>, dy: &B<'_>, dx: &B<'_>) -> Result<Dispatch> {
    let bindings = vec![(1, x.buffer), (2, dx.buffer), (3, ymax.buffer), (4, dy.buffer)];
    reduce(gpu, "max_backward", r, x, bindings, ymax.shape.numel())
}

fn reduce(
    gpu: &Gpu,
    entry: &'static str,
    r: &Reduce,
    x: &B<'_>,
    bindings: Vec<(u32, &GpuBuffer)>,
    n_out: usize,
) -> Result<Dispatch> {
    let dims = x.shape.dims();
    let n_red = x.shape.numel() / n_out.max(1);
    crate::check_loops(gpu, entry, 2 * n_red.div_ceil(64), &[x.shape])?;

    let strides = contiguous_strides(dims);
    let (red, kept): (Vec<usize>, Vec<usize>) = (0..dims.len()).partition(|d| r.axes.contains(d));
    let pick = |axes: &[usize], of: &[usize]| axes.iter().map(|&d| of[d]).collect::<Vec<_>>();
    let params = Params {
        n_out: n_out as u32,
        n_red: pick(&red, dims).iter().product::<usize>() as u32,
        kept_rank: kept.len() as u32,
        red_rank: red.len() as u32,
        scale: r.scale,
        _pad: [0; 3],
        kept_shape: pack8(&pick(&kept, dims)),
        kept_strides: pack8(&pick(&kept, &strides)),
        red_shape: pack8(&pick(&red, dims)),
        red_strides: pack8(&pick(&red, &strides)),
    };
    let launch = Launch {
        shader: REDUCE,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: fold_workgroups(n_out as u32, gpu.limits().max_compute_workgroups_per_dimension),
    };
    launch.build(gpu)
}
