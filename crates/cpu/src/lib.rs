//! The CPU reference path: straight loops from each op's definition, summed in f64. It checks
//! every GPU kernel, so it favours being obviously right over being fast.

mod backend;
mod elementwise;
mod layout;
mod loss;
mod matmul;
mod optimizer;
mod reduce;
mod softmax;

pub use backend::Cpu;

use kiln_core::{HostTensor, Op, Result};

/// Evaluates `op` on host tensors. Ordinary ops return one tensor; optimizer updates return
/// the new values of the inputs they update, in order.
pub fn eval(op: &Op, inputs: &[&HostTensor]) -> Result<Vec<HostTensor>> {
    let floats = |i: usize| inputs[i].as_f32();
    let one = |t: Result<HostTensor>| t.map(|t| vec![t]);
    match op {
        Op::Input | Op::Variable => Err(kiln_core::Error::attribute(op.name(), "a source node is not evaluated")),
        Op::MatMul(m) => one(matmul::matmul(*m, inputs[0], inputs[1])),
        Op::Add | Op::Sub | Op::Mul | Op::Div => one(elementwise::binary(op, inputs[0], inputs[1])),
        Op::Relu | Op::Sigmoid | Op::Tanh => one(elementwise::activation(op, inputs[0])),
        Op::ReluBackward | Op::SigmoidBackward | Op::TanhBackward => {
            one(elementwise::activation_backward(op, inputs[0], floats(1)?))
        }
        Op::Sum(r) => one(reduce::sum(r, inputs[0])),
        Op::BroadcastTo { shape, scale } => one(reduce::broadcast_to(shape, *scale, inputs[0])),
        Op::Reshape(shape) => one(HostTensor::f32(shape.clone(), floats(0)?.to_vec())),
        Op::Transpose(perm) => one(layout::transpose(perm, inputs[0])),
        Op::Softmax { axis } => one(softmax::softmax(*axis, inputs[0], false)),
        Op::LogSoftmax { axis } => one(softmax::softmax(*axis, inputs[0], true)),
        Op::SoftmaxBackward { axis } => one(softmax::softmax_backward(*axis, inputs[0], inputs[1], false)),
        Op::LogSoftmaxBackward { axis } => one(softmax::softmax_backward(*axis, inputs[0], inputs[1], true)),
        Op::CrossEntropyPerSample => one(loss::cross_entropy_per_sample(inputs[0], inputs[1])),
        Op::CrossEntropyPerSampleBackward => {
            one(loss::cross_entropy_per_sample_backward(inputs[0], inputs[1], inputs[2]))
        }
        Op::SgdStep(s) => optimizer::sgd_step(s, floats(0)?, floats(1)?, floats(2)?, &inputs[0].shape),
        Op::AdamStep(a) => optimizer::adam_step(a, [floats(0)?, floats(1)?, floats(2)?, floats(3)?], &inputs[0].shape),
    }
}

/// Offsets into a tensor of shape `input` (broadcast against `out`, NumPy rules) for every
/// element of `out`, in row-major order.
pub(crate) fn broadcast_offsets(out: &[usize], input: &[usize]) -> Vec<usize> {
    let pad = out.len() - input.len();
    let strides = kiln_core::contiguous_strides(input);
    let mut offsets = Vec::with_capacity(out.iter().product());
    let mut index = vec![0usize; out.len()];
    for _ in 0..out.iter().product::<usize>() {
        let offset = (0..input.len()).map(|d| if input[d] == 1 { 0 } else { index[d + pad] * strides[d] }).sum();
        offsets.push(offset);
        for d in (0..out.len()).rev() {
            index[d] += 1;
            if index[d] < out[d] {
                break;
            }
            index[d] = 0;
        }
    }
    offsets
}
