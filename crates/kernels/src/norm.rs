use bytemuck::{Pod, Zeroable};
use kiln_core::{Result, Shape};
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

/// The ops of the normalisation family, each named as its entry point.
#[derive(Clone, Copy, Debug)]
pub enum NormOp {
    BatchNormStats,
    BatchNorm { eps: f32 },
    BatchNormBackwardReduce { eps: f32 },
    BatchNormBackwardInput { eps: f32, training: bool },
    BatchNormRunningUpdate { momentum: f32, count: usize },
    LayerNormStats,
    LayerNorm { eps: f32 },
    LayerNormBackwardInput { eps: f32 },
    LayerNormBackwardParams { eps: f32 },
}

impl NormOp {
    fn entry(self) -> &'static str {
        match self {
            NormOp::BatchNormStats => "batch_norm_stats",
            NormOp::BatchNorm { .. } => "batch_norm",
            NormOp::BatchNormBackwardReduce { .. } => "batch_norm_backward_reduce",
            NormOp::BatchNormBackwardInput { .. } => "batch_norm_backward_input",
            NormOp::BatchNormRunningUpdate { .. } => "batch_norm_running_update",
            NormOp::LayerNormStats => "layer_norm_stats",
            NormOp::LayerNorm { .. } => "layer_norm",
            NormOp::LayerNormBackwardInput { .. } => "layer_norm_backward_input",
            NormOp::LayerNormBackwardParams { .. } => "layer_norm_backward_params",
        }
    }

    /// What each entry point binds: x, stats, gamma, beta, dy, sums (the inputs, in op order)
    /// at the slots of norm.wgsl, and `out` at 7; the running update binds only its statistics.
    fn slots(self) -> &'static [u32] {
        match self {
            NormOp::BatchNormStats | NormOp::LayerNormStats => &[1],
            NormOp::BatchNorm { .. } | NormOp::LayerNorm { .. } => &[1, 2, 3, 4],
            NormOp::BatchNormBackwardReduce { .. } | NormOp::LayerNormBackwardParams { .. } => &[1, 2, 5],
            NormOp::BatchNormBackwardInput { .. } => &[1, 2, 3, 5, 6],
            NormOp::LayerNormBackwardInput { .. } => &[1, 2, 3, 5],
            NormOp::BatchNormRunningUpdate { .. } => &[2],
        }
    }

    /// Layer norm's channels are the last axis; batch norm's are axis 1.
    fn is_layer_norm(self) -> bool {
        match self {
            NormOp::LayerNormStats
            | NormOp::LayerNorm { .. }
            | NormOp::LayerNormBackwardInput { .. }
            | NormOp::LayerNormBackwardParams { .. } => true,
            NormOp::BatchNormStats
            | NormOp::BatchNorm { .. }
            | NormOp::BatchNormBackwardReduce { .. }
            | NormOp::BatchNormBackwardInput { .. }
            | NormOp::BatchNormRunningUpdate { .. } => false,
        }
    }

    /// The epsilon, and whether the input gradient flows through the batch statistics.
    fn eps_and_training(self) -> (f32, bool) {
        match self {
            NormOp::BatchNorm { eps }
            | NormOp::BatchNormBackwardReduce { eps }
            | NormOp::LayerNorm { eps }
            | NormOp::LayerNormBackwardInput { eps }
            | NormOp::LayerNormBackwardParams { eps } => (eps, false),
            NormOp::BatchNormBackwardInput { eps, training } => (eps, training),
            NormOp::BatchNormStats | NormOp::LayerNormStats | NormOp::BatchNormRunningUpdate { .. } => (0.0, false),
        }
    }

    /// Batch norm and its input gradient first compute a vec4 of coefficients per channel,
    /// with this entry point.
    fn coefficients_entry(self) -> Option<&'static str> {
        match self {
            NormOp::BatchNorm { .. } => Some("batch_norm_coefficients"),
            NormOp::BatchNormBackwardInput { .. } => Some("batch_norm_backward_coefficients"),
            NormOp::BatchNormStats
            | NormOp::BatchNormBackwardReduce { .. }
            | NormOp::BatchNormRunningUpdate { .. }
            | NormOp::LayerNormStats
            | NormOp::LayerNorm { .. }
            | NormOp::LayerNormBackwardInput { .. }
            | NormOp::LayerNormBackwardParams { .. } => None,
        }
    }

    /// Loop passes per invocation (each loop's iterations plus one, and the trees of partial
    /// sums; checked against the adapter's budget) and the grid.
    fn iterations_and_grid(self, gpu: &Gpu, layout: Layout, params: &Params) -> (usize, [u32; 3]) {
        let per_channel = [layout.channels, 1, 1];
        let strided = (params.count as usize).div_ceil(64) + 1 + 8;
        match self {
            NormOp::BatchNormStats | NormOp::BatchNormBackwardReduce { .. } => (2 * strided, per_channel),
            NormOp::LayerNormBackwardParams { .. } => (strided, per_channel),
            NormOp::LayerNormStats | NormOp::LayerNormBackwardInput { .. } => {
                (2 * (layout.channels as usize + 1), grid_1d(gpu, params.count as usize))
            }
            NormOp::BatchNorm { .. }
            | NormOp::BatchNormBackwardInput { .. }
            | NormOp::BatchNormRunningUpdate { .. }
            | NormOp::LayerNorm { .. } => (0, grid_1d(gpu, params.n as usize)),
        }
    }
}

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

