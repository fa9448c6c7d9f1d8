use bytemuck::{Pod, Zeroable};
use kiln_core::{Conv2d, DType, MatMul, Result, Shape};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, fold_workgroups};

use crate::{B, CONV, GpuKernel, Launch, grid_1d, matmul_kernel};

pub const ENTRY_POINTS: &[&str] = &[
    "conv2d",
    "conv2d_backward_input",
    "conv_transpose2d",
    "conv2d_backward_weight",
    "conv2d_im2col",
    "conv2d_col2im",
    "conv2d_from_rows",
    "conv2d_to_rows",
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
    };
    ConvLaunch { geometry, params: Params { has_bias: u32::from(has_bias), n: u(n), _pad: [0; 2] } }
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

/// Loop iterations per invocation of each entry point, checked against the adapter's limit.
fn check(gpu: &Gpu, entry: &str, p: &Geometry, shapes: &[&kiln_core::Shape]) -> Result<()> {
    let taps = (p.k_h * (1 + p.k_w)) as usize;
    let iterations = match entry {
        "conv2d" => (p.x_c / p.groups) as usize * (1 + taps),
        "depthwise_conv2d" => taps,
        "conv2d_backward_weight" => ((p.y_h * p.y_w) as usize).div_ceil(64) * (1 + p.batch as usize),
        "depthwise_conv2d_backward_weight" => {
            ((p.batch * p.y_h * p.y_w.div_ceil(4)) as usize).div_ceil(64) * (1 + 4 + taps)
        }
        _ => taps * (1 + (p.y_c / p.groups) as usize),
    };
    crate::check_loops(gpu, entry, iterations, shapes)
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

/// A scratch buffer of `shape`, and that shape.
fn scratch(gpu: &Gpu, label: &str, dims: Vec<usize>) -> Result<(GpuBuffer, Shape)> {
    let shape = Shape::new(dims);
    Ok((gpu.alloc(shape.bytes().max(4), label)?, shape))
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

/// `cols [taps, N·H'·W']` of `x` for the output extent `y_hw`: C·kH·kW rows, then zero rows
/// up to `taps`.
fn im2col(
    gpu: &Gpu,
    c: &Conv2d,
    x: &B<'_>,
    kernel: &[usize],
    y_hw: [usize; 2],
    taps: usize,
) -> Result<(Dispatch, GpuBuffer, Shape)> {
    let xd = x.shape.dims();
    let (cols, shape) = scratch(gpu, "conv2d columns", vec![taps, xd[0] * y_hw[0] * y_hw[1]])?;
    let yd = [xd[0], 1, y_hw[0], y_hw[1]];
    let params = params(c, xd, &yd, kernel, false, shape.numel());
    let dispatch = launch(gpu, "conv2d_im2col", params, vec![(1, x.buffer), (3, &cols)], &[x.shape])?;
    Ok((dispatch, cols, shape))
}

/// The weights `[O, C, kH, kW]` as the matrix `[O, taps]` a lowered product reads: the
/// weights themselves, or a copy padded with zero columns.
enum Weights {
    Own(Shape),
    Padded(GpuBuffer, Shape),
}

impl Weights {
    fn bound<'a>(&'a self, w: &B<'a>) -> B<'a> {
        match self {
            Weights::Own(shape) => bound(w.buffer, shape),
            Weights::Padded(buffer, shape) => bound(buffer, shape),
        }
    }
}

/// `w` as `[O, taps]`, and the kernel that pads it there (none when `taps` = C·kH·kW).
fn padded_weights(gpu: &Gpu, w: &B<'_>, taps: usize) -> Result<(GpuKernel, Weights)> {
    let wd = w.shape.dims();
    let own = Shape::new([wd[0], wd[1] * wd[2] * wd[3]]);
    if taps == own.dims()[1] {
        return Ok((GpuKernel::new(vec![], vec![]), Weights::Own(own)));
    }
    let (padded, shape) = scratch(gpu, "conv2d padded weights", vec![wd[0], taps])?;
    let pad = crate::layout::slice_backward(gpu, 1, 0, &bound(w.buffer, &own), &bound(&padded, &shape))?;
    Ok((GpuKernel::from(pad), Weights::Padded(padded, shape)))
}

/// `rows [O, N·H'·W']` of `dy [N, O, H', W']`.
fn to_rows(gpu: &Gpu, c: &Conv2d, dy: &B<'_>) -> Result<(Dispatch, GpuBuffer, Shape)> {
    let d = dy.shape.dims();
    let (rows, shape) = scratch(gpu, "conv2d output rows", vec![d[1], d[0] * d[2] * d[3]])?;
    let params = params(c, d, d, &[1, 1], false, shape.numel());
    let dispatch = launch(gpu, "conv2d_to_rows", params, vec![(3, &rows), (5, dy.buffer)], &[dy.shape])?;
    Ok((dispatch, rows, shape))
}

/// `y = conv(x, w) + b`; without a bias, w is bound in its place (and never read there).
pub fn conv2d(gpu: &Gpu, c: &Conv2d, x: &B<'_>, w: &B<'_>, b: Option<&B<'_>>, y: &B<'_>) -> Result<GpuKernel> {
    let (wd, yd) = (w.shape.dims(), y.shape.dims());
    let bias = b.map_or(w.buffer, |b| b.buffer);
    if depthwise(c, x.shape.dims()[1]) {
        let quads = y.shape.numel() / yd[3] * yd[3].div_ceil(4);
        let params = params(c, x.shape.dims(), yd, &wd[2..], b.is_some(), quads);
        let bindings = vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)];
        return launch(gpu, "depthwise_conv2d", params, bindings, &[x.shape, w.shape]).map(GpuKernel::from);
    }
    if !lowered(gpu, c, x.shape.dims(), wd, yd) {
        let params = params(c, x.shape.dims(), yd, &wd[2..], b.is_some(), y.shape.numel());
        let bindings = vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)];
        return launch(gpu, "conv2d", params, bindings, &[x.shape, w.shape]).map(GpuKernel::from);
    }
    // rows [O, N·P] = W [O, K] · cols [K, N·P], then back to [N, O, P] with the bias.
    let taps = padded_taps(wd[1] * wd[2] * wd[3], wd[0], yd[0] * yd[2] * yd[3]);
    let (columns, cols, cols_shape) = im2col(gpu, c, x, &wd[2..], [yd[2], yd[3]], taps)?;
    let (padding, weights) = padded_weights(gpu, w, taps)?;
    let (rows, rows_shape) = scratch(gpu, "conv2d output rows", vec![wd[0], cols_shape.dims()[1]])?;
    let product = matmul_kernel(
        gpu,
        MatMul::default(),
        None,
        &weights.bound(w),
        &bound(&cols, &cols_shape),
        &bound(&rows, &rows_shape),
    )?;
    let params = params(c, x.shape.dims(), yd, &wd[2..], b.is_some(), y.shape.numel());
    let back = launch(gpu, "conv2d_from_rows", params, vec![(1, &rows), (3, y.buffer), (4, bias)], &[y.shape])?;
    Ok(padding.then(GpuKernel::new(vec![columns], vec![cols, rows])).then(product).then(back))
}

