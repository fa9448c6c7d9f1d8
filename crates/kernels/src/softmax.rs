use bytemuck::{Pod, Zeroable};
use kiln_core::{Result, Shape};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer};

use crate::{B, GpuKernel, Launch, SOFTMAX, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "softmax",
    "log_softmax",
    "softmax_backward",
    "log_softmax_backward",
    "softmax_chunks",
    "softmax_backward_chunks",
    "log_softmax_backward_chunks",
    "softmax_rows",
    "softmax_apply",
    "log_softmax_apply",
    "softmax_backward_apply",
    "log_softmax_backward_apply",
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>()), ("Chunked", size_of::<Chunked>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    len: u32,
    inner: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Chunked {
    rows: u32,
    len: u32,
    inner: u32,
    chunk: u32,
    chunks: u32,
    n: u32,
    _pad: [u32; 2],
}

/// The ops of the softmax family, each named as its entry point.
#[derive(Clone, Copy, Debug)]
pub enum SoftmaxOp {
    Softmax,
    LogSoftmax,
    SoftmaxBackward,
    LogSoftmaxBackward,
}

impl SoftmaxOp {
    fn entry(self) -> &'static str {
        match self {
            SoftmaxOp::Softmax => "softmax",
            SoftmaxOp::LogSoftmax => "log_softmax",
            SoftmaxOp::SoftmaxBackward => "softmax_backward",
            SoftmaxOp::LogSoftmaxBackward => "log_softmax_backward",
        }
    }

    /// The elementwise kernel of a chunked row, and the statistics it reads.
    fn apply(self) -> (&'static str, RowStats) {
        match self {
            SoftmaxOp::Softmax => ("softmax_apply", RowStats::LogSumExp),
            SoftmaxOp::LogSoftmax => ("log_softmax_apply", RowStats::LogSumExp),
            SoftmaxOp::SoftmaxBackward => ("softmax_backward_apply", RowStats::DotWithY),
            SoftmaxOp::LogSoftmaxBackward => ("log_softmax_backward_apply", RowStats::SumOfDy),
        }
    }

    /// Loop passes per element of a row in the one-invocation-per-row kernel: the forward ops
    /// loop over the row three times (maximum, sum, output), the backward ones twice.
    fn passes_per_element(self) -> usize {
        match self {
            SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax => 3,
            SoftmaxOp::SoftmaxBackward | SoftmaxOp::LogSoftmaxBackward => 2,
        }
    }
}

/// What `softmax_chunks` and `softmax_rows` compute per row (softmax.wgsl's KIND).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowStats {
    /// The maximum and `Σ e^(x - max)`.
    LogSumExp,
    /// `Σ dy·y`.
    DotWithY,
    /// `Σ dy`.
    SumOfDy,
}

impl RowStats {
    /// The chunk kernel, whether it reads x and dy, and how softmax_rows folds (its KIND).
    fn chunk_kernel(self) -> (&'static str, [bool; 2], f64) {
        match self {
            RowStats::LogSumExp => ("softmax_chunks", [true, false], 0.0),
            RowStats::DotWithY => ("softmax_backward_chunks", [true, true], 1.0),
            RowStats::SumOfDy => ("log_softmax_backward_chunks", [false, true], 1.0),
        }
    }
}

/// Rows of `len` elements, `inner` apart, viewed along `axis` of `shape`; with a `chunk`
/// length where one invocation per row would loop past the adapter's budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows {
    rows: usize,
    len: usize,
    inner: usize,
    chunk: Option<usize>,
}

impl Rows {
    /// The rows of `shape` along `axis`, chunked where `passes_per_element` passes over each
    /// element of a row would exceed the budget.
    pub(crate) fn of(gpu: &Gpu, shape: &Shape, axis: usize, passes_per_element: usize) -> Self {
        let dims = shape.dims();
        let len = dims[axis].max(1);
        let inner: usize = dims[axis + 1..].iter().product();
        let rows = shape.numel() / len;
        // The chunk kernel loops twice over its chunk, each loop one pass more than its length.
        let chunk = crate::loop_budget(gpu)
            .filter(|&budget| passes_per_element * (len + 1) > budget)
            .map(|budget| budget / 2 - 1);
        Rows { rows, len, inner, chunk }
    }

    fn chunks(&self) -> Option<usize> {
        self.chunk.map(|chunk| self.len.div_ceil(chunk))
    }