/// The layout of `x` and the uniform.
fn params(op: NormOp, x: &[usize]) -> (Layout, Params) {
    let n: usize = x.iter().product();
    let (channels, inner, count) = if op.is_layer_norm() {
        let d = x.last().copied().unwrap_or(1).max(1);
        (d, 1, n / d)
    } else {
        let inner: usize = x[2..].iter().product();
        (x[1], inner, x[0] * inner)
    };
    let (eps, training) = op.eps_and_training();
    let u = |v: usize| v as u32;
    let layout = Layout { channels: u(channels), inner: u(inner) };
    let training = u32::from(training);
    (layout, Params { n: u(n), count: u(count), eps, momentum: 0.0, training, unbiased: 1.0, _pad: [0; 2] })
}

/// The running-statistics update of `running [2,C]`, the variance unbiased over `count`.
fn running_params(momentum: f32, count: usize, running: &Shape) -> (Layout, Params) {
    let unbiased = (count as f64 / count.max(2).saturating_sub(1) as f64) as f32;
    let channels = running.dims()[1] as u32;
    let params = Params { n: 2 * channels, count: 0, eps: 0.0, momentum, training: 0, unbiased, _pad: [0; 2] };
    (Layout { channels, inner: 1 }, params)
}

/// The scratch of a normalisation op on input `x`: the per-channel coefficients of batch
/// norm and its input gradient.
pub fn scratch(op: NormOp, x: &Shape) -> Vec<u64> {
    match op.coefficients_entry() {
        Some(_) => vec![16 * u64::from(params(op, x.dims()).0.channels)],
        None => vec![],
    }
}

/// Any op of the normalisation family: `inputs` in op order, `out` the result (the running
/// statistics themselves for the in-place update).
pub fn norm(gpu: &Gpu, op: NormOp, inputs: &[B<'_>], out: &B<'_>, scratch: &[&GpuBuffer]) -> Result<GpuKernel> {
    let ((layout, params), inputs) = if let NormOp::BatchNormRunningUpdate { momentum, count } = op {
        (running_params(momentum, count, out.shape), &inputs[1..])
    } else {
        (params(op, inputs[0].shape.dims()), inputs)
    };
    let (iterations, workgroups) = op.iterations_and_grid(gpu, layout, &params);
    let shapes: Vec<_> = inputs.iter().map(|b| b.shape).collect();
    crate::check_loops(gpu, op.entry(), iterations, &shapes)?;
    let bound: Vec<_> = op.slots().iter().zip(inputs).map(|(&slot, b)| (slot, b.buffer)).collect();
    if let Some(entry) = op.coefficients_entry() {
        let coefficients = crate::fits(scratch.first().copied(), 16 * u64::from(layout.channels), op.entry())?;
        return affine(gpu, [entry, op.entry()], layout, params, &bound, [out.buffer, coefficients]);
    }
    let bindings = [bound.as_slice(), &[(7, out.buffer)]].concat();
    let launch = Launch {
        shader: NORM,
        entry: op.entry(),
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
    [coefficients_entry, entry]: [&'static str; 2],
    layout: Layout,
    params: Params,
    bound: &[(u32, &GpuBuffer)],
    [out, coefficients]: [&GpuBuffer; 2],
) -> Result<GpuKernel> {
    // x (slot 1) and dy (5) go to the elementwise kernel, the per-channel inputs here.
    let per_channel = |&&(slot, _): &&(u32, &GpuBuffer)| slot != 1 && slot != 5;
    let first = Launch {
        shader: NORM,
        entry: coefficients_entry,
        constants: layout.constants(),
        params: bytemuck::bytes_of(&params),
        bindings: bound.iter().filter(per_channel).copied().chain([(7, coefficients)]).collect(),
        workgroups: grid_1d(gpu, layout.channels as usize),
    }
    .build(gpu)?;
    let elementwise = Launch {
        shader: NORM,
        entry,
        constants: layout.constants(),
        params: bytemuck::bytes_of(&params),
        bindings: bound.iter().filter(|b| !per_channel(b)).copied().chain([(7, out), (8, coefficients)]).collect(),
        workgroups: grid_1d(gpu, params.n as usize),
    }
    .build(gpu)?;
    Ok(GpuKernel::new(vec![first, elementwise]))
}
