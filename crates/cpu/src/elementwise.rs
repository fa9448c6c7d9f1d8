use kiln_core::{HostTensor, Op, Result, broadcast_shapes};

use crate::broadcast_offsets;

/// `y = a ∘ b` with NumPy broadcasting.
pub fn binary(op: &Op, a: &HostTensor, b: &HostTensor) -> Result<HostTensor> {
    let shape = broadcast_shapes(op.name(), &a.shape, &b.shape)?;
    let (xa, xb) = (a.as_f32()?, b.as_f32()?);
    let oa = broadcast_offsets(shape.dims(), a.shape.dims());
    let ob = broadcast_offsets(shape.dims(), b.shape.dims());
    let f = |x: f64, y: f64| match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
        _ => x / y,
    };
    let y = oa.iter().zip(&ob).map(|(&i, &j)| f(xa[i] as f64, xb[j] as f64) as f32).collect();
    HostTensor::f32(shape, y)
}

/// Pointwise activations, evaluated in f64.
pub fn activation(op: &Op, x: &HostTensor) -> Result<HostTensor> {
    let f = |v: f64| match op {
        Op::Relu => v.max(0.0),
        Op::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        _ => v.tanh(),
    };
    let y = x.as_f32()?.iter().map(|&v| f(v as f64) as f32).collect();
    HostTensor::f32(x.shape.clone(), y)
}

/// `relu_backward(x, dy) = dy·[x > 0]`, `sigmoid_backward(y, dy) = dy·y(1-y)`,
/// `tanh_backward(y, dy) = dy(1-y²)`.
pub fn activation_backward(op: &Op, saved: &HostTensor, dy: &[f32]) -> Result<HostTensor> {
    let f = |s: f64, g: f64| match op {
        Op::ReluBackward if s > 0.0 => g,
        Op::ReluBackward => 0.0,
        Op::SigmoidBackward => g * s * (1.0 - s),
        _ => g * (1.0 - s * s),
    };
    let dx = saved.as_f32()?.iter().zip(dy).map(|(&s, &g)| f(s as f64, g as f64) as f32).collect();
    HostTensor::f32(saved.shape.clone(), dx)
}
