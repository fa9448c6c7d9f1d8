use bytemuck::{Pod, Zeroable};
use kiln_core::{Conv2d, DType, MatMul, Result, ScratchRequest, Shape};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, fold_workgroups};

use crate::{B, CONV, Epilogue, GpuKernel, Launch, MatmulPlan, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "conv2d",
    "conv2d_backward_input",
    "conv_transpose2d",
    "conv2d_backward_weight",
    "conv2d_im2col",
    "conv2d_col2im",
    "conv2d_from_rows",
    "conv2d_to_rows",
    "conv2d_im2col_x4",
    "conv2d_col2im_x4",
    "conv2d_from_rows_x4",
    "conv2d_to_rows_x4",
    "depthwise_conv2d",
    "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_weight",
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    has_bias: u32,
    n: u32,
    _pad: [u32; 2],
}

/// The shader's override constants: a pipeline per geometry (see conv.wgsl).
#[derive(Clone, Copy)]
struct Geometry {
    batch: u32,
    x_c: u32,
    x_h: u32,
    x_w: u32,
    y_c: u32,
    y_h: u32,
    y_w: u32,
    groups: u32,
    k_h: u32,
    k_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    /// Whether the forward kernels apply a ReLU to what they store (a fused `conv2d_relu`).
    relu: bool,
    /// The rows of a lowering's columns per sample, or 0 for columns over the whole batch.
    sample_taps: u32,
}

impl Geometry {
    fn constants(&self) -> Vec<(&'static str, f64)> {
        let g = *self;
        [
            ("BATCH", g.batch),
            ("X_C", g.x_c),
            ("X_H", g.x_h),
            ("X_W", g.x_w),
            ("Y_C", g.y_c),
            ("Y_H", g.y_h),
            ("Y_W", g.y_w),
            ("GROUPS", g.groups),
            ("K_H", g.k_h),
            ("K_W", g.k_w),
            ("STRIDE_H", g.stride_h),
            ("STRIDE_W", g.stride_w),
            ("PAD_H", g.pad_h),
            ("PAD_W", g.pad_w),
            ("DIL_H", g.dil_h),
            ("DIL_W", g.dil_w),
            ("RELU", u32::from(g.relu)),
            ("SAMPLE_TAPS", g.sample_taps),
        ]
        .into_iter()
        .map(|(name, v)| (name, f64::from(v)))
        .collect()
    }
}

/// One conv kernel's launch: its geometry and the uniform.
#[derive(Clone, Copy)]
struct ConvLaunch {
    geometry: Geometry,
    params: Params,
}

/// A convolution with geometry `c` from an input side `x` `[N,C,H,W]` to an output side `y`
/// `[N,O,H',W']` with `kernel` taps, writing `n` elements.
fn params(c: &Conv2d, x: &[usize], y: &[usize], kernel: &[usize], has_bias: bool, n: usize) -> ConvLaunch {
    let u = |v: usize| v as u32;
    let geometry = Geometry {
        batch: u(x[0]),
        x_c: u(x[1]),
        x_h: u(x[2]),
        x_w: u(x[3]),
        y_c: u(y[1]),
        y_h: u(y[2]),
        y_w: u(y[3]),
        groups: u(c.groups),
        k_h: u(kernel[0]),
        k_w: u(kernel[1]),
        stride_h: u(c.stride[0]),
        stride_w: u(c.stride[1]),
        pad_h: u(c.padding[0]),
        pad_w: u(c.padding[1]),
        dil_h: u(c.dilation[0]),
        dil_w: u(c.dilation[1]),
        relu: false,
        sample_taps: 0,
    };
    ConvLaunch { geometry, params: Params { has_bias: u32::from(has_bias), n: u(n), _pad: [0; 2] } }
}

/// `conv` with its forward kernels' ReLU epilogue on or off.
fn with_relu(mut conv: ConvLaunch, relu: bool) -> ConvLaunch {
    conv.geometry.relu = relu;
    conv
}

fn launch(
    gpu: &Gpu,
    entry: &'static str,
    conv: ConvLaunch,
    bindings: Vec<(u32, &GpuBuffer)>,
    shapes: &[&kiln_core::Shape],
) -> Result<Dispatch> {
    check(gpu, entry, &conv.geometry, shapes)?;
    let n = conv.params.n;
    let workgroups = match entry {
        // One workgroup per weight.
        "conv2d_backward_weight" => fold_workgroups(n, gpu.limits().max_compute_workgroups_per_dimension),
        // One workgroup per output channel.
        "depthwise_conv2d_backward_weight" => [conv.geometry.y_c, 1, 1],
        _ => grid_1d(gpu, n as usize),
    };
    let constants = conv.geometry.constants();
    let launch =
        Launch { shader: CONV, entry, constants, params: bytemuck::bytes_of(&conv.params), bindings, workgroups };
    launch.build(gpu)
}

