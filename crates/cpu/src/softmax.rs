use kiln_core::Result;

use crate::{Tensor, split_at_axis};

/// `softmax(x)_i = exp(x_i - m) / Σ exp(x_j - m)`, or its log, along `axis`.
pub fn softmax(axis: usize, x: &Tensor, log: bool) -> Result<Tensor> {
    let (outer, len, inner) = split_at_axis(x.dims(), axis);
    let mut y = Tensor::zeros(x.shape.clone());
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let max = (0..len).map(|j| x.data[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = (0..len).map(|j| (x.data[at(j)] - max).exp()).sum();
            for j in 0..len {
                let shifted = x.data[at(j)] - max;
                y.data[at(j)] = if log { shifted - total.ln() } else { shifted.exp() / total };
            }
        }
    }
    Ok(y)
}

/// From the forward output y: softmax `dx = y(dy - Σ dy·y)`; log-softmax `dx = dy - e^y Σ dy`.
pub fn softmax_backward(axis: usize, y: &Tensor, dy: &Tensor, log: bool) -> Result<Tensor> {
    let (outer, len, inner) = split_at_axis(y.dims(), axis);
    let mut dx = Tensor::zeros(y.shape.clone());
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let dot: f64 = (0..len).map(|j| dy.data[at(j)] * if log { 1.0 } else { y.data[at(j)] }).sum();
            for j in 0..len {
                let (yj, gj) = (y.data[at(j)], dy.data[at(j)]);
                dx.data[at(j)] = if log { gj - yj.exp() * dot } else { yj * (gj - dot) };
            }
        }
    }
    Ok(dx)
}
