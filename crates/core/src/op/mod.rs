//! The closed set of operators. Backward kernels are ordinary ops; matches over `Op` have no
//! catch-all arm, so the compiler lists every place a new op must be handled.

mod attrs;
mod norm;
mod rules;
mod spatial;

pub use attrs::{
    Activation, Adagrad, Adam, Conv2d, Dropout, LossKind, LossScale, LrSchedule, Noise, Pool2d, PoolKind, Precision,
    Rmsprop, Sgd, mix32,
};

use crate::{DType, Result, Shape};
use norm::{BatchNormPart, LayerNormPart};
use rules::*;

/// `y = op(a) · op(b)` over the last two axes; a leading batch axis on either side broadcasts.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MatMul {
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Sum (or max) over `axes` (sorted, resolved); a sum is scaled by `scale` (1 for `sum`,
/// 1/count for `mean`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub axes: Vec<usize>,
    pub keepdims: bool,
    pub scale: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Fed by the caller before each run.
    Input,
    /// Persistent state: parameters, optimizer buffers, running statistics, constants.
    Variable,
    MatMul(MatMul),
    /// `(x, w, b [N])` → `matmul(x, w) + b` over a 2-D product's columns, with `relu` its
    /// ReLU: a linear layer in one kernel. Formed by `kiln_graph::fuse` after differentiation
    /// (the unfused nodes carry its gradient), never by a model.
    Linear {
        matmul: MatMul,
        relu: bool,
    },
    /// `(a, b, x)` → ReLU's gradient at `x` of `matmul(a, b)`: the product where `x > 0`, else
    /// 0, in one kernel. Formed by `kiln_graph::fuse` from a product used only by that
    /// gradient, never by a model.
    MatMulReluBackward(MatMul),
    Add,
    Sub,
    Mul,
    Div,
    Activation(Activation),
    /// `(x, dy)` → dx.
    ActivationBackward(Activation),
    /// `(x [N,C,…], alpha [C])`: `x` where positive, else `alpha[c]·x`.
    Prelu,
    /// `(x, alpha, dy)` → dx.
    PreluBackwardInput,
    /// `(x, dy)` → dalpha `[C]`.
    PreluBackwardAlpha,
    Sum(Reduce),
    Max(Reduce),
    /// `(x, y, dy)`: dy shared equally by the elements equal to the maximum.
    MaxBackward(Reduce),
    /// Broadcasts `x` (same rank, dims 1 or equal) to `shape`, times `scale`.
    BroadcastTo {
        shape: Shape,
        scale: f32,
    },
    Reshape(Shape),
    Transpose(Vec<usize>),
    /// Elements `start..start+len` along `axis`.
    Slice {
        axis: usize,
        start: usize,
        len: usize,
    },
    /// `dy` placed at `start..` along `axis` of a zero tensor `full` long on that axis.
    SliceBackward {
        axis: usize,
        start: usize,
        full: usize,
    },
    /// Its inputs one after another along `axis` (equal elsewhere).
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
    },
    SoftmaxBackward {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    LogSoftmaxBackward {
        axis: usize,
    },
    /// Per-row `logsumexp(logits) - logits[label]`: `[N,C]`, labels `[N]` → `[N]`.
    CrossEntropyPerSample,
    CrossEntropyPerSampleBackward,
    /// Per-row `-logp[label]`: `[N,C]`, labels `[N]` → `[N]`.
    NllPerSample,
    NllPerSampleBackward,
    /// Elementwise `ℓ(pred, target)`.
    Loss(LossKind),
    /// `(pred, target, dy)` → the gradient with respect to pred, or to target.
    LossBackward {
        kind: LossKind,
        wrt_target: bool,
    },
    /// `(x [N,C,H,W], w [O,C/g,kH,kW], b [O]?)` → `[N,O,H',W']`.
    Conv2d(Conv2d),
    /// `(x, w, b?)` → `max(conv2d(x, w, b), 0)`: a convolution and the ReLU after it in one
    /// kernel. Formed by `kiln_graph::fuse` after differentiation (its gradient is the pair's,
    /// which the unfused nodes carry), never by a model.
    Conv2dRelu(Conv2d),
    /// `(dy [N,O,H',W'], w)` → dx `[N,C,H,W]` with `H,W = input_hw`; output positions past
    /// dy's extent count as zero (so it also serves `conv_transpose2d`).
    Conv2dBackwardInput {
        conv: Conv2d,
        input_hw: [usize; 2],
    },
    /// `(x, dy)` → dw `[O, C/g, kH, kW]` with `kH,kW = kernel_hw`.
    Conv2dBackwardWeight {
        conv: Conv2d,
        kernel_hw: [usize; 2],
    },
    /// `(x [N,C,H,W], w [C,O/g,kH,kW], b [O]?)` → `[N,O,H',W']`, the adjoint of `conv2d`.
    ConvTranspose2d {
        conv: Conv2d,
        output_padding: [usize; 2],
    },
    Pool2d(Pool2d),
    /// `(x, y, dy)` → dx.
    Pool2dBackward(Pool2d),
    /// `(x, y, dy)` → the ReLU's gradient at `x` of the pooling's: `dx` where `x > 0`, else 0.
    /// The pooling of a ReLU's output and the ReLU's gradient after it in one kernel, formed
    /// by `kiln_graph::fuse`.
    Pool2dBackwardRelu(Pool2d),
    /// `x [N,C,…]` → `[2,C]`: per-channel mean and biased variance over every other axis.
    BatchNormStats,
    /// `(x, stats [2,C], gamma [C], beta [C])`: `γ(x - mean)/√(var + eps) + β`.
    BatchNorm {
        eps: f32,
    },
    /// `(x, stats, dy)` → `[2,C]`: `Σ dy` and `Σ dy·x̂` per channel.
    BatchNormBackwardReduce {
        eps: f32,
    },
    /// `(x, stats, gamma, dy, sums)` → dx: through the batch statistics when `training`
    /// (stats computed from this x), else with the statistics held constant (eval mode).
    BatchNormBackwardInput {
        eps: f32,
        training: bool,
    },
    /// In place: `(running [2,C], stats [2,C])`: `r ← (1-m)·r + m·(mean, unbiased var)`,
    /// the variance unbiased over `count` elements per channel.
    BatchNormRunningUpdate {
        momentum: f32,
        count: usize,
    },
    /// `x [R…,D]` → `[R,2]`: mean and biased variance of every row of the last axis.
    LayerNormStats,
    /// `(x, stats [R,2], gamma [D], beta [D])`.
    LayerNorm {
        eps: f32,
    },
    /// `(x, stats, gamma, dy)` → dx.
    LayerNormBackwardInput {
        eps: f32,
    },
    /// `(x, stats, dy)` → `[2,D]`: `Σ dy` and `Σ dy·x̂` per feature.
    LayerNormBackwardParams {
        eps: f32,
    },
    Dropout(Dropout),
    /// `dy` → dx, with the forward's mask.
    DropoutBackward(Dropout),
    /// No inputs → standard normal noise of `shape`, drawn afresh every run.
    RandomNormal {
        shape: Shape,
        noise: Noise,
    },
    /// `(table [V,D], ids […] i32)` → `[…,D]`.
    Embedding,
    /// `(ids, dy)` → dtable `[vocab, D]`, each row gathering its ids' gradients.
    EmbeddingBackward {
        vocab: usize,
    },
    /// `Σ g²` (a scalar) → `min(1, max_norm / (√Σg² + 1e-6))`, the factor of clipping by norm.
    ClipFactor {
        max_norm: f32,
    },
    /// `x` rounded to the nearest binary16 value (ties to even, past the largest finite one to
    /// ±inf), kept in f32: a product's operand under `Precision::Mixed`.
    RoundHalf,
    /// `(Σg², scale)` → `1/scale` where `Σg²` is finite, else 0: the factor that unscales a
    /// loss-scaled step's gradients, 0 skipping the step. With `max_norm`, times the clipping
    /// factor of the unscaled gradients, `min(1, max_norm / (√Σg²/scale + 1e-6))`.
    LossScaleFactor {
        max_norm: Option<f32>,
    },
    /// In place: `(scale, good_steps, factor)`: with `factor` 0 (a skipped step) the scale
    /// halves and the count restarts, else the count grows and at `growth_interval` the scale
    /// doubles (within `LossScale::MIN..=MAX`).
    LossScaleUpdate(LossScale),
    /// In place: `param`, `grad`, `momentum_buf`; updates `param` and `momentum_buf`. Every
    /// optimizer step may take one more input, a scalar factor: the gradient is then
    /// `factor·grad`, and a factor of 0 leaves the parameter and its state unchanged.
    SgdStep(Sgd),
    /// In place: `param`, `grad`, `m`, `v`; updates `param`, `m` and `v`.
    AdamStep(Adam),
    /// In place: `param`, `grad`, `sum_sq`.
    AdagradStep(Adagrad),
    /// In place: `param`, `grad`, `sq_avg`.
    RmspropStep(Rmsprop),
    /// In place: `(variable, value)`: the variable takes the value (a gradient left in the
    /// parameter store for another program, say).
    Assign,
}

