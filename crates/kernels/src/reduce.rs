use bytemuck::{Pod, Zeroable};
use kiln_core::{Reduce, Result, Shape, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, fold_workgroups};

use crate::{B, GpuKernel, Launch, REDUCE, pack8};

pub const ENTRY_POINTS: &[&str] = &[
    "sum",
    "sum_rows",
    "sum_rows_x4",
    "sum_quads",
    "max_forward",
    "max_backward",
    "max_backward_ties",
    "max_backward_chunks",
];
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
    chunk: u32,
    chunks: u32,
    kept_shape: [u32; 8],
    kept_strides: [u32; 8],
    red_shape: [u32; 8],
    red_strides: [u32; 8],
}

/// `y = scale · Σ_axes x`, one workgroup per output element (or one invocation, when short).
pub fn sum(gpu: &Gpu, r: &Reduce, x: &B<'_>, y: &B<'_>, scratch: &[&GpuBuffer]) -> Result<GpuKernel> {
    folded(gpu, "sum", r, x, y, scratch)
}

/// `y = max_axes x`.
pub fn max(gpu: &Gpu, r: &Reduce, x: &B<'_>, y: &B<'_>, scratch: &[&GpuBuffer]) -> Result<GpuKernel> {
    folded(gpu, "max_forward", r, x, y, scratch)
}

