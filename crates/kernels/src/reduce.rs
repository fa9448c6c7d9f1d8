use bytemuck::{Pod, Zeroable};
use kiln_core::{Reduce, Result, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, fold_workgroups};

use crate::{B, Launch, REDUCE, pack8};

pub const ENTRY_POINTS: &[&str] = &["sum", "sum_rows", "max_forward", "max_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

/// Sums of at most this many elements take one invocation each (`sum_rows`): a workgroup
/// per output would mostly idle and pay for its barriers (dearly on CPU adapters).
const SHORT_ROW: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_out: u32,
    n_red: u32,
    kept_rank: u32,
    red_rank: u32,
    scale: f32,
    planar: u32,
    _pad: [u32; 2],
    kept_shape: [u32; 8],
    kept_strides: [u32; 8],
    red_shape: [u32; 8],
    red_strides: [u32; 8],
}

/// `y = scale · Σ_axes x`, one workgroup per output element (or one invocation, when short).
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

    let (kept, red) = split_axes(dims, &r.axes);
    // At most two reduced axes (the common case: batch and image): the shader steps their
    // digits instead of dividing for every element, which Mesa's CPU drivers do slowly.
    let planar = red.len() <= 2;
    let red = if planar { [vec![(1, 0); 2 - red.len()], red].concat() } else { red };
    let rows = entry == "sum" && planar && n_red <= SHORT_ROW;
    let (entry, workgroups) = match rows {
        true => ("sum_rows", crate::grid_1d(gpu, n_out)),
        false => (entry, fold_workgroups(n_out as u32, gpu.limits().max_compute_workgroups_per_dimension)),
    };
    let column = |axes: &[Axis], i: usize| axes.iter().map(|a| [a.0, a.1][i]).collect::<Vec<_>>();
    let params = Params {
        n_out: n_out as u32,
        n_red: n_red as u32,
        kept_rank: kept.len() as u32,
        red_rank: red.len() as u32,
        scale: r.scale,
        planar: planar as u32,
        _pad: [0; 2],
        kept_shape: pack8(&column(&kept, 0)),
        kept_strides: pack8(&column(&kept, 1)),
        red_shape: pack8(&column(&red, 0)),
        red_strides: pack8(&column(&red, 1)),
    };
    let launch =
        Launch { shader: REDUCE, entry, constants: vec![], params: bytemuck::bytes_of(&params), bindings, workgroups };
    launch.build(gpu)
}

/// An axis of x as (size, stride).
type Axis = (usize, usize);

/// The kept and the reduced axes of a contiguous `dims`, neighbours of the same kind merged
/// into one axis (they are contiguous with each other).
fn split_axes(dims: &[usize], reduced: &[usize]) -> (Vec<Axis>, Vec<Axis>) {
    let strides = contiguous_strides(dims);
    let (mut kept, mut red): (Vec<Axis>, Vec<Axis>) = (vec![], vec![]);
    for d in 0..dims.len() {
        let is_reduced = reduced.contains(&d);
        let axes = if is_reduced { &mut red } else { &mut kept };
        match axes.last_mut() {
            Some(last) if d > 0 && reduced.contains(&(d - 1)) == is_reduced => {
                *last = (last.0 * dims[d], strides[d]);
            }
            _ => axes.push((dims[d], strides[d])),
        }
    }
    (kept, red)
}

#[cfg(test)]
mod tests {
    use super::split_axes;

    #[test]
    fn neighbouring_axes_of_a_kind_merge() {
        // [N, C, H, W] summed over N, H, W: the bias gradient of a convolution.
        let (kept, red) = split_axes(&[64, 32, 28, 28], &[0, 2, 3]);
        assert_eq!(kept, vec![(32, 784)]);
        assert_eq!(red, vec![(64, 25088), (784, 1)]);
        let (kept, red) = split_axes(&[2, 3, 4, 5, 6], &[1, 3]);
        assert_eq!(kept, vec![(2, 360), (4, 30), (6, 1)]);
        assert_eq!(red, vec![(3, 120), (5, 6)]);
        let (kept, red) = split_axes(&[7, 9], &[]);
        assert_eq!((kept, red), (vec![(63, 1)], vec![]));
    }
}