/// Loop passes per invocation of each entry point (each loop's iterations plus one, inner
/// loops counted for every outer iteration, as if none were unrolled), checked against the
/// adapter's budget.
fn check(gpu: &Gpu, entry: &str, p: &Geometry, shapes: &[&kiln_core::Shape]) -> Result<()> {
    let u = |v: u32| v as usize;
    // A loop of `trips` iterations whose body takes `body` passes of inner loops.
    let looped = |trips: usize, body: usize| trips + 1 + trips * body;
    let (kh, kw, taps) = (u(p.k_h), u(p.k_w), u(p.k_h * p.k_w));
    // A kernel row: the row span loaded once (or not), then up to two passes over its taps.
    let row = |span: usize| span + 1 + 2 * (kw + 1);
    let span = 3 * u(p.stride_w) + (kw - 1) * u(p.dil_w) + 1;
    let back_span = 3 + (kw - 1) * u(p.dil_w) + 1;
    let tree = 7;
    let passes = match entry {
        "conv2d" => looped(u(p.x_c / p.groups), looped(kh, kw + 1)),
        "conv2d_backward_input" | "conv_transpose2d" => looped(kh, looped(kw, u(p.y_c / p.groups) + 1)),
        "conv2d_backward_weight" => looped(u(p.y_h * p.y_w).div_ceil(64), u(p.batch) + 1) + tree,
        "conv2d_col2im" => looped(kh, kw + 1),
        "conv2d_col2im_x4" => 4 * looped(kh, kw + 1),
        "conv2d_im2col" | "conv2d_from_rows" | "conv2d_to_rows" => 0,
        "conv2d_im2col_x4" | "conv2d_from_rows_x4" | "conv2d_to_rows_x4" => 0,
        "depthwise_conv2d" => looped(kh, row(span)) + 5,
        "depthwise_conv2d_backward_input" => looped(u(p.y_c / p.x_c.max(1)), looped(kh, row(back_span))) + 5,
        "depthwise_conv2d_backward_weight" => {
            let items = u(p.batch * p.y_h * p.y_w.div_ceil(4)).div_ceil(64);
            looped(items, 5 + looped(kh, span + 1 + kw + 1)) + (taps + 1) * (2 + tree)
        }
        other => return Err(kiln_core::Error::attribute(other, "has no loop count: count its loops in conv::check")),
    };
    crate::check_loops(gpu, entry, passes, shapes)
}

/// Which kernels run a convolution: without groups, matrix products around im2col/col2im
/// (the tuned matmul kernels do the arithmetic), as long as the columns (`[C·kH·kW, N·P]`,
/// the taps padded as `padded_taps` says, and the rows `[O, N·P]`) fit one storage binding;
/// otherwise, and with groups, the direct gathers. `x` is the convolution's input side, `y` its output side, `w` its weights.
fn lowered(gpu: &Gpu, c: &Conv2d, x: &[usize], w: &[usize], y: &[usize]) -> bool {
    let positions = y[0] * y[2] * y[3];
    let widest = padded_taps(x[1] * w[2] * w[3], w[0], positions).max(y[1]) as u64;
    let limit = gpu.limits().max_storage_buffer_binding_size.min(gpu.limits().max_buffer_size);
    c.groups == 1 && 4 * widest * positions as u64 <= limit
}

/// The taps and the row span (input columns) depthwise_conv2d_backward_weight holds in
/// registers: conv.wgsl's MAX_TAPS and MAX_SPAN.
const DEPTHWISE_MAX_TAPS: usize = 16;
const DEPTHWISE_MAX_SPAN: usize = 12;

/// Whether depthwise_conv2d_backward_weight holds a kernel's taps and its row span (conv.wgsl's
/// SPAN: the columns four adjacent outputs read).
fn depthwise_spans_fit(c: &Conv2d, kernel: &[usize]) -> bool {
    let span = 3 * c.stride[1] + (kernel[1] - 1) * c.dilation[1] + 1;
    kernel[0] * kernel[1] <= DEPTHWISE_MAX_TAPS && span <= DEPTHWISE_MAX_SPAN
}

/// One group per input channel: the depthwise kernels apply.
fn depthwise(c: &Conv2d, input_channels: usize) -> bool {
    c.groups > 1 && c.groups == input_channels
}

/// The largest columns a program keeps from the forward product to the weight gradient:
/// beyond, holding them through the layers in between costs more memory than gathering them
/// again costs time.
const MAX_SHARED_COLUMNS_BYTES: u64 = 64 << 20;

