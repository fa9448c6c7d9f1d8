use kiln_core::{DType, HostTensor, Op, Reduce, Result, Shape};

use crate::broadcast_offsets;

/// `y = scale · Σ_axes x`, accumulated in f64.
pub fn sum(r: &Reduce, x: &HostTensor) -> Result<HostTensor> {
    let (shape, _) = Op::Sum(r.clone()).output(&[(&x.shape, DType::F32)])?;
    let kept: Vec<usize> =
        x.shape.dims().iter().enumerate().map(|(i, &d)| if r.axes.contains(&i) { 1 } else { d }).collect();
    // Every element of x lands in the output element its kept coordinates name.
    let targets = broadcast_offsets(x.shape.dims(), &kept);
    let mut acc = vec![0f64; shape.numel()];
    for (&target, &v) in targets.iter().zip(x.as_f32()?) {
        acc[target] += v as f64;
    }
    HostTensor::f32(shape, acc.iter().map(|&s| (s * r.scale as f64) as f32).collect())
}

/// `y = scale · x` broadcast to `shape`.
pub fn broadcast_to(shape: &Shape, scale: f32, x: &HostTensor) -> Result<HostTensor> {
    let xs = x.as_f32()?;
    let y = broadcast_offsets(shape.dims(), x.shape.dims()).iter().map(|&i| xs[i] * scale).collect();
    HostTensor::f32(shape.clone(), y)
}