    /// Bytes of the statistics of a chunked layout: a vec2 per chunk, then per row.
    pub(crate) fn scratch_bytes(&self) -> Option<u64> {
        self.chunks().map(|chunks| (8 * self.rows * (chunks + 1)) as u64)
    }

    fn chunked(&self, n: usize) -> Chunked {
        let u = |v: usize| v as u32;
        let (chunk, chunks) = (self.chunk.unwrap_or(self.len), self.chunks().unwrap_or(1));
        Chunked {
            rows: u(self.rows),
            len: u(self.len),
            inner: u(self.inner),
            chunk: u(chunk),
            chunks: u(chunks),
            n: u(n),
            _pad: [0; 2],
        }
    }

    /// The two dispatches that leave each row's `kind` statistics in `stats` (after the
    /// chunks'); `dy` is read only by the gradients' statistics.
    pub(crate) fn statistics(
        &self,
        gpu: &Gpu,
        kind: RowStats,
        [x, dy]: [&GpuBuffer; 2],
        stats: &GpuBuffer,
        shapes: &[&Shape],
    ) -> Result<[Dispatch; 2]> {
        let chunks = self.chunks().unwrap_or(1);
        crate::check_loops(gpu, "softmax_rows", chunks + 1, shapes)?;
        let params = self.chunked(0);
        let (entry, [reads_x, reads_dy], fold) = kind.chunk_kernel();
        let inputs = [(reads_x, (1, x)), (reads_dy, (2, dy))];
        let mut bindings: Vec<(u32, &GpuBuffer)> = inputs.iter().filter(|(used, _)| *used).map(|&(_, b)| b).collect();
        bindings.push((4, stats));
        let per_chunk = Launch {
            shader: SOFTMAX,
            entry,
            constants: vec![],
            params: bytemuck::bytes_of(&params),
            bindings,
            workgroups: grid_1d(gpu, self.rows * chunks),
        };
        let per_row = Launch {
            shader: SOFTMAX,
            entry: "softmax_rows",
            constants: vec![("KIND", fold)],
            params: bytemuck::bytes_of(&params),
            bindings: vec![(4, stats)],
            workgroups: grid_1d(gpu, self.rows),
        };
        Ok([per_chunk.build(gpu)?, per_row.build(gpu)?])
    }
}

/// The scratch of a softmax-family op: its rows' statistics, where they are chunked.
pub fn scratch(gpu: &Gpu, op: SoftmaxOp, axis: usize, x: &Shape) -> Vec<u64> {
    Rows::of(gpu, x, axis, op.passes_per_element()).scratch_bytes().into_iter().collect()
}

/// Softmax-family op along `axis`; `dy` is given for the backward entry points. Rows past the
/// adapter's loop budget take the chunked kernels, with their statistics in `scratch`.
pub fn softmax(
    gpu: &Gpu,
    op: SoftmaxOp,
    axis: usize,
    x: &B<'_>,
    dy: Option<&B<'_>>,
    out: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    let rows = Rows::of(gpu, x.shape, axis, op.passes_per_element());
    let dy_buffer = dy.map_or(x.buffer, |dy| dy.buffer);
    if let Some(bytes) = rows.scratch_bytes() {
        let stats = crate::fits(scratch.first().copied(), bytes, op.entry())?;
        let (entry, kind) = op.apply();
        let [chunks, per_row] = rows.statistics(gpu, kind, [x.buffer, dy_buffer], stats, &[x.shape])?;
        let n = x.shape.numel();
        let params = rows.chunked(n);
        let mut bindings = vec![(1, x.buffer), (3, out.buffer), (4, stats)];
        bindings.extend(dy.map(|dy| (2, dy.buffer)));
        let apply = Launch {
            shader: SOFTMAX,
            entry,
            constants: vec![],
            params: bytemuck::bytes_of(&params),
            bindings,
            workgroups: grid_1d(gpu, n),
        };
        return Ok(GpuKernel::new(vec![chunks, per_row, apply.build(gpu)?]));
    }
    let u = |v: usize| v as u32;
    let params = Params { rows: u(rows.rows), len: u(rows.len), inner: u(rows.inner), _pad: 0 };
    crate::check_loops(gpu, op.entry(), op.passes_per_element() * (rows.len + 1), &[x.shape])?;
    let mut bindings = vec![(1, x.buffer), (3, out.buffer)];
    bindings.extend(dy.map(|dy| (2, dy.buffer)));
    let launch = Launch {
        shader: SOFTMAX,
        entry: op.entry(),
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, rows.rows),
    };
    launch.build(gpu).map(GpuKernel::from)
}
