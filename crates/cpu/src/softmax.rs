use kiln_core::{HostTensor, Result};

/// Splits a shape around `axis` into (outer, length, inner).
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// `softmax(x)_i = exp(x_i - m) / Σ exp(x_j - m)`, or its log, along `axis`.
pub fn softmax(axis: usize, x: &HostTensor, log: bool) -> Result<HostTensor> {
    let xs = x.as_f32()?;
    let (outer, len, inner) = split(x.shape.dims(), axis);
    let mut y = vec![0f32; xs.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let max = (0..len).map(|j| xs[at(j)] as f64).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = (0..len).map(|j| (xs[at(j)] as f64 - max).exp()).sum();
            for j in 0..len {
                let shifted = xs[at(j)] as f64 - max;
                y[at(j)] = if log { shifted - total.ln() } else { shifted.exp() / total } as f32;
            }
        }
    }
    HostTensor::f32(x.shape.clone(), y)
}

/// From the forward output y: softmax `dx = y(dy - Σ dy·y)`; log-softmax `dx = dy - e^y Σ dy`.
pub fn softmax_backward(axis: usize, y: &HostTensor, dy: &HostTensor, log: bool) -> Result<HostTensor> {
    let (ys, gs) = (y.as_f32()?, dy.as_f32()?);
    let (outer, len, inner) = split(y.shape.dims(), axis);
    let mut dx = vec![0f32; ys.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let dot: f64 = (0..len).map(|j| gs[at(j)] as f64 * if log { 1.0 } else { ys[at(j)] as f64 }).sum();
            for j in 0..len {
                let (yj, gj) = (ys[at(j)] as f64, gs[at(j)] as f64);
                dx[at(j)] = if log { gj - yj.exp() * dot } else { yj * (gj - dot) } as f32;
            }
        }
    }
    HostTensor::f32(y.shape.clone(), dx)
}
