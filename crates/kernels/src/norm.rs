use bytemuck::{Pod, Zeroable};
use kiln_core::{Op, Result};
use kiln_gpu::{Gpu, GpuBuffer};

use crate::{B, GpuKernel, Launch, NORM, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "batch_norm_stats",
    "batch_norm_coefficients",
    "batch_norm_backward_coefficients",
    "batch_norm",
    "batch_norm_backward_reduce",
    "batch_norm_backward_input",
    "batch_norm_running_update",
    "layer_norm_stats",
    "layer_norm",
    "layer_norm_backward_input",
    "layer_norm_backward_params",
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    count: u32,
    eps: f32,
    momentum: f32,
    training: u32,
    unbiased: f32,
    _pad: [u32; 2],
}

/// The layout of `x`, norm.wgsl's override constants: channels, and elements of a channel
/// per sample (1 for layer norm, whose channels are the last axis).
#[derive(Clone, Copy)]
struct Layout {
    channels: u32,
    inner: u32,
}

impl Layout {
    fn constants(self) -> Vec<(&'static str, f64)> {
        vec![("CHANNELS", f64::from(self.channels)), ("INNER", f64::from(self.inner))]
    }
}

/// What each entry point binds: x, stats, gamma, beta, dy, sums (the inputs, in op order)
/// at the slots of norm.wgsl, and `out` at 7.
fn slots(op: &Op) -> &'static [u32] {
    match op {
        Op::BatchNormStats | Op::LayerNormStats => &[1],
        Op::BatchNorm { .. } | Op::LayerNorm { .. } => &[1, 2, 3, 4],
        Op::BatchNormBackwardReduce { .. } | Op::LayerNormBackwardParams { .. } => &[1, 2, 5],
        Op::BatchNormBackwardInput { .. } => &[1, 2, 3, 5, 6],
        Op::LayerNormBackwardInput { .. } => &[1, 2, 3, 5],
        _ => &[2],
    }
}

/// The layout of `x` and the uniform: batch norm's channels are axis 1, layer norm's the
/// last axis.
fn params(op: &Op, x: &[usize]) -> (Layout, Params) {
    let n: usize = x.iter().product();
    let (channels, inner, count) = match op {
        Op::LayerNormStats
        | Op::LayerNorm { .. }
        | Op::LayerNormBackwardInput { .. }
        | Op::LayerNormBackwardParams { .. } => {
            let d = x.last().copied().unwrap_or(1).max(1);
            (d, 1, n / d)
        }
        _ => {
            let inner: usize = x[2..].iter().product();
            (x[1], inner, x[0] * inner)
        }
    };
    let (eps, training) = match op {
        Op::BatchNorm { eps } | Op::BatchNormBackwardReduce { eps } | Op::LayerNorm { eps } => (*eps, false),
        Op::LayerNormBackwardInput { eps } | Op::LayerNormBackwardParams { eps } => (*eps, false),
        Op::BatchNormBackwardInput { eps, training } => (*eps, *training),
        _ => (0.0, false),
    };
    let u = |v: usize| v as u32;
    let layout = Layout { channels: u(channels), inner: u(inner) };
    let training = u32::from(training);
    (layout, Params { n: u(n), count: u(count), eps, momentum: 0.0, training, unbiased: 1.0, _pad: [0; 2] })
}

/// The running-statistics update of `running [2,C]`, the variance unbiased over `count`.
fn running_params(momentum: f32, count: usize, running: &B<'_>) -> (Layout, Params) {
    let unbiased = (count as f64 / count.max(2).saturating_sub(1) as f64) as f32;
    let channels = running.shape.dims()[1] as u32;
    let params = Params { n: 2 * channels, count: 0, eps: 0.0, momentum, training: 0, unbiased, _pad: [0; 2] };
    (Layout { channels, inner: 1 }, params)
}

/// Any op of the normalisation family: `inputs` in op order, `out` the result (the running
/// statistics themselves for the in-place update).
pub fn norm(gpu: &Gpu, op: &Op, inputs: &[B<'_>], out: &B<'_>) -> Result<GpuKernel> {
    let ((layout, params), inputs) = match op {
        Op::BatchNormRunningUpdate { momentum, count } => (running_params(*momentum, *count, out), &inputs[1..]),
        _ => (params(op, inputs[0].shape.dims()), inputs),
    };
    let iterations = match op {
        Op::BatchNormStats | Op::BatchNormBackwardReduce { .. } | Op::LayerNormBackwardParams { .. } => {
            2 * (params.count as usize).div_ceil(64)
        }
        Op::LayerNormStats | Op::LayerNormBackwardInput { .. } => 2 * layout.channels as usize,
        _ => 0,
    };
    let shapes: Vec<_> = inputs.iter().map(|b| b.shape).collect();
    crate::check_loops(gpu, op.name(), iterations, &shapes)?;
    let bound: Vec<_> = slots(op).iter().zip(inputs).map(|(&slot, b)| (slot, b.buffer)).collect();
    if matches!(op, Op::BatchNorm { .. } | Op::BatchNormBackwardInput { .. }) {
        return affine(gpu, op, layout, params, &bound, out);
    }
    let workgroups = match op {
        Op::BatchNormStats | Op::BatchNormBackwardReduce { .. } => [layout.channels, 1, 1],
        Op::LayerNormStats | Op::LayerNormBackwardInput { .. } => grid_1d(gpu, params.count as usize),
        Op::LayerNormBackwardParams { .. } => [layout.channels, 1, 1],
        _ => grid_1d(gpu, params.n as usize),
    };
    let bindings = [bound.as_slice(), &[(7, out.buffer)]].concat();
    let launch = Launch {
        shader: NORM,
        entry: op.name(),
        constants: layout.constants(),
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups,
    };
    launch.build(gpu).map(GpuKernel::from)
}

/// Batch norm or its input gradient: a vec4 of coefficients per channel into scratch, then
/// the elementwise kernel reading x (and dy) and those (see norm.wgsl).
fn affine(
    gpu: &Gpu,
    op: &Op,
    layout: Layout,
    params: Params,
    bound: &[(u32, &GpuBuffer)],
    out: &B<'_>,
) -> Result<GpuKernel> {
    let coefficients = gpu.alloc(16 * u64::from(layout.channels), "batch norm coefficients")?;
    let entry = match op {
        Op::BatchNorm { .. } => "batch_norm_coefficients",
        _ => "batch_norm_backward_coefficients",
    };
    // x (slot 1) and dy (5) go to the elementwise kernel, the per-channel inputs here.
    let per_channel = |&&(slot, _): &&(u32, &GpuBuffer)| slot != 1 && slot != 5;
    let first = Launch {
        shader: NORM,
        entry,
        constants: layout.constants(),
        params: bytemuck::bytes_of(&params),
        bindings: bound.iter().filter(per_channel).copied().chain([(7, &coefficients)]).collect(),
        workgroups: grid_1d(gpu, layout.channels as usize),
    }
    .build(gpu)?;
    let elementwise = Launch {
        shader: NORM,
        entry: op.name(),
        constants: layout.constants(),
        params: bytemuck::bytes_of(&params),
        bindings: bound
            .iter()
            .filter(|b| !per_channel(b))
            .copied()
            .chain([(7, out.buffer), (8, &coefficients)])
            .collect(),
        workgroups: grid_1d(gpu, params.n as usize),
    }
    .build(gpu)?;
    Ok(GpuKernel::new(vec![first, elementwise], vec![coefficients]))
}
