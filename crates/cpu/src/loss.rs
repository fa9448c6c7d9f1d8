use kiln_core::{LossKind, Result, Shape};

use crate::Tensor;

/// Rows of `[N,C]` scores with their labels, rejecting labels outside `0..C`.
fn rows<'a>(op: &str, scores: &'a Tensor, labels: &Tensor) -> Result<impl Iterator<Item = (&'a [f64], usize)>> {
    let classes = scores.dims()[1];
    let labels = labels.indices(op, "label", classes, "classes")?;
    Ok(scores.data.chunks(classes.max(1)).zip(labels))
}

/// `logsumexp(x) = m + ln Σ exp(x_j - m)`, stable for logits of any magnitude.
fn logsumexp(row: &[f64]) -> f64 {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + row.iter().map(|&v| (v - max).exp()).sum::<f64>().ln()
}

/// `loss_n = logsumexp(x_n) - x_n[label_n]`.
pub fn cross_entropy_per_sample(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let losses: Vec<f64> = rows("cross_entropy", logits, labels)?.map(|(row, l)| logsumexp(row) - row[l]).collect();
    Tensor::new(Shape::new([losses.len()]), losses)
}

/// `dx_nj = dy_n (softmax(x_n)_j - [j = label_n])`.
pub fn cross_entropy_per_sample_backward(logits: &Tensor, labels: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let mut dx = Vec::with_capacity(logits.data.len());
    for ((row, label), &g) in rows("cross_entropy", logits, labels)?.zip(&dy.data) {
        let lse = logsumexp(row);
        dx.extend(row.iter().enumerate().map(|(j, &v)| g * ((v - lse).exp() - f64::from(j == label))));
    }
    Tensor::new(logits.shape.clone(), dx)
}

/// `loss_n = -logp_n[label_n]`.
pub fn nll_per_sample(logp: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let losses: Vec<f64> = rows("nll_loss", logp, labels)?.map(|(row, l)| -row[l]).collect();
    Tensor::new(Shape::new([losses.len()]), losses)
}

/// `dx_nj = -dy_n·[j = label_n]`.
pub fn nll_per_sample_backward(logp: &Tensor, labels: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let mut dx = Vec::with_capacity(logp.data.len());
    for ((row, label), &g) in rows("nll_loss", logp, labels)?.zip(&dy.data) {
        dx.extend((0..row.len()).map(|j| if j == label { -g } else { 0.0 }));
    }
    Tensor::new(logp.shape.clone(), dx)
}

/// `ln v` clamped at -100, as PyTorch's binary cross-entropy does, so `p ∈ {0, 1}` stays finite.
fn clamped_ln(v: f64) -> f64 {
    v.ln().max(-100.0)
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The elementwise loss `ℓ(p, t)`.
fn value(kind: LossKind, p: f64, t: f64) -> f64 {
    match kind {
        LossKind::L1 => (p - t).abs(),
        LossKind::Huber { delta } => {
            let (d, delta) = ((p - t).abs(), delta as f64);
            if d < delta { 0.5 * d * d } else { delta * (d - 0.5 * delta) }
        }
        LossKind::Bce => -(t * clamped_ln(p) + (1.0 - t) * clamped_ln(1.0 - p)),
        LossKind::BceWithLogits => p.max(0.0) - p * t + (-p.abs()).exp().ln_1p(),
        LossKind::Hinge => (1.0 - t * p).max(0.0),
        LossKind::KlDiv if t > 0.0 => t * (t.ln() - p),
        LossKind::KlDiv => 0.0,
    }
}

/// `(∂ℓ/∂p, ∂ℓ/∂t)`.
fn gradients(kind: LossKind, p: f64, t: f64) -> (f64, f64) {
    match kind {
        LossKind::L1 => (sign(p - t), -sign(p - t)),
        LossKind::Huber { delta } => {
            let g = (p - t).clamp(-delta as f64, delta as f64);
            (g, -g)
        }
        // PyTorch's denominator floor keeps p ∈ {0, 1} finite.
        LossKind::Bce => ((p - t) / (p * (1.0 - p)).max(1e-12), clamped_ln(1.0 - p) - clamped_ln(p)),
        LossKind::BceWithLogits => (1.0 / (1.0 + (-p).exp()) - t, -p),
        LossKind::Hinge if 1.0 - t * p > 0.0 => (-t, -p),
        LossKind::Hinge => (0.0, 0.0),
        LossKind::KlDiv => (-t, t.ln() + 1.0 - p),
    }
}

pub fn loss(kind: LossKind, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let values = pred.data.iter().zip(&target.data).map(|(&p, &t)| value(kind, p, t));
    Tensor::new(pred.shape.clone(), values.collect())
}

pub fn loss_backward(kind: LossKind, wrt_target: bool, pred: &Tensor, target: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let grads = pred.data.iter().zip(&target.data).zip(&dy.data).map(|((&p, &t), &g)| {
        let (dp, dt) = gradients(kind, p, t);
        g * if wrt_target { dt } else { dp }
    });
    Tensor::new(pred.shape.clone(), grads.collect())
}