/// `dx [N,C,…]` (+ a bias): `cols = Wᵀ · rows(dy)`, then col2im.
fn input_gradient(gpu: &Gpu, c: &Conv2d, dy: &B<'_>, w: &B<'_>, b: Option<&B<'_>>, dx: &B<'_>) -> Result<GpuKernel> {
    let (wd, dyd, dxd) = (w.shape.dims(), dy.shape.dims(), dx.shape.dims());
    let (gather, rows, rows_shape) = to_rows(gpu, c, dy)?;
    // col2im never reads the zero rows that padding the taps adds.
    let taps = padded_taps(wd[1] * wd[2] * wd[3], wd[0], rows_shape.dims()[1]);
    let (cols, cols_shape) = scratch(gpu, "conv2d column gradients", vec![taps, rows_shape.dims()[1]])?;
    let (padding, weights) = padded_weights(gpu, w, taps)?;
    let transposed = MatMul { trans_a: true, trans_b: false };
    let product = matmul_kernel(
        gpu,
        transposed,
        None,
        &weights.bound(w),
        &bound(&rows, &rows_shape),
        &bound(&cols, &cols_shape),
    )?;
    let params = params(c, dxd, dyd, &wd[2..], b.is_some(), dx.shape.numel());
    let bias = b.map_or(w.buffer, |b| b.buffer);
    let scatter =
        launch(gpu, "conv2d_col2im", params, vec![(1, &cols), (3, dx.buffer), (4, bias)], &[dy.shape, w.shape])?;
    Ok(padding.then(GpuKernel::new(vec![gather], vec![rows, cols])).then(product).then(scatter))
}