/// How a lowered convolution's products cover the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Grouping {
    /// One product per sample, over the NCHW tensors as they are (`[N, O, P]`) and columns
    /// `[N, taps, P]`: no copies of y or dy into rows and back.
    PerSample,
    /// One product over the whole batch, through rows `[O, N·P]` and columns `[taps, N·P]`:
    /// where a sample's P positions are not whole fours (the 4-wide kernels need them).
    Batch,
}

/// The smallest P (a sample's output positions) products run per sample at: with fewer, a
/// sample's product has fewer than 8 tiles of 8 columns side by side, and the subgroup kernels
/// leave lanes idle (lavapipe: 4×4 maps' forward product took 2.6× as long per sample as over
/// the batch, 8×8 maps' 0.75×).
const MIN_SAMPLE_POSITIONS: usize = 64;

impl Grouping {
    /// Per sample where each sample's products are whole fours on every side (O and P; the taps
    /// are then padded to fours), there are no more samples than workgroups along an axis, and
    /// `extra` bytes per sample (the per-sample weight gradients) fit one binding.
    fn of(gpu: &Gpu, batch: usize, outputs: usize, positions: usize, extra: u64) -> Self {
        let limits = gpu.limits();
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let whole = outputs.is_multiple_of(4) && positions.is_multiple_of(4) && positions >= MIN_SAMPLE_POSITIONS;
        let fits = batch <= limits.max_compute_workgroups_per_dimension as usize && extra * batch as u64 <= binding;
        if whole && fits { Grouping::PerSample } else { Grouping::Batch }
    }

    /// A `[rows, P]` matrix per sample of `batch` (`[N, rows, P]`), or over the batch
    /// (`[rows, N·P]`).
    fn matrix(self, batch: usize, rows: usize, positions: usize) -> Shape {
        match self {
            Grouping::PerSample => Shape::new([batch, rows, positions]),
            Grouping::Batch => Shape::new([rows, batch * positions]),
        }
    }
}

/// A lowered convolution's intermediates, in the order of its scratch buffers: the columns
/// (`Grouping::matrix` of the taps), the rows `[O, N·P]` of y or dy (over the batch), the
/// per-sample weight gradients `[N, O, taps]`, the weights (or the weight gradient) as
/// `[O, taps]` where the taps are padded, and the product's partial sums where it is split
/// along K.
struct Lowering {
    grouping: Grouping,
    cols: Shape,
    /// The product's side in y or dy: the rows `[O, N·P]` (scratch), or per sample y or dy
    /// itself as `[N, O, P]`.
    rows: Shape,
    sample_grads: Option<Shape>,
    padded: Option<Shape>,
    product: MatmulPlan,
}

/// The scratch buffers of a lowered convolution, by role.
struct Scratch<'a> {
    cols: &'a GpuBuffer,
    rows: Option<&'a GpuBuffer>,
    sample_grads: Option<&'a GpuBuffer>,
    padded: Option<&'a GpuBuffer>,
    partial: Option<&'a GpuBuffer>,
}

impl Lowering {
    /// `y = conv(x, w)` as `W [O, taps] · cols`: into y's rows per sample, or into the rows
    /// `[O, N·P]` over the batch.
    fn forward(gpu: &Gpu, w: &[usize], y: &[usize]) -> Result<Self> {
        let (batch, positions) = (y[0], y[2] * y[3]);
        let taps = padded_taps(w[1] * w[2] * w[3], w[0], batch * positions);
        let grouping = Grouping::of(gpu, batch, w[0], positions, 0);
        let weights = Shape::new([w[0], taps]);
        let (cols, rows) = (grouping.matrix(batch, taps, positions), grouping.matrix(batch, w[0], positions));
        let product = MatmulPlan::new(gpu, MatMul::default(), None, &weights, &cols, &rows)?;
        let padded = (taps != w[1] * w[2] * w[3]).then_some(weights);
        Ok(Lowering { grouping, cols, rows, sample_grads: None, padded, product })
    }

    /// `dx` from `dy`: `cols = Wᵀ · dy` (per sample, or from dy's rows over the batch), then
    /// col2im.
    fn input_gradient(gpu: &Gpu, dy: &[usize], w: &[usize]) -> Result<Self> {
        let (batch, positions) = (dy[0], dy[2] * dy[3]);
        let taps = padded_taps(w[1] * w[2] * w[3], w[0], batch * positions);
        let grouping = Grouping::of(gpu, batch, w[0], positions, 0);
        let weights = Shape::new([w[0], taps]);
        let (cols, rows) = (grouping.matrix(batch, taps, positions), grouping.matrix(batch, dy[1], positions));
        let transposed = MatMul { trans_a: true, trans_b: false };
        let product = MatmulPlan::new(gpu, transposed, None, &weights, &rows, &cols)?;
        let padded = (taps != w[1] * w[2] * w[3]).then_some(weights);
        Ok(Lowering { grouping, cols, rows, sample_grads: None, padded, product })
    }

