//! Mixed precision: operands rounded to binary16 (by the `half` crate, an independent
//! reference for the shader's bit arithmetic) and the loss scale's rules.

use kiln_core::{LossScale, Result};

use crate::Tensor;

/// Every element rounded to the nearest binary16 value (ties to even; past 65504 to ±inf).
pub fn round_half(x: &Tensor) -> Result<Tensor> {
    let data = x.data.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect();
    Tensor::new(x.shape.clone(), data)
}

/// `1/scale` where the sum of squared gradients is finite, else 0 (the step is skipped); with
/// `max_norm`, times the clipping factor of the unscaled gradients.
pub fn loss_scale_factor(max_norm: Option<f32>, sum_sq: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (total, scale) = (sum_sq.data[0], scale.data[0]);
    let clip = max_norm.map_or(1.0, |max| (max as f64 / (total.sqrt() / scale + 1e-6)).min(1.0));
    let factor = if total.is_finite() { clip / scale } else { 0.0 };
    Tensor::new(sum_sq.shape.clone(), vec![factor])
}

/// The scale and the count of finite steps after a step whose factor was `factor`.
pub fn loss_scale_update(l: &LossScale, [scale, good, factor]: [&Tensor; 3]) -> Result<Vec<Tensor>> {
    let (mut s, mut n) = (scale.data[0], good.data[0]);
    if factor.data[0] == 0.0 {
        (s, n) = ((s / 2.0).max(LossScale::MIN as f64), 0.0);
    } else {
        n += 1.0;
        if n >= l.growth_interval as f64 {
            (s, n) = ((s * 2.0).min(LossScale::MAX as f64), 0.0);
        }
    }
    Ok(vec![Tensor::new(scale.shape.clone(), vec![s])?, Tensor::new(good.shape.clone(), vec![n])?])
}