/// `dx = conv2d_backward_input(dy, w)`.
pub fn conv2d_backward_input(gpu: &Gpu, c: &Conv2d, dy: &B<'_>, w: &B<'_>, dx: &B<'_>) -> Result<GpuKernel> {
    let dxd = dx.shape.dims();
    if depthwise(c, dxd[1]) {
        let quads = dx.shape.numel() / dxd[3] * dxd[3].div_ceil(4);
        let params = params(c, dxd, dy.shape.dims(), &w.shape.dims()[2..], false, quads);
        let bindings = vec![(2, w.buffer), (3, dx.buffer), (5, dy.buffer)];
        let entry = "depthwise_conv2d_backward_input";
        return launch(gpu, entry, params, bindings, &[dy.shape, w.shape]).map(GpuKernel::from);
    }
    if !lowered(gpu, c, dxd, w.shape.dims(), dy.shape.dims()) {
        let params = params(c, dx.shape.dims(), dy.shape.dims(), &w.shape.dims()[2..], false, dx.shape.numel());
        let bindings = vec![(1, dy.buffer), (2, w.buffer), (3, dx.buffer)];
        return launch(gpu, "conv2d_backward_input", params, bindings, &[dy.shape, w.shape]).map(GpuKernel::from);
    }
    input_gradient(gpu, c, dy, w, None, dx)
}

/// `y = convᵀ(x, w) + b`: the input gradient of the convolution from y's shape to x's.
pub fn conv_transpose2d(
    gpu: &Gpu,
    c: &Conv2d,
    x: &B<'_>,
    w: &B<'_>,
    b: Option<&B<'_>>,
    y: &B<'_>,
) -> Result<GpuKernel> {
    if !lowered(gpu, c, y.shape.dims(), w.shape.dims(), x.shape.dims()) {
        let params = params(c, y.shape.dims(), x.shape.dims(), &w.shape.dims()[2..], b.is_some(), y.shape.numel());
        let bias = b.map_or(w.buffer, |b| b.buffer);
        let bindings = vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)];
        return launch(gpu, "conv_transpose2d", params, bindings, &[x.shape, w.shape]).map(GpuKernel::from);
    }
    input_gradient(gpu, c, x, w, b, y)
}

/// `dw = conv2d_backward_weight(x, dy)`: `rows(dy) [O, N·P] · cols(x)ᵀ`, one product summing
/// over the whole batch.
pub fn conv2d_backward_weight(gpu: &Gpu, c: &Conv2d, x: &B<'_>, dy: &B<'_>, dw: &B<'_>) -> Result<GpuKernel> {
    let (dyd, dwd) = (dy.shape.dims(), dw.shape.dims());
    if depthwise(c, x.shape.dims()[1]) && depthwise_spans_fit(c, &dwd[2..]) {
        let params = params(c, x.shape.dims(), dyd, &dwd[2..], false, dw.shape.numel());
        let bindings = vec![(1, x.buffer), (3, dw.buffer), (5, dy.buffer)];
        let entry = "depthwise_conv2d_backward_weight";
        return launch(gpu, entry, params, bindings, &[x.shape, dy.shape]).map(GpuKernel::from);
    }
    // The product sums over every output position of the batch in one loop; where that is
    // longer than the adapter allows, the direct kernel's 64-way split is used instead.
    let too_long = gpu.loop_limit().is_some_and(|limit| dyd[0] * dyd[2] * dyd[3] > limit);
    if !lowered(gpu, c, x.shape.dims(), dwd, dyd) || too_long {
        let params = params(c, x.shape.dims(), dyd, &dwd[2..], false, dw.shape.numel());
        let bindings = vec![(1, x.buffer), (3, dw.buffer), (5, dy.buffer)];
        return launch(gpu, "conv2d_backward_weight", params, bindings, &[x.shape, dy.shape]).map(GpuKernel::from);
    }
    let unpadded = dwd[1] * dwd[2] * dwd[3];
    let taps = padded_taps(unpadded, dwd[0], dyd[0] * dyd[2] * dyd[3]);
    let (columns, cols, cols_shape) = im2col(gpu, c, x, &dwd[2..], [dyd[2], dyd[3]], taps)?;
    let (gather, rows, rows_shape) = to_rows(gpu, c, dy)?;
    let dw2 = Shape::new([dwd[0], unpadded]);
    // With padded taps, dW [O, taps] goes to scratch, and the padding's columns are dropped.
    let padded =
        (taps != unpadded).then(|| scratch(gpu, "conv2d padded weight gradient", vec![dwd[0], taps])).transpose()?;
    let target = padded.as_ref().map_or(bound(dw.buffer, &dw2), |(buffer, shape)| bound(buffer, shape));
    let transposed = MatMul { trans_a: false, trans_b: true };
    let product =
        matmul_kernel(gpu, transposed, None, &bound(&rows, &rows_shape), &bound(&cols, &cols_shape), &target)?;
    let steps = GpuKernel::new(vec![columns, gather], vec![cols, rows]).then(product);
    let Some((padded, padded_shape)) = padded else { return Ok(steps) };
    let unpad = crate::layout::slice(gpu, 1, 0, &bound(&padded, &padded_shape), &bound(dw.buffer, &dw2))?;
    Ok(steps.then(GpuKernel::new(vec![unpad], vec![padded])))
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