    /// `dw [O, taps] = dy · colsᵀ`: per sample, then summed over the batch, or one product
    /// over the batch from dy's rows.
    fn weight_gradient(gpu: &Gpu, dy: &[usize], dw: &[usize]) -> Result<Self> {
        let (batch, positions) = (dy[0], dy[2] * dy[3]);
        let unpadded = dw[1] * dw[2] * dw[3];
        let taps = padded_taps(unpadded, dw[0], batch * positions);
        let grouping = Grouping::of(gpu, batch, dw[0], positions, 4 * (dw[0] * taps) as u64);
        let target = Shape::new([dw[0], taps]);
        let (cols, rows) = (grouping.matrix(batch, taps, positions), grouping.matrix(batch, dw[0], positions));
        let sample_grads = (grouping == Grouping::PerSample).then(|| Shape::new([batch, dw[0], taps]));
        let transposed = MatMul { trans_a: false, trans_b: true };
        let product = MatmulPlan::new(gpu, transposed, None, &rows, &cols, sample_grads.as_ref().unwrap_or(&target))?;
        let padded = (taps != unpadded).then_some(target);
        Ok(Lowering { grouping, cols, rows, sample_grads, padded, product })
    }

    /// The rows of columns per sample the lowering kernels write (conv.wgsl's SAMPLE_TAPS).
    fn sample_taps(&self) -> u32 {
        match self.grouping {
            Grouping::PerSample => self.cols.dims()[1] as u32,
            Grouping::Batch => 0,
        }
    }

    /// The rows as scratch: over the batch only (per sample, the product reads and writes y
    /// or dy itself).
    fn row_scratch(&self) -> Option<&Shape> {
        (self.grouping == Grouping::Batch).then_some(&self.rows)
    }

    /// The scratch buffers, in `buffers`' order. The columns of the input (`of_input`: its
    /// geometry and kernel, for the forward product and the weight gradient) are shared with
    /// the program's other kernels gathering the same columns of the same value, up to
    /// `MAX_SHARED_COLUMNS_BYTES`.
    fn scratch_requests(&self, of_input: Option<(&Conv2d, &[usize])>) -> Vec<ScratchRequest> {
        let cols_bytes = self.cols.bytes().max(4);
        let cols = match of_input {
            Some((c, kernel)) if cols_bytes <= MAX_SHARED_COLUMNS_BYTES => {
                let key = format!("conv2d columns {} of {c:?} with a {kernel:?} kernel", self.cols);
                ScratchRequest::derived(cols_bytes, 0, key)
            }
            Some(_) | None => ScratchRequest::own(cols_bytes),
        };
        let shapes = [self.row_scratch(), self.sample_grads.as_ref(), self.padded.as_ref()];
        let rest = shapes.into_iter().flatten().map(|s| s.bytes().max(4)).chain(self.product.scratch_bytes());
        [cols].into_iter().chain(rest.map(ScratchRequest::own)).collect()
    }

    /// The buffers `scratch_requests` asked for, checked.
    fn buffers<'a>(&self, scratch: &[&'a GpuBuffer]) -> Result<Scratch<'a>> {
        let mut given = scratch.iter().copied();
        let mut next = |shape: Option<&Shape>, what: &str| -> Result<Option<&'a GpuBuffer>> {
            shape.map(|s| crate::fits(given.next(), s.bytes().max(4), what)).transpose()
        };
        let cols = next(Some(&self.cols), "conv2d columns")?;
        let rows = next(self.row_scratch(), "conv2d output rows")?;
        let sample_grads = next(self.sample_grads.as_ref(), "conv2d per-sample weight gradients")?;
        let padded = next(self.padded.as_ref(), "conv2d padded weights")?;
        let partial = self.product.scratch_bytes().map(|_| given.next());
        let partial = partial.map(|b| b.ok_or_else(|| kiln_core::Error::data("matmul", "no partial sums planned")));
        let Some(cols) = cols else {
            return Err(kiln_core::Error::data("conv2d", "its columns were not planned"));
        };
        Ok(Scratch { cols, rows, sample_grads, padded, partial: partial.transpose()? })
    }

    /// The product's side in y or dy (`tensor`, NCHW): the rows scratch over the batch, or the
    /// tensor itself per sample.
    fn rows<'a>(&'a self, buffers: &Scratch<'a>, tensor: &'a GpuBuffer) -> Result<B<'a>> {
        match (self.grouping, buffers.rows) {
            (Grouping::PerSample, _) => Ok(bound(tensor, &self.rows)),
            (Grouping::Batch, Some(rows)) => Ok(bound(rows, &self.rows)),
            (Grouping::Batch, None) => Err(kiln_core::Error::data("conv2d", "its rows were not planned")),
        }
    }
}

