use kiln_core::{DType, Op, Reduce, Result, Shape};

use crate::{Tensor, broadcast_offsets};

/// For every element of `x`, the flat index of the output element it reduces into.
fn targets(r: &Reduce, x: &Tensor) -> Vec<usize> {
    let kept: Vec<usize> = x.dims().iter().enumerate().map(|(i, &d)| if r.axes.contains(&i) { 1 } else { d }).collect();
    broadcast_offsets(x.dims(), &kept)
}

fn reduced_shape(op: Op, x: &Tensor) -> Result<Shape> {
    op.output(&[(&x.shape, DType::F32)]).map(|(shape, _)| shape)
}

/// `y = scale · Σ_axes x`.
pub fn sum(r: &Reduce, x: &Tensor) -> Result<Tensor> {
    let mut y = Tensor::zeros(reduced_shape(Op::Sum(r.clone()), x)?);
    for (&t, &v) in targets(r, x).iter().zip(&x.data) {
        y.data[t] += v;
    }
    y.data.iter_mut().for_each(|v| *v *= r.scale as f64);
    Ok(y)
}

/// `y = max_axes x` (NaN propagates).
pub fn max(r: &Reduce, x: &Tensor) -> Result<Tensor> {
    let mut y = Tensor::zeros(reduced_shape(Op::Max(r.clone()), x)?);
    y.data.fill(f64::NEG_INFINITY);
    for (&t, &v) in targets(r, x).iter().zip(&x.data) {
        if v > y.data[t] || v.is_nan() {
            y.data[t] = v;
        }
    }
    Ok(y)
}

/// `dx = dy/k` at the k elements equal to their maximum, 0 elsewhere (JAX's rule for ties).
pub fn max_backward(r: &Reduce, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let targets = targets(r, x);
    let mut ties = vec![0.0f64; y.data.len()];
    for (&t, &v) in targets.iter().zip(&x.data) {
        ties[t] += f64::from(v == y.data[t]);
    }
    let dx = targets.iter().zip(&x.data).map(|(&t, &v)| if v == y.data[t] { dy.data[t] / ties[t] } else { 0.0 });
    Tensor::new(x.shape.clone(), dx.collect())
}

/// `y = scale · x` broadcast to `shape`.
pub fn broadcast_to(shape: &Shape, scale: f32, x: &Tensor) -> Result<Tensor> {
    let y = broadcast_offsets(shape.dims(), x.dims()).iter().map(|&i| x.data[i] * scale as f64).collect();
    Tensor::new(shape.clone(), y)
}
