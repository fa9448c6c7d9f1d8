//! The CPU reference path: straight loops from each op's definition, in f64. It checks every
//! GPU kernel, so it favours being obviously right over being fast. The CPU backend rounds to
//! f32 between ops, as a device would; `interpret` runs a whole graph in f64.

mod backend;
mod conv;
mod elementwise;
mod embedding;
mod interpret;
mod layout;
mod loss;
mod matmul;
mod norm;
mod optimizer;
mod pool;
mod precision;
mod random;
mod reduce;
mod softmax;
mod tensor;

pub use backend::Cpu;
pub use interpret::interpret;
pub use tensor::Tensor;
pub(crate) use tensor::{for_each_index, split_at_axis};

use kiln_core::{DType, Error, Op, Result};

/// Evaluates `op` on `inputs`. Ordinary ops return one tensor; in-place updates return the
/// new values of the inputs they update, in order.
pub fn eval(op: &Op, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let dtype = |i: usize| if op.index_input() == Some(i) { DType::I32 } else { DType::F32 };
    let described: Vec<_> = inputs.iter().enumerate().map(|(i, t)| (&t.shape, dtype(i))).collect();
    let out = op.output(&described)?.0;
    let x = |i: usize| inputs[i];
    let five = || [x(0), x(1), x(2), x(3), x(4)];
    let one = |t: Result<Tensor>| t.map(|t| vec![t]);
    match op {
        Op::Input | Op::Variable => Err(Error::attribute(op.name(), "a source node is not evaluated")),
        Op::MatMul(m) => one(matmul::matmul(*m, x(0), x(1))),
        Op::Linear { matmul, relu } => one(matmul::linear(*matmul, *relu, x(0), x(1), x(2))),
        Op::MatMulReluBackward(m) => one(matmul::matmul_relu_backward(*m, x(0), x(1), x(2))),
        Op::Add => one(elementwise::binary(op.name(), |a, b| a + b, x(0), x(1))),
        Op::Sub => one(elementwise::binary(op.name(), |a, b| a - b, x(0), x(1))),
        Op::Mul => one(elementwise::binary(op.name(), |a, b| a * b, x(0), x(1))),
        Op::Div => one(elementwise::binary(op.name(), |a, b| a / b, x(0), x(1))),
        Op::Activation(a) => one(elementwise::activation(a, x(0))),
        Op::ActivationBackward(a) => one(elementwise::activation_backward(a, x(0), x(1))),
        Op::Prelu => one(elementwise::prelu(x(0), x(1))),
        Op::PreluBackwardInput => one(elementwise::prelu_backward_input(x(0), x(1), x(2))),
        Op::PreluBackwardAlpha => one(elementwise::prelu_backward_alpha(x(0), x(1))),
        Op::Sum(r) => one(reduce::sum(r, x(0))),
        Op::Max(r) => one(reduce::max(r, x(0))),
        Op::MaxBackward(r) => one(reduce::max_backward(r, x(0), x(1), x(2))),
        Op::BroadcastTo { shape, scale } => one(reduce::broadcast_to(shape, *scale, x(0))),
        Op::Reshape(shape) => one(Tensor::new(shape.clone(), x(0).data.clone())),
        Op::Transpose(perm) => one(layout::transpose(perm, x(0))),
        Op::Slice { axis, start, len } => one(layout::slice(*axis, *start, *len, x(0))),
        Op::SliceBackward { axis, start, full } => one(layout::slice_backward(*axis, *start, *full, x(0))),
        Op::Concat { axis } => one(layout::concat(*axis, inputs, &out)),
        Op::Softmax { axis } => one(softmax::softmax(*axis, x(0), false)),
        Op::LogSoftmax { axis } => one(softmax::softmax(*axis, x(0), true)),
        Op::SoftmaxBackward { axis } => one(softmax::softmax_backward(*axis, x(0), x(1), false)),
        Op::LogSoftmaxBackward { axis } => one(softmax::softmax_backward(*axis, x(0), x(1), true)),
        Op::CrossEntropyPerSample => one(loss::cross_entropy_per_sample(x(0), x(1))),
        Op::CrossEntropyPerSampleBackward => one(loss::cross_entropy_per_sample_backward(x(0), x(1), x(2))),
        Op::NllPerSample => one(loss::nll_per_sample(x(0), x(1))),
        Op::NllPerSampleBackward => one(loss::nll_per_sample_backward(x(0), x(1), x(2))),
        Op::Loss(kind) => one(loss::loss(*kind, x(0), x(1))),
        Op::LossBackward { kind, wrt_target } => one(loss::loss_backward(*kind, *wrt_target, x(0), x(1), x(2))),
        Op::Conv2d(c) => one(conv::conv2d(c, x(0), x(1), inputs.get(2).copied(), &out)),
        Op::Conv2dRelu(c) => one(conv::conv2d_relu(c, x(0), x(1), inputs.get(2).copied(), &out)),
        Op::Conv2dBackwardInput { conv, .. } => one(conv::conv2d_backward_input(conv, x(0), x(1), &out)),
        Op::Conv2dBackwardWeight { conv, .. } => one(conv::conv2d_backward_weight(conv, x(0), x(1), &out)),
        Op::ConvTranspose2d { conv, .. } => one(conv::conv_transpose2d(conv, x(0), x(1), inputs.get(2).copied(), &out)),
        Op::Pool2d(p) => one(pool::pool2d(p, x(0), &out)),
        Op::Pool2dBackward(p) => one(pool::pool2d_backward(p, x(0), x(1), x(2))),
        Op::Pool2dBackwardRelu(p) => one(pool::pool2d_backward_relu(p, x(0), x(1), x(2))),
        Op::BatchNormStats => one(norm::batch_norm_stats(x(0))),
        Op::BatchNorm { eps } => one(norm::batch_norm(*eps, x(0), x(1), x(2), x(3))),
        Op::BatchNormBackwardReduce { eps } => one(norm::batch_norm_backward_reduce(*eps, x(0), x(1), x(2))),
        Op::BatchNormBackwardInput { eps, training } => one(norm::batch_norm_backward_input(*eps, *training, five())),
        Op::BatchNormRunningUpdate { momentum, count } => {
            one(norm::batch_norm_running_update(*momentum, *count, x(0), x(1)))
        }
        Op::LayerNormStats => one(norm::layer_norm_stats(x(0))),
        Op::LayerNorm { eps } => one(norm::layer_norm(*eps, x(0), x(1), x(2), x(3))),
        Op::LayerNormBackwardInput { eps } => one(norm::layer_norm_backward_input(*eps, x(0), x(1), x(2), x(3))),
        Op::LayerNormBackwardParams { eps } => one(norm::layer_norm_backward_params(*eps, x(0), x(1), x(2))),
        Op::Dropout(d) | Op::DropoutBackward(d) => one(elementwise::dropout(d, x(0))),
        Op::RandomNormal { shape, noise } => one(random::random_normal(noise, shape)),
        Op::Embedding => one(embedding::embedding(x(0), x(1))),
        Op::EmbeddingBackward { vocab } => one(embedding::embedding_backward(*vocab, x(0), x(1))),
        Op::ClipFactor { max_norm } => one(optimizer::clip_factor(*max_norm, x(0))),
        Op::RoundHalf => one(precision::round_half(x(0))),
        Op::LossScaleFactor { max_norm } => one(precision::loss_scale_factor(*max_norm, x(0), x(1))),
        Op::LossScaleUpdate(l) => precision::loss_scale_update(l, [x(0), x(1), x(2)]),
        Op::SgdStep(s) => optimizer::scaled(inputs, 1, |x| optimizer::sgd_step(s, [x[0], x[1], x[2]])),
        Op::AdamStep(a) => optimizer::scaled(inputs, 2, |x| optimizer::adam_step(a, [x[0], x[1], x[2], x[3]])),
        Op::AdagradStep(a) => optimizer::scaled(inputs, 1, |x| optimizer::adagrad_step(a, [x[0], x[1], x[2]])),
        Op::RmspropStep(r) => optimizer::scaled(inputs, 1, |x| optimizer::rmsprop_step(r, [x[0], x[1], x[2]])),
        Op::Assign => Ok(vec![x(1).clone()]),
    }
}

/// Offsets into a tensor of shape `input` (broadcast against `out`, NumPy rules) for every
/// element of `out`, in row-major order.
pub(crate) fn broadcast_offsets(out: &[usize], input: &[usize]) -> Vec<usize> {
    let pad = out.len() - input.len();
    let strides = kiln_core::contiguous_strides(input);
    let mut offsets = Vec::with_capacity(out.iter().product());
    for_each_index(out, |index| {
        offsets.push((0..input.len()).map(|d| if input[d] == 1 { 0 } else { index[d + pad] * strides[d] }).sum());
    });
    offsets
}