/// How a convolution-family op runs.
enum Path {
    /// One group per input channel: the depthwise kernels.
    Depthwise,
    /// The direct gathers (groups, or columns too large for one binding).
    Direct,
    /// Matrix products around im2col and col2im.
    Lowered(Lowering),
}

/// The ops of the convolution family, with their geometry.
#[derive(Clone, Copy, Debug)]
pub enum ConvOp<'a> {
    Forward(&'a Conv2d),
    BackwardInput(&'a Conv2d),
    Transpose(&'a Conv2d),
    BackwardWeight(&'a Conv2d),
}

/// The path of a convolution-family op on these shapes (`inputs` and `output` in op order).
fn path(gpu: &Gpu, op: ConvOp<'_>, inputs: &[&Shape], output: &Shape) -> Result<Path> {
    let dims = |s: &Shape| s.dims().to_vec();
    let (i0, i1, out) = (dims(inputs[0]), dims(inputs[1]), dims(output));
    Ok(match op {
        ConvOp::Forward(c) => {
            let (x, w) = (i0, i1);
            if depthwise(c, x[1]) {
                Path::Depthwise
            } else if lowered(gpu, c, &x, &w, &out) {
                Path::Lowered(Lowering::forward(gpu, &w, &out)?)
            } else {
                Path::Direct
            }
        }
        ConvOp::BackwardInput(c) => {
            let (dy, w) = (i0, i1);
            if depthwise(c, out[1]) {
                Path::Depthwise
            } else if lowered(gpu, c, &out, &w, &dy) {
                Path::Lowered(Lowering::input_gradient(gpu, &dy, &w)?)
            } else {
                Path::Direct
            }
        }
        ConvOp::Transpose(c) => {
            let (x, w) = (i0, i1);
            if lowered(gpu, c, &out, &w, &x) {
                Path::Lowered(Lowering::input_gradient(gpu, &x, &w)?)
            } else {
                Path::Direct
            }
        }
        ConvOp::BackwardWeight(c) => {
            let (x, dy) = (i0, i1);
            // The product sums over every output position of the batch in one loop; where
            // that is longer than the adapter allows, the direct kernel's 64-way split is used.
            let too_long = gpu.loop_limit().is_some_and(|limit| dy[0] * dy[2] * dy[3] > limit);
            if depthwise(c, x[1]) && depthwise_spans_fit(c, &out[2..]) {
                Path::Depthwise
            } else if lowered(gpu, c, &x, &out, &dy) && !too_long {
                Path::Lowered(Lowering::weight_gradient(gpu, &dy, &out)?)
            } else {
                Path::Direct
            }
        }
    })
}

/// The scratch a convolution-family op needs on these shapes: a lowering's columns first.
pub fn scratch(gpu: &Gpu, op: ConvOp<'_>, inputs: &[&Shape], output: &Shape) -> Result<Vec<ScratchRequest>> {
    Ok(match path(gpu, op, inputs, output)? {
        Path::Lowered(lowering) => {
            let of_input = match op {
                ConvOp::Forward(c) => Some((c, &inputs[1].dims()[2..])),
                ConvOp::BackwardWeight(c) => Some((c, &output.dims()[2..])),
                ConvOp::BackwardInput(_) | ConvOp::Transpose(_) => None,
            };
            lowering.scratch_requests(of_input)
        }
        Path::Depthwise | Path::Direct => vec![],
    })
}

fn bound<'a>(buffer: &'a GpuBuffer, shape: &'a Shape) -> B<'a> {
    B { buffer, shape, dtype: DType::F32 }
}

/// The rows of the columns (`taps` = C·kH·kW) rounded up to a multiple of 4 where that lets
/// the three products use the 4-wide kernels (their other sides, `outputs` = O and
/// `positions` = N·H'·W', already are): a 1- or 3-channel input's 9 or 27 taps become 12 or 28
/// (zero columns, zero weights), not a scalar kernel 3-4× slower.
fn padded_taps(taps: usize, outputs: usize, positions: usize) -> usize {
    if outputs.is_multiple_of(4) && positions.is_multiple_of(4) { taps.next_multiple_of(4) } else { taps }
}

/// The columns of `x` for the output extent `y_hw` as `lowering` lays them out: C·kH·kW rows
/// (per sample or over the batch), then zero rows up to the padded taps. No dispatch where an
/// earlier kernel of the program already gathered the same columns (`filled`).
#[allow(clippy::too_many_arguments)]
fn columns(
    gpu: &Gpu,
    c: &Conv2d,
    lowering: &Lowering,
    x: &B<'_>,
    kernel: &[usize],
    y_hw: [usize; 2],
    cols: &B<'_>,
    filled: bool,
) -> Result<GpuKernel> {
    if filled {
        return Ok(GpuKernel::new(vec![]));
    }
    let xd = x.shape.dims();
    let yd = [xd[0], 1, y_hw[0], y_hw[1]];
    let (entry, n) = fours("conv2d_im2col", "conv2d_im2col_x4", cols.shape.numel(), true);
    let mut params = params(c, xd, &yd, kernel, false, n);
    params.geometry.sample_taps = lowering.sample_taps();
    launch(gpu, entry, params, vec![(1, x.buffer), (3, cols.buffer)], &[x.shape]).map(GpuKernel::from)
}

/// The four-element form of a lowering kernel and the fours it writes, where the `n` elements
/// it writes are whole fours and `aligned` (its runs of positions are); else the one-element
/// form and `n`.
fn fours(one: &'static str, four: &'static str, n: usize, aligned: bool) -> (&'static str, usize) {
    if aligned && n.is_multiple_of(4) { (four, n / 4) } else { (one, n) }
}

/// `w [O, C, kH, kW]` as the `[O, taps]` matrix a lowered product reads: the weights
/// themselves, or (with padded taps) a copy padded with zero columns into `padded`.
fn weights<'a>(
    gpu: &Gpu,
    w: &B<'a>,
    own: &'a Shape,
    padded: Option<(&'a GpuBuffer, &'a Shape)>,
) -> Result<(GpuKernel, B<'a>)> {
    let Some((buffer, shape)) = padded else { return Ok((GpuKernel::new(vec![]), bound(w.buffer, own))) };
    let pad = crate::layout::slice_backward(gpu, 1, 0, &bound(w.buffer, own), &bound(buffer, shape))?;
    Ok((GpuKernel::from(pad), bound(buffer, shape)))
}

/// `rows [O, N·H'·W']` of `dy [N, O, H', W']`.
fn to_rows(gpu: &Gpu, c: &Conv2d, dy: &B<'_>, rows: &B<'_>) -> Result<Dispatch> {
    let d = dy.shape.dims();
    let (entry, n) = fours("conv2d_to_rows", "conv2d_to_rows_x4", rows.shape.numel(), (d[2] * d[3]).is_multiple_of(4));
    let params = params(c, d, d, &[1, 1], false, n);
    launch(gpu, entry, params, vec![(3, rows.buffer), (5, dy.buffer)], &[dy.shape])
}

/// `[O, C·kH·kW]`: the weights (or their gradient) as the matrix they are.
fn flat_weights(w: &[usize]) -> Shape {
    Shape::new([w[0], w[1] * w[2] * w[3]])
}

/// `y = conv(x, w) + b`, or with `relu` its ReLU; without a bias, w is bound in its place (and
/// never read there). `columns_filled`: an earlier kernel gathered x's columns into the
/// columns' scratch (see `scratch`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    gpu: &Gpu,
    c: &Conv2d,
    relu: bool,
    [x, w]: [&B<'_>; 2],
    b: Option<&B<'_>>,
    y: &B<'_>,
    scratch: &[&GpuBuffer],
    columns_filled: bool,
) -> Result<GpuKernel> {
    let (wd, yd) = (w.shape.dims(), y.shape.dims());
    let bias = b.map_or(w.buffer, |b| b.buffer);
    let lowering = match path(gpu, ConvOp::Forward(c), &[x.shape, w.shape], y.shape)? {
        Path::Depthwise => {
            let quads = y.shape.numel() / yd[3] * yd[3].div_ceil(4);
            let params = with_relu(params(c, x.shape.dims(), yd, &wd[2..], b.is_some(), quads), relu);
            let bindings = vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)];
            return launch(gpu, "depthwise_conv2d", params, bindings, &[x.shape, w.shape]).map(GpuKernel::from);
        }
        Path::Direct => {
            let params = with_relu(params(c, x.shape.dims(), yd, &wd[2..], b.is_some(), y.shape.numel()), relu);
            let bindings = vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)];
            return launch(gpu, "conv2d", params, bindings, &[x.shape, w.shape]).map(GpuKernel::from);
        }
        Path::Lowered(lowering) => lowering,
    };
    let buffers = lowering.buffers(scratch)?;
    let (cols, rows) = (bound(buffers.cols, &lowering.cols), lowering.rows(&buffers, y.buffer)?);
    let columns = columns(gpu, c, &lowering, x, &wd[2..], [yd[2], yd[3]], &cols, columns_filled)?;
    let own = flat_weights(wd);
    let (padding, weights) = weights(gpu, w, &own, buffers.padded.zip(lowering.padded.as_ref()))?;
    if lowering.grouping == Grouping::PerSample {
        // The products store y itself, each sum plus its channel's bias.
        let epilogue = Epilogue { row_bias: b, relu, ..Epilogue::default() };
        let product = lowering.product.kernel_with(gpu, &weights, &cols, &rows, buffers.partial, epilogue)?;
        return Ok(padding.then(columns).then(product));
    }
    let product = lowering.product.kernel(gpu, &weights, &cols, &rows, buffers.partial)?;
    let aligned = (yd[2] * yd[3]).is_multiple_of(4);
    let (entry, n) = fours("conv2d_from_rows", "conv2d_from_rows_x4", y.shape.numel(), aligned);
    let params = with_relu(params(c, x.shape.dims(), yd, &wd[2..], b.is_some(), n), relu);
    let bindings = vec![(1, rows.buffer), (3, y.buffer), (4, bias)];
    let back = launch(gpu, entry, params, bindings, &[y.shape])?;
    Ok(padding.then(columns).then(product).then(back))
}