/// How an executor treats a node of each op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Fed by the caller before each run.
    Input,
    /// Held in the parameter store, by name.
    Variable,
    /// Its input's buffer seen with another shape: no kernel.
    View,
    /// Computed by a kernel (in place, into its updated inputs, where it has any).
    Kernel,
}

/// What counts the runs of an op whose attributes advance every run (see `Op::at_run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunCounter {
    /// The step count of the parameter it updates (its input 0): it advances only when that
    /// parameter is updated, whichever program updates it.
    Parameter,
    /// A dropout layer's own count, shared by its forward and backward ops (by seed).
    Dropout { seed: u32 },
    /// A noise generator's own count (by seed), shared by every program drawing from it.
    Noise { seed: u32 },
}

type In<'a> = (&'a Shape, DType);

/// Where the exclusive bound of an op's indices comes from.
enum IndexBound {
    /// Axis `axis` of input `input` (the classes of the logits, the rows of a table).
    Dim {
        input: usize,
        axis: usize,
    },
    Fixed(usize),
}

const GRADIENT: &str = "gradient must match its forward tensor";

impl Op {
    /// The op's name, the same in WGSL entry points, host functions and the CPU path.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Variable => "variable",
            Op::MatMul(_) => "matmul",
            Op::Linear { relu: false, .. } => "linear",
            Op::Linear { relu: true, .. } => "linear_relu",
            Op::MatMulReluBackward(_) => "matmul_relu_backward",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Activation(a) => a.name(),
            Op::ActivationBackward(a) => a.backward_name(),
            Op::Prelu => "prelu",
            Op::PreluBackwardInput => "prelu_backward_input",
            Op::PreluBackwardAlpha => "prelu_backward_alpha",
            Op::Sum(_) => "sum",
            Op::Max(_) => "max",
            Op::MaxBackward(_) => "max_backward",
            Op::BroadcastTo { .. } => "broadcast_to",
            Op::Reshape(_) => "reshape",
            Op::Transpose(_) => "transpose",
            Op::Slice { .. } => "slice",
            Op::SliceBackward { .. } => "slice_backward",
            Op::Concat { .. } => "concat",
            Op::Softmax { .. } => "softmax",
            Op::SoftmaxBackward { .. } => "softmax_backward",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::LogSoftmaxBackward { .. } => "log_softmax_backward",
            Op::CrossEntropyPerSample => "cross_entropy_per_sample",
            Op::CrossEntropyPerSampleBackward => "cross_entropy_per_sample_backward",
            Op::NllPerSample => "nll_per_sample",
            Op::NllPerSampleBackward => "nll_per_sample_backward",
            Op::Loss(kind) => kind.name(),
            Op::LossBackward { kind, wrt_target } => kind.backward_name(*wrt_target),
            Op::Conv2d(_) => "conv2d",
            Op::Conv2dRelu(_) => "conv2d_relu",
            Op::Conv2dBackwardInput { .. } => "conv2d_backward_input",
            Op::Conv2dBackwardWeight { .. } => "conv2d_backward_weight",
            Op::ConvTranspose2d { .. } => "conv_transpose2d",
            Op::Pool2d(p) => p.name(),
            Op::Pool2dBackward(p) => p.backward_name(),
            Op::Pool2dBackwardRelu(_) => "pool2d_backward_relu",
            Op::BatchNormStats => "batch_norm_stats",
            Op::BatchNorm { .. } => "batch_norm",
            Op::BatchNormBackwardReduce { .. } => "batch_norm_backward_reduce",
            Op::BatchNormBackwardInput { .. } => "batch_norm_backward_input",
            Op::BatchNormRunningUpdate { .. } => "batch_norm_running_update",
            Op::LayerNormStats => "layer_norm_stats",
            Op::LayerNorm { .. } => "layer_norm",
            Op::LayerNormBackwardInput { .. } => "layer_norm_backward_input",
            Op::LayerNormBackwardParams { .. } => "layer_norm_backward_params",
            Op::Dropout(_) => "dropout",
            Op::DropoutBackward(_) => "dropout_backward",
            Op::RandomNormal { .. } => "random_normal",
            Op::Embedding => "embedding",
            Op::EmbeddingBackward { .. } => "embedding_backward",
            Op::ClipFactor { .. } => "clip_factor",
            Op::RoundHalf => "round_half",
            Op::LossScaleFactor { .. } => "loss_scale_factor",
            Op::LossScaleUpdate(_) => "loss_scale_update",
            Op::SgdStep(_) => "sgd_step",
            Op::AdamStep(a) if a.decoupled => "adamw_step",
            Op::AdamStep(_) => "adam_step",
            Op::AdagradStep(_) => "adagrad_step",
            Op::RmspropStep(_) => "rmsprop_step",
            Op::Assign => "assign",
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Op::Input => Role::Input,
            Op::Variable => Role::Variable,
            Op::Reshape(_) => Role::View,
            Op::MatMul(_)
            | Op::Linear { .. }
            | Op::MatMulReluBackward(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::Sum(_)
            | Op::Max(_)
            | Op::MaxBackward(_)
            | Op::BroadcastTo { .. }
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmax { .. }
            | Op::LogSoftmaxBackward { .. }
            | Op::CrossEntropyPerSample
            | Op::CrossEntropyPerSampleBackward
            | Op::NllPerSample
            | Op::NllPerSampleBackward
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Conv2d(_)
            | Op::Conv2dRelu(_)
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::ConvTranspose2d { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. }
            | Op::Dropout(_)
            | Op::DropoutBackward(_)
            | Op::RandomNormal { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. }
            | Op::LossScaleUpdate(_)
            | Op::SgdStep(_)
            | Op::AdamStep(_)
            | Op::AdagradStep(_)
            | Op::RmspropStep(_)
            | Op::Assign => Role::Kernel,
        }
    }

    /// The inputs a product (matrix product or convolution, forward or backward) multiplies:
    /// what a graph of `Precision::Mixed` rounds to binary16. Biases and masks are added or
    /// applied in f32, so they are not among them.
    pub fn product_operands(&self) -> &'static [usize] {
        match self {
            Op::MatMul(_)
            | Op::Linear { .. }
            | Op::MatMulReluBackward(_)
            | Op::Conv2d(_)
            | Op::Conv2dRelu(_)
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::ConvTranspose2d { .. } => &[0, 1],
            Op::Input
            | Op::Variable
            | Op::Reshape(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::Sum(_)
            | Op::Max(_)
            | Op::MaxBackward(_)
            | Op::BroadcastTo { .. }
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmax { .. }
            | Op::LogSoftmaxBackward { .. }
            | Op::CrossEntropyPerSample
            | Op::CrossEntropyPerSampleBackward
            | Op::NllPerSample
            | Op::NllPerSampleBackward
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. }
            | Op::Dropout(_)
            | Op::DropoutBackward(_)
            | Op::RandomNormal { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. }
            | Op::LossScaleUpdate(_)
            | Op::SgdStep(_)
            | Op::AdamStep(_)
            | Op::AdagradStep(_)
            | Op::RmspropStep(_)
            | Op::Assign => &[],
        }
    }

    /// Indices of the inputs an in-place update writes (empty for ordinary ops).
    pub fn updated_inputs(&self) -> &'static [usize] {
        match self {
            Op::SgdStep(_) | Op::AdagradStep(_) | Op::RmspropStep(_) => &[0, 2],
            Op::AdamStep(_) => &[0, 2, 3],
            Op::BatchNormRunningUpdate { .. } | Op::Assign => &[0],
            Op::LossScaleUpdate(_) => &[0, 1],
            Op::Input
            | Op::Variable
            | Op::MatMul(_)
            | Op::Linear { .. }
            | Op::MatMulReluBackward(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::Sum(_)
            | Op::Max(_)
            | Op::MaxBackward(_)
            | Op::BroadcastTo { .. }
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmax { .. }
            | Op::LogSoftmaxBackward { .. }
            | Op::CrossEntropyPerSample
            | Op::CrossEntropyPerSampleBackward
            | Op::NllPerSample
            | Op::NllPerSampleBackward
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Conv2d(_)
            | Op::Conv2dRelu(_)
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::ConvTranspose2d { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. }
            | Op::Dropout(_)
            | Op::DropoutBackward(_)
            | Op::RandomNormal { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. } => &[],
        }
    }

    /// The input holding i32 indices (class labels, token ids), if the op has one.
    pub fn index_input(&self) -> Option<usize> {
        self.indexing().map(|(input, _)| input)
    }

    /// The exclusive upper bound of the indices of `index_input`, given the input shapes, so
    /// that a fed tensor can be range-checked before a run.
    pub fn index_bound(&self, shapes: &[&Shape]) -> Option<usize> {
        let dim = |input: usize, axis: usize| shapes.get(input).and_then(|s| s.dims().get(axis)).copied();
        match self.indexing()?.1 {
            IndexBound::Dim { input, axis } => dim(input, axis),
            IndexBound::Fixed(bound) => Some(bound),
        }
    }

    /// The index input and where its bound comes from, for ops that index with i32 values.
    fn indexing(&self) -> Option<(usize, IndexBound)> {
        match self {
            Op::CrossEntropyPerSample
            | Op::CrossEntropyPerSampleBackward
            | Op::NllPerSample
            | Op::NllPerSampleBackward => Some((1, IndexBound::Dim { input: 0, axis: 1 })),
            Op::Embedding => Some((1, IndexBound::Dim { input: 0, axis: 0 })),
            Op::EmbeddingBackward { vocab } => Some((0, IndexBound::Fixed(*vocab))),
            Op::Input
            | Op::Variable
            | Op::MatMul(_)
            | Op::Linear { .. }
            | Op::MatMulReluBackward(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::Sum(_)
            | Op::Max(_)
            | Op::MaxBackward(_)
            | Op::BroadcastTo { .. }
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmax { .. }
            | Op::LogSoftmaxBackward { .. }
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Conv2d(_)
            | Op::Conv2dRelu(_)
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::ConvTranspose2d { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. }
            | Op::Dropout(_)
            | Op::DropoutBackward(_)
            | Op::RandomNormal { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. }
            | Op::LossScaleUpdate(_)
            | Op::SgdStep(_)
            | Op::AdamStep(_)
            | Op::AdagradStep(_)
            | Op::RmspropStep(_)
            | Op::Assign => None,
        }
    }

    /// For ops whose attributes advance every run (optimizer step counts and schedules,
    /// dropout masks): what counts their runs, and the op as it runs when that counter reads
    /// `count` (its step advanced by `count`); `None` for every other op.
    pub fn at_run(&self, count: u32) -> Option<(RunCounter, Op)> {
        let parameter = |op: Op| Some((RunCounter::Parameter, op));
        match self {
            Op::SgdStep(s) => parameter(Op::SgdStep(Sgd { step: s.step + count, ..*s })),
            Op::AdamStep(a) => parameter(Op::AdamStep(Adam { step: a.step + count, ..*a })),
            Op::AdagradStep(a) => parameter(Op::AdagradStep(Adagrad { step: a.step + count, ..*a })),
            Op::RmspropStep(r) => parameter(Op::RmspropStep(Rmsprop { step: r.step + count, ..*r })),
            Op::Dropout(d) => {
                Some((RunCounter::Dropout { seed: d.seed }, Op::Dropout(Dropout { step: d.step + count, ..*d })))
            }
            Op::DropoutBackward(d) => Some((
                RunCounter::Dropout { seed: d.seed },
                Op::DropoutBackward(Dropout { step: d.step + count, ..*d }),
            )),
            Op::RandomNormal { shape, noise } => Some((
                RunCounter::Noise { seed: noise.seed },
                Op::RandomNormal { shape: shape.clone(), noise: Noise { step: noise.step + count, ..*noise } },
            )),
            Op::Input
            | Op::Variable
            | Op::MatMul(_)
            | Op::Linear { .. }
            | Op::MatMulReluBackward(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::Sum(_)
            | Op::Max(_)
            | Op::MaxBackward(_)
            | Op::BroadcastTo { .. }
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmax { .. }
            | Op::LogSoftmaxBackward { .. }
            | Op::CrossEntropyPerSample
            | Op::CrossEntropyPerSampleBackward
            | Op::NllPerSample
            | Op::NllPerSampleBackward
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Conv2d(_)
            | Op::Conv2dRelu(_)
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::ConvTranspose2d { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. }
            | Op::LossScaleUpdate(_)
            | Op::Assign => None,
        }
    }

    /// Shape and dtype of the output, or an error naming the op and the shapes.
    pub fn output(&self, inputs: &[In<'_>]) -> Result<(Shape, DType)> {
        let name = self.name();
        let shape = match self {
            Op::Input | Op::Variable => return Err(crate::Error::attribute(name, "a source node has no inputs")),
            Op::RandomNormal { shape, .. } => {
                if !inputs.is_empty() {
                    return Err(crate::Error::shape(name, "takes no inputs", "none", inputs.len()));
                }
                if shape.numel() > Noise::MAX_ELEMENTS {
                    return Err(crate::Error::shape(name, "draws too many elements", Noise::MAX_ELEMENTS, shape));
                }
                shape.clone()
            }
            Op::MatMul(m) => matmul_shape(*m, inputs)?,
            Op::Linear { matmul, .. } => linear_shape(*matmul, inputs)?,
            Op::MatMulReluBackward(m) => matmul_relu_backward_shape(*m, inputs)?,
            Op::Add | Op::Sub | Op::Mul | Op::Div => {
                let [a, b] = floats::<2>(name, inputs)?;
                crate::broadcast_shapes(name, a, b)?
            }
            Op::Activation(_) | Op::Dropout(_) | Op::DropoutBackward(_) | Op::RoundHalf => {
                let [x] = floats::<1>(name, inputs)?;
                x.clone()
            }
            Op::ActivationBackward(_) | Op::SoftmaxBackward { .. } | Op::LogSoftmaxBackward { .. } => {
                same_shapes(name, inputs, 2, GRADIENT)?
            }
            Op::LossBackward { .. } => same_shapes(name, inputs, 3, GRADIENT)?,
            Op::Prelu => prelu_shape(name, PreluPart::Forward, inputs)?,
            Op::PreluBackwardInput => prelu_shape(name, PreluPart::BackwardInput, inputs)?,
            Op::PreluBackwardAlpha => prelu_shape(name, PreluPart::BackwardAlpha, inputs)?,
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                let [x] = floats::<1>(name, inputs)?;
                check_axis(name, x, *axis)?;
                x.clone()
            }
            Op::Sum(r) | Op::Max(r) => reduce_shape(name, r, inputs)?,
            Op::MaxBackward(r) => max_backward_shape(name, r, inputs)?,
            Op::BroadcastTo { shape, .. } => broadcast_to_shape(name, shape, inputs)?,
            Op::Reshape(shape) => {
                let [x] = floats::<1>(name, inputs)?;
                if x.numel() != shape.numel() {
                    return Err(crate::Error::shape(name, "element count must not change", x, shape));
                }
                shape.clone()
            }
            Op::Transpose(perm) => transpose_shape(name, perm, inputs)?,
            Op::Slice { axis, start, len } => slice_shape(name, *axis, *start, *len, inputs)?,
            Op::SliceBackward { axis, start, full } => slice_backward_shape(name, *axis, *start, *full, inputs)?,
            Op::Concat { axis } => concat_shape(name, *axis, inputs)?,
            Op::CrossEntropyPerSample | Op::NllPerSample => class_loss_shape(name, inputs, false)?,
            Op::CrossEntropyPerSampleBackward | Op::NllPerSampleBackward => class_loss_shape(name, inputs, true)?,
            Op::Loss(_) => {
                let [pred, target] = floats::<2>(name, inputs)?;
                same(name, "pred and target must have the same shape", pred, target)?;
                pred.clone()
            }
            Op::Conv2d(c) | Op::Conv2dRelu(c) => spatial::conv2d_shape(name, c, inputs)?,
            Op::Conv2dBackwardInput { conv, input_hw } => spatial::conv2d_input_shape(name, conv, *input_hw, inputs)?,
            Op::Conv2dBackwardWeight { conv, kernel_hw } => {
                spatial::conv2d_weight_shape(name, conv, *kernel_hw, inputs)?
            }
            Op::ConvTranspose2d { conv, output_padding } => {
                spatial::conv_transpose2d_shape(name, conv, *output_padding, inputs)?
            }
            Op::Pool2d(p) => spatial::pool2d_shape(name, p, inputs)?,
            Op::Pool2dBackward(p) | Op::Pool2dBackwardRelu(p) => spatial::pool2d_backward_shape(name, p, inputs)?,
            Op::BatchNormStats => norm::batch_norm_shape(name, BatchNormPart::Stats, inputs)?,
            Op::BatchNorm { .. } => norm::batch_norm_shape(name, BatchNormPart::Apply, inputs)?,
            Op::BatchNormBackwardReduce { .. } => norm::batch_norm_shape(name, BatchNormPart::BackwardReduce, inputs)?,
            Op::BatchNormBackwardInput { .. } => norm::batch_norm_shape(name, BatchNormPart::BackwardInput, inputs)?,
            Op::BatchNormRunningUpdate { .. } => norm::batch_norm_shape(name, BatchNormPart::RunningUpdate, inputs)?,
            Op::LayerNormStats => norm::layer_norm_shape(name, LayerNormPart::Stats, inputs)?,
            Op::LayerNorm { .. } => norm::layer_norm_shape(name, LayerNormPart::Apply, inputs)?,
            Op::LayerNormBackwardInput { .. } => norm::layer_norm_shape(name, LayerNormPart::BackwardInput, inputs)?,
            Op::LayerNormBackwardParams { .. } => norm::layer_norm_shape(name, LayerNormPart::BackwardParams, inputs)?,
            Op::Embedding => norm::embedding_shape(name, inputs)?,
            Op::EmbeddingBackward { vocab } => norm::embedding_backward_shape(name, *vocab, inputs)?,
            Op::ClipFactor { .. } => {
                let [s] = floats::<1>(name, inputs)?;
                if s.numel() != 1 {
                    return Err(crate::Error::shape(name, "expects the scalar sum of squares", "[]", s));
                }
                Shape::scalar()
            }
            Op::LossScaleFactor { .. } => {
                scalars(name, inputs, 2, "the scalar sum of squared gradients and the scale")?;
                Shape::scalar()
            }
            Op::LossScaleUpdate(_) => {
                scalars(name, inputs, 3, "the scale, the count of finite steps and the step's factor")?;
                Shape::scalar()
            }
            Op::SgdStep(_) | Op::AdagradStep(_) | Op::RmspropStep(_) | Op::AdamStep(_) => {
                let n = 1 + self.updated_inputs().len();
                let state = match inputs.len() == n + 1 {
                    true => {
                        scalars(name, &inputs[n..], 1, "a scalar factor of the gradient after the state")?;
                        &inputs[..n]
                    }
                    false => inputs,
                };
                same_shapes(name, state, n, "gradient and optimizer state must match the parameter")?
            }
            Op::Assign => same_shapes(name, inputs, 2, "the value must match the variable it is assigned to")?,
        };
        Ok((shape, DType::F32))
    }
}