/// `dx = dy/k` at the k elements of each reduction equal to its maximum `ymax`: in one
/// dispatch, or with chunks, as tie counts per chunk (`scratch`: the counts, then their sums),
/// their sum per output, and each chunk's gradient.
pub fn max_backward(
    gpu: &Gpu,
    r: &Reduce,
    [x, ymax, dy]: [&B<'_>; 3],
    dx: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    let layout = Layout::of(gpu, "max_backward", r, x.shape, ymax.shape.numel());
    let Some((chunk, chunks)) = layout.chunking else {
        crate::check_loops(gpu, "max_backward", layout.passes(layout.n_red), &[x.shape])?;
        let bindings = vec![(1, x.buffer), (2, dx.buffer), (3, ymax.buffer), (4, dy.buffer)];
        return layout.dispatch(gpu, "max_backward", r.scale, bindings, None).map(GpuKernel::from);
    };
    let [counts, totals] = [scratch.first(), scratch.get(1)].map(|b| b.copied());
    let counts = crate::fits(counts, layout.partial_bytes().unwrap_or(0), "max_backward tie counts")?;
    let totals = crate::fits(totals, 4 * layout.n_out as u64, "max_backward ties")?;
    let bindings = vec![(1, x.buffer), (2, counts), (3, ymax.buffer)];
    let count = layout.dispatch(gpu, "max_backward_ties", 1.0, bindings, Some((chunk, chunks)))?;
    let counts_shape = Shape::new([layout.n_out, chunks]);
    let totals_shape = Shape::new([layout.n_out]);
    let fold = Reduce { axes: vec![1], keepdims: false, scale: 1.0 };
    let counts = B { buffer: counts, shape: &counts_shape, dtype: kiln_core::DType::F32 };
    let totals_bound = B { buffer: totals, shape: &totals_shape, dtype: kiln_core::DType::F32 };
    let summed = folded(gpu, "sum", &fold, &counts, &totals_bound, &[])?;
    let bindings = vec![(1, x.buffer), (2, dx.buffer), (3, ymax.buffer), (4, dy.buffer), (5, totals)];
    let write = layout.dispatch(gpu, "max_backward_chunks", 1.0, bindings, Some((chunk, chunks)))?;
    Ok(GpuKernel::new(vec![count]).then(summed).then(write))
}

/// The scratch of a sum, a maximum or its gradient: the partial results (and, for the
/// gradient, the tie counts per output) of a reduction cut into chunks.
pub fn scratch(gpu: &Gpu, entry: &str, r: &Reduce, x: &Shape, n_out: usize) -> Vec<u64> {
    let layout = Layout::of(gpu, entry, r, x, n_out);
    let totals = (entry == "max_backward").then_some(4 * n_out as u64);
    layout.partial_bytes().into_iter().chain(layout.partial_bytes().and(totals)).collect()
}

/// A sum or maximum: in one dispatch, or where a workgroup's loop would pass the adapter's
/// budget, as partial results over chunks (in `scratch`) and a second reduction of those.
fn folded(
    gpu: &Gpu,
    entry: &'static str,
    r: &Reduce,
    x: &B<'_>,
    y: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    let layout = Layout::of(gpu, entry, r, x.shape, y.shape.numel());
    let Some((chunk, chunks)) = layout.chunking else {
        crate::check_loops(gpu, entry, layout.passes(layout.n_red), &[x.shape])?;
        let (entry, scale) = (layout.entry(entry), r.scale);
        return layout.dispatch(gpu, entry, scale, vec![(1, x.buffer), (2, y.buffer)], None).map(GpuKernel::from);
    };
    let partial = crate::fits(scratch.first().copied(), layout.partial_bytes().unwrap_or(0), entry)?;
    let chunked = layout.dispatch(gpu, entry, 1.0, vec![(1, x.buffer), (2, partial)], Some((chunk, chunks)))?;
    let partial_shape = Shape::new([layout.n_out, chunks]);
    let fold = Reduce { axes: vec![1], keepdims: false, scale: r.scale };
    let partial = B { buffer: partial, shape: &partial_shape, dtype: kiln_core::DType::F32 };
    Ok(GpuKernel::new(vec![chunked]).then(folded(gpu, entry, &fold, &partial, y, &[])?))
}

/// How a reduction of x runs: its kept and reduced axes, and its chunks where a workgroup's
/// loop would pass the adapter's budget.
struct Layout {
    n_out: usize,
    n_red: usize,
    kept: Vec<Axis>,
    red: Vec<Axis>,
    planar: bool,
    /// Loop passes per reduced element a workgroup's invocation visits (its offset's steps).
    per_element: usize,
    chunking: Option<(usize, usize)>,
}

impl Layout {
    fn of(gpu: &Gpu, entry: &str, r: &Reduce, x: &Shape, n_out: usize) -> Self {
        let n_red = x.numel() / n_out.max(1);
        let (kept, red) = split_axes(x.dims(), &r.axes);
        // At most two reduced axes (the common case: batch and image): the shader steps their
        // digits instead of dividing for every element, which Mesa's CPU drivers do slowly.
        let planar = red.len() <= 2 && entry == "sum";
        let red = if red.len() <= 2 { [vec![(1, 0); 2 - red.len()], red].concat() } else { red };
        let offset_steps = |axes: &[Axis]| axes.len() + 1;
        let per_element = match (entry, planar) {
            ("sum", true) => 1,
            ("sum", false) => 1 + offset_steps(&red),
            // Its two loops each find every element's offset in x.
            ("max_backward", _) => 2 * (1 + offset_steps(&red) + offset_steps(&kept)),
            _ => 1 + offset_steps(&red) + offset_steps(&kept),
        };
        let mut layout = Layout { n_out, n_red, kept, red, planar, per_element, chunking: None };
        if let Some(budget) = crate::loop_budget(gpu)
            && layout.passes(n_red) > budget
            && !layout.rows()
        {
            let chunk = 64 * ((budget - layout.passes(0)) / per_element);
            layout.chunking = Some((chunk, n_red.div_ceil(chunk)));
        }
        layout
    }

    /// Loop passes of an invocation reducing `elements` elements 64 to a workgroup (or, for
    /// `sum_rows`, all of them): its strided loop, its output's offset and the tree.
    fn passes(&self, elements: usize) -> usize {
        let strided = if self.rows() { elements } else { elements.div_ceil(64) };
        strided * self.per_element + 1 + self.kept.len() + 1 + 7
    }

    /// Sums of at most `SHORT_ROW` elements over at most two axes take one invocation each.
    fn rows(&self) -> bool {
        self.planar && self.n_red <= SHORT_ROW
    }

    /// Whether a planar sum reads whole fours: its inner reduced axis contiguous and a multiple
    /// of 4 long, every other stride a multiple of 4 (`sum_quads`).
    fn quads(&self) -> bool {
        let strides = self.kept.iter().chain(&self.red[..1]).all(|&(_, stride)| stride.is_multiple_of(4));
        self.planar && self.red.len() == 2 && self.red[1].0.is_multiple_of(4) && self.red[1].1 == 1 && strides
    }

    /// Whether one-invocation sums can take four adjacent outputs at once: the innermost kept
    /// axis contiguous and a multiple of 4 long, every other stride a multiple of 4
    /// (`sum_rows_x4`).
    fn row_fours(&self) -> bool {
        let Some((&(extent, stride), outer)) = self.kept.split_last() else { return false };
        let strides = outer.iter().chain(&self.red).all(|&(_, stride)| stride.is_multiple_of(4));
        self.rows() && extent.is_multiple_of(4) && stride == 1 && strides
    }

    fn entry(&self, entry: &'static str) -> &'static str {
        match entry {
            "sum" if self.row_fours() => "sum_rows_x4",
            "sum" if self.rows() => "sum_rows",
            "sum" if self.quads() => "sum_quads",
            _ => entry,
        }
    }

    fn partial_bytes(&self) -> Option<u64> {
        self.chunking.map(|(_, chunks)| (4 * self.n_out * chunks) as u64)
    }

    fn dispatch(
        &self,
        gpu: &Gpu,
        entry: &'static str,
        scale: f32,
        bindings: Vec<(u32, &GpuBuffer)>,
        chunking: Option<(usize, usize)>,
    ) -> Result<Dispatch> {
        let (chunk, chunks) = chunking.unwrap_or((0, 0));
        let groups = self.n_out * chunks.max(1);
        let workgroups = match entry {
            "sum_rows" => crate::grid_1d(gpu, self.n_out),
            "sum_rows_x4" => crate::grid_1d(gpu, self.n_out / 4),
            _ => fold_workgroups(groups as u32, gpu.limits().max_compute_workgroups_per_dimension),
        };
        let column = |axes: &[Axis], i: usize| axes.iter().map(|a| [a.0, a.1][i]).collect::<Vec<_>>();
        let params = Params {
            n_out: self.n_out as u32,
            n_red: self.n_red as u32,
            kept_rank: self.kept.len() as u32,
            red_rank: self.red.len() as u32,
            scale,
            planar: self.planar as u32,
            chunk: chunk as u32,
            chunks: chunks as u32,
            kept_shape: pack8(&column(&self.kept, 0)),
            kept_strides: pack8(&column(&self.kept, 1)),
            red_shape: pack8(&column(&self.red, 0)),
            red_strides: pack8(&column(&self.red, 1)),
        };
        let launch = Launch {
            shader: REDUCE,
            entry,
            constants: vec![],
            params: bytemuck::bytes_of(&params),
            bindings,
            workgroups,
        };
        launch.build(gpu)
    }
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
