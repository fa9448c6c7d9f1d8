use bytemuck::{Pod, Zeroable};
use kiln_core::{Conv2d, Result};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, fold_workgroups};

use crate::{B, CONV, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["conv2d", "conv2d_backward_input", "conv_transpose2d", "conv2d_backward_weight"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
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
    has_bias: u32,
    n: u32,
    _pad: [u32; 2],
}

/// A convolution with geometry `c` from an input side `x` `[N,C,H,W]` to an output side `y`
/// `[N,O,H',W']` with `kernel` taps, writing `n` elements.
fn params(c: &Conv2d, x: &[usize], y: &[usize], kernel: &[usize], has_bias: bool, n: usize) -> Params {
    let u = |v: usize| v as u32;
    Params {
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
        has_bias: u32::from(has_bias),
        n: u(n),
        _pad: [0; 2],
    }
}

fn launch(
    gpu: &Gpu,
    entry: &'static str,
    params: Params,
    bindings: Vec<(u32, &GpuBuffer)>,
    shapes: &[&kiln_core::Shape],
) -> Result<Dispatch> {
    check(gpu, entry, &params, shapes)?;
    let n = params.n as usize;

    let workgroups = match entry {
        // One workgroup per weight.
        "conv2d_backward_weight" => fold_workgroups(params.n, gpu.limits().max_compute_workgroups_per_dimension),
        _ => grid_1d(gpu, n),
    };
    let launch =
        Launch { shader: CONV, entry, constants: vec![], params: bytemuck::bytes_of(&params), bindings, workgroups };

    launch.build(gpu)
}

/// Loop iterations per invocation of each entry point, checked against the adapter's limit.
fn check(gpu: &Gpu, entry: &str, p: &Params, shapes: &[&kiln_core::Shape]) -> Result<()> {
    let taps = (p.k_h * (1 + p.k_w)) as usize;
    let iterations = match entry {
        "conv2d" => (p.x_c / p.groups) as usize * (1 + taps),
        "conv2d_backward_weight" => ((p.y_h * p.y_w) as usize).div_ceil(64) * (1 + p.batch as usize),
        _ => taps * (1 + (p.y_c / p.groups) as usize),
    };
    crate::check_loops(gpu, entry, iterations, shapes)
}

/// `y = conv(x, w) + b`; without a bias, w is bound in its place (and never read there).
pub fn conv2d(gpu: &Gpu, c: &Conv2d, x: &B<'_>, w: &B<'_>, b: Option<&B<'_>>, y: &B<'_>) -> Result<Dispatch> {
    let (wd, n) = (w.shape.dims(), y.shape.numel());

    let params = params(c, x.shape.dims(), y.shape.dims(), &wd[2..], b.is_some(), n);
    let bias = b.map_or(w.buffer, |b| b.buffer);
    launch(gpu, "conv2d", params, vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)], &[x.shape, w.shape])
}

/// `dx = conv2d_backward_input(dy, w)`.
pub fn conv2d_backward_input(gpu: &Gpu, c: &Conv2d, dy: &B<'_>, w: &B<'_>, dx: &B<'_>) -> Result<Dispatch> {
    let params = params(c, dx.shape.dims(), dy.shape.dims(), &w.shape.dims()[2..], false, dx.shape.numel());
    launch(
        gpu,
        "conv2d_backward_input",
        params,
        vec![(1, dy.buffer), (2, w.buffer), (3, dx.buffer)],
        &[dy.shape, w.shape],
    )
}

/// `y = convᵀ(x, w) + b`: the input gradient of the convolution from y's shape to x's.
pub fn conv_transpose2d(gpu: &Gpu, c: &Conv2d, x: &B<'_>, w: &B<'_>, b: Option<&B<'_>>, y: &B<'_>) -> Result<Dispatch> {
    let params = params(c, y.shape.dims(), x.shape.dims(), &w.shape.dims()[2..], b.is_some(), y.shape.numel());
    let bias = b.map_or(w.buffer, |b| b.buffer);
    launch(
        gpu,
        "conv_transpose2d",
        params,
        vec![(1, x.buffer), (2, w.buffer), (3, y.buffer), (4, bias)],
        &[x.shape, w.shape],
    )
}

/// `dw = conv2d_backward_weight(x, dy)`.
pub fn conv2d_backward_weight(gpu: &Gpu, c: &Conv2d, x: &B<'_>, dy: &B<'_>, dw: &B<'_>) -> Result<Dispatch> {
    let params = params(c, x.shape.dims(), dy.shape.dims(), &dw.shape.dims()[2..], false, dw.shape.numel());
    launch(
        gpu,
        "conv2d_backward_weight",
        params,
        vec![(1, x.buffer), (3, dw.buffer), (5, dy.buffer)],
        &[x.shape, dy.shape],
    )
}