/// `dx [N,C,…]` (+ a bias) through a lowering: `cols = Wᵀ · rows(dy)`, then col2im.
#[allow(clippy::too_many_arguments)]
fn input_gradient(
    gpu: &Gpu,
    c: &Conv2d,
    lowering: &Lowering,
    [dy, w]: [&B<'_>; 2],
    b: Option<&B<'_>>,
    dx: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    let (wd, dyd, dxd) = (w.shape.dims(), dy.shape.dims(), dx.shape.dims());
    let buffers = lowering.buffers(scratch)?;
    let (cols, rows) = (bound(buffers.cols, &lowering.cols), lowering.rows(&buffers, dy.buffer)?);
    let gather = match lowering.grouping {
        Grouping::PerSample => GpuKernel::new(vec![]),
        Grouping::Batch => GpuKernel::from(to_rows(gpu, c, dy, &rows)?),
    };
    // col2im never reads the zero rows that padding the taps adds.
    let own = flat_weights(wd);
    let (padding, weights) = weights(gpu, w, &own, buffers.padded.zip(lowering.padded.as_ref()))?;
    let product = lowering.product.kernel(gpu, &weights, &rows, &cols, buffers.partial)?;
    let (entry, n) = fours("conv2d_col2im", "conv2d_col2im_x4", dx.shape.numel(), true);
    let mut params = params(c, dxd, dyd, &wd[2..], b.is_some(), n);
    params.geometry.sample_taps = lowering.sample_taps();
    let bias = b.map_or(w.buffer, |b| b.buffer);
    let bindings = vec![(1, buffers.cols), (3, dx.buffer), (4, bias)];
    let scatter = launch(gpu, entry, params, bindings, &[dy.shape, w.shape])?;
    Ok(padding.then(gather).then(product).then(scatter))
}

/// `dx = conv2d_backward_input(dy, w)`.
pub fn conv2d_backward_input(
    gpu: &Gpu,
    c: &Conv2d,
    [dy, w]: [&B<'_>; 2],
    dx: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    let dxd = dx.shape.dims();
    match path(gpu, ConvOp::BackwardInput(c), &[dy.shape, w.shape], dx.shape)? {
        Path::Depthwise => {
            let quads = dx.shape.numel() / dxd[3] * dxd[3].div_ceil(4);
            let params = params(c, dxd, dy.shape.dims(), &w.shape.dims()[2..], false, quads);
            let bindings = vec![(2, w.buffer), (3, dx.buffer), (5, dy.buffer)];
            let entry = "depthwise_conv2d_backward_input";
            launch(gpu, entry, params, bindings, &[dy.shape, w.shape]).map(GpuKernel::from)
        }
        Path::Direct => {
            let params = params(c, dxd, dy.shape.dims(), &w.shape.dims()[2..], false, dx.shape.numel());
            let bindings = vec![(1, dy.buffer), (2, w.buffer), (3, dx.buffer)];
            launch(gpu, "conv2d_backward_input", params, bindings, &[dy.shape, w.shape]).map(GpuKernel::from)
        }
        Path::Lowered(lowering) => input_gradient(gpu, c, &lowering, [dy, w], None, dx, scratch),
    }
}

/// `y = convᵀ(x, w) + b`: the input gradient of the convolution from y's shape to x's.
pub fn conv_transpose2d(
    gpu: &Gpu,
    c: &Conv2d,
    [x, w]: [&B<'_>; 2],
    b: Option<&B<'_>>,
    y: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    match path(gpu, ConvOp::Transpose(c), &[x.shape, w.shape], y.shape)? {
        Path::Lowered(lowering) => input_gradient(gpu, c, &lowering, [x, w], b, y, scratch),
        Path::Depthwise | Path::Direct => {
            let params = params(c, y.shape.dims(), x.shape.dims(), &w.shape.dims()[2..], b.is_some(), y.shape.numel());
            let bias = b.map_or(w.buffer, |b| b.buffer);
            let bindings = vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)];
            launch(gpu, "conv_transpose2d", params, bindings, &[x.shape, w.shape]).map(GpuKernel::from)
        }
    }
}

/// `dw = conv2d_backward_weight(x, dy)`: `dy · cols(x)ᵀ`, per sample then summed over the
/// batch, or one product over the batch from dy's rows. `columns_filled`: an earlier kernel
/// (the forward convolution) gathered x's columns into the columns' scratch.
pub fn conv2d_backward_weight(
    gpu: &Gpu,
    c: &Conv2d,
    [x, dy]: [&B<'_>; 2],
    dw: &B<'_>,
    scratch: &[&GpuBuffer],
    columns_filled: bool,
) -> Result<GpuKernel> {
    let (dyd, dwd) = (dy.shape.dims(), dw.shape.dims());
    let lowering = match path(gpu, ConvOp::BackwardWeight(c), &[x.shape, dy.shape], dw.shape)? {
        Path::Depthwise => {
            let params = params(c, x.shape.dims(), dyd, &dwd[2..], false, dw.shape.numel());
            let bindings = vec![(1, x.buffer), (3, dw.buffer), (5, dy.buffer)];
            let entry = "depthwise_conv2d_backward_weight";
            return launch(gpu, entry, params, bindings, &[x.shape, dy.shape]).map(GpuKernel::from);
        }
        Path::Direct => {
            let params = params(c, x.shape.dims(), dyd, &dwd[2..], false, dw.shape.numel());
            let bindings = vec![(1, x.buffer), (3, dw.buffer), (5, dy.buffer)];
            let entry = "conv2d_backward_weight";
            return launch(gpu, entry, params, bindings, &[x.shape, dy.shape]).map(GpuKernel::from);
        }
        Path::Lowered(lowering) => lowering,
    };
    let buffers = lowering.buffers(scratch)?;
    let (cols, rows) = (bound(buffers.cols, &lowering.cols), lowering.rows(&buffers, dy.buffer)?);
    let columns = columns(gpu, c, &lowering, x, &dwd[2..], [dyd[2], dyd[3]], &cols, columns_filled)?;
    let dw2 = flat_weights(dwd);
    // With padded taps, dW [O, taps] goes to scratch, and the padding's columns are dropped.
    let padded = buffers.padded.zip(lowering.padded.as_ref());
    let target = padded.map_or(bound(dw.buffer, &dw2), |(buffer, shape)| bound(buffer, shape));
    let steps = match (&lowering.sample_grads, buffers.sample_grads) {
        (Some(shape), Some(buffer)) => {
            let sample_grads = bound(buffer, shape);
            let product = lowering.product.kernel(gpu, &rows, &cols, &sample_grads, buffers.partial)?;
            let sum = crate::matmul::sum_batches(gpu, &sample_grads, &target)?;
            columns.then(product).then(sum)
        }
        _ => {
            let gather = to_rows(gpu, c, dy, &rows)?;
            let product = lowering.product.kernel(gpu, &rows, &cols, &target, buffers.partial)?;
            columns.then(gather).then(product)
        }
    };
    let Some((buffer, shape)) = padded else { return Ok(steps) };
    let unpad = crate::layout::slice(gpu, 1, 0, &bound(buffer, shape), &bound(dw.buffer, &dw2))?;
    Ok(steps.then(unpad))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's register limits are the shader's: a larger host limit would send kernels the
    /// shader cannot hold to depthwise_conv2d_backward_weight.
    #[test]
    fn depthwise_limits_are_the_shaders() {
        let source = include_str!("../../../shaders/conv.wgsl");
        for declaration in [
            format!("const MAX_TAPS: u32 = {DEPTHWISE_MAX_TAPS}u;"),
            format!("const MAX_SPAN: u32 = {DEPTHWISE_MAX_SPAN}u;"),
        ] {
            assert!(source.contains(&declaration), "conv.wgsl lacks `{declaration}`");
        }
    }
}
