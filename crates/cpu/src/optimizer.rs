//! Optimizer updates with PyTorch's documented rules, in f64. Each returns the new values of
//! the tensors it updates in place, in input order.

use kiln_core::{Adagrad, Adam, Result, Rmsprop, Sgd};

use crate::Tensor;

fn tensors(like: &Tensor, columns: Vec<Vec<f64>>) -> Result<Vec<Tensor>> {
    columns.into_iter().map(|d| Tensor::new(like.shape.clone(), d)).collect()
}

/// An optimizer step's new state by `step` from `inputs`: param, grad, the `state` tensors
/// and possibly a scalar factor, which multiplies the gradient and, at 0, leaves the
/// parameter and its state as they were.
pub fn scaled(
    inputs: &[&Tensor],
    state: usize,
    step: impl Fn(&[&Tensor]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    let n = 2 + state;
    let Some(factor) = inputs.get(n).map(|f| f.data[0]) else { return step(inputs) };
    if factor == 0.0 {
        return Ok([0].into_iter().chain(2..n).map(|i| inputs[i].clone()).collect());
    }
    let grad = Tensor::new(inputs[1].shape.clone(), inputs[1].data.iter().map(|g| g * factor).collect())?;
    let mut x = inputs[..n].to_vec();
    x[1] = &grad;
    step(&x)
}

/// `g = grad + wd·p`, `buf = μ·buf + g`, `p = p - lr·buf` (dampening 0).
pub fn sgd_step(s: &Sgd, [param, grad, buf]: [&Tensor; 3]) -> Result<Vec<Tensor>> {
    let lr = s.schedule.at(s.lr, s.step);
    let (mut p, mut b) = (Vec::new(), Vec::new());
    for i in 0..param.data.len() {
        let g = grad.data[i] + s.weight_decay as f64 * param.data[i];
        let m = s.momentum as f64 * buf.data[i] + g;
        b.push(m);
        p.push(param.data[i] - lr * m);
    }
    tensors(param, vec![p, b])
}

/// Adam (L2 decay in the gradient) or AdamW (`p ← p(1 - lr·wd)` first), bias-corrected at
/// 1-based `step`: `p -= lr/c1 · m / (√v/√c2 + eps)`.
pub fn adam_step(a: &Adam, [param, grad, m, v]: [&Tensor; 4]) -> Result<Vec<Tensor>> {
    let (b1, b2, t, lr) = (a.beta1 as f64, a.beta2 as f64, a.step as i32, a.schedule.at(a.lr, a.step));
    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let wd = a.weight_decay as f64;
    let (mut p_out, mut m_out, mut v_out) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..param.data.len() {
        let (mut w, mut g) = (param.data[i], grad.data[i]);
        if a.decoupled {
            w *= 1.0 - lr * wd;
        } else {
            g += wd * w;
        }
        let mi = b1 * m.data[i] + (1.0 - b1) * g;
        let vi = b2 * v.data[i] + (1.0 - b2) * g * g;
        p_out.push(w - lr / c1 * mi / (vi.sqrt() / c2.sqrt() + a.eps as f64));
        m_out.push(mi);
        v_out.push(vi);
    }
    tensors(param, vec![p_out, m_out, v_out])
}

/// `g = grad + wd·p`, `s += g²`, `p -= lr·g/(√s + eps)`.
pub fn adagrad_step(a: &Adagrad, [param, grad, sum_sq]: [&Tensor; 3]) -> Result<Vec<Tensor>> {
    let lr = a.schedule.at(a.lr, a.step);
    let (mut p, mut s) = (Vec::new(), Vec::new());
    for i in 0..param.data.len() {
        let g = grad.data[i] + a.weight_decay as f64 * param.data[i];
        let si = sum_sq.data[i] + g * g;
        s.push(si);
        p.push(param.data[i] - lr * g / (si.sqrt() + a.eps as f64));
    }
    tensors(param, vec![p, s])
}

/// `g = grad + wd·p`, `s = α·s + (1-α)·g²`, `p -= lr·g/(√s + eps)`.
pub fn rmsprop_step(r: &Rmsprop, [param, grad, sq_avg]: [&Tensor; 3]) -> Result<Vec<Tensor>> {
    let (lr, alpha) = (r.schedule.at(r.lr, r.step), r.alpha as f64);
    let (mut p, mut s) = (Vec::new(), Vec::new());
    for i in 0..param.data.len() {
        let g = grad.data[i] + r.weight_decay as f64 * param.data[i];
        let si = alpha * sq_avg.data[i] + (1.0 - alpha) * g * g;
        s.push(si);
        p.push(param.data[i] - lr * g / (si.sqrt() + r.eps as f64));
    }
    tensors(param, vec![p, s])
}

/// `min(1, max_norm / (√Σg² + 1e-6))`, PyTorch's `clip_grad_norm_` factor.
pub fn clip_factor(max_norm: f32, sum_sq: &Tensor) -> Result<Tensor> {
    let factor = (max_norm as f64 / (sum_sq.data[0].sqrt() + 1e-6)).min(1.0);
    Tensor::new(sum_sq.shape.clone(), vec![factor])
}
