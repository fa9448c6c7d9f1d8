//! Losses as graph builders: an elementwise or per-sample kernel, then a mean, so their
//! gradients come from the same autodiff rules as any model's.

use kiln_core::{Error, LossKind, Op, Result};

use crate::{Graph, Value};

impl Graph {
    fn same_shape(&self, op: &str, pred: Value, target: Value) -> Result<()> {
        if self.shape(pred) != self.shape(target) {
            return Err(Error::shape(op, "pred and target differ", self.shape(pred), self.shape(target)));
        }
        Ok(())
    }

    /// Mean over rows of `logsumexp(logits) - logits[label]`.
    pub fn cross_entropy(&mut self, logits: Value, labels: Value) -> Result<Value> {
        let per_sample = self.push(Op::CrossEntropyPerSample, &[logits, labels])?;
        self.mean_all(per_sample)
    }

    /// Mean over rows of `-logp[label]`.
    pub fn nll_loss(&mut self, logp: Value, labels: Value) -> Result<Value> {
        let per_sample = self.push(Op::NllPerSample, &[logp, labels])?;
        self.mean_all(per_sample)
    }

    /// `mean((pred - target)²)`.
    pub fn mse_loss(&mut self, pred: Value, target: Value) -> Result<Value> {
        self.same_shape("mse_loss", pred, target)?;
        let diff = self.sub(pred, target)?;
        let squared = self.mul(diff, diff)?;
        self.mean_all(squared)
    }

    /// The mean of an elementwise loss (`LossKind`) over every element.
    pub fn pointwise_loss(&mut self, kind: LossKind, pred: Value, target: Value) -> Result<Value> {
        self.same_shape(kind.name(), pred, target)?;
        let losses = self.push(Op::Loss(kind), &[pred, target])?;
        self.mean_all(losses)
    }

    /// `Σ target·(ln target - logp) / N` for `[N,C]` log-probabilities ("batchmean").
    pub fn kl_div(&mut self, logp: Value, target: Value) -> Result<Value> {
        self.same_shape("kl_div", logp, target)?;
        let rows = self.shape(logp).dims().first().copied().unwrap_or(1).max(1);
        let terms = self.push(Op::Loss(LossKind::KlDiv), &[logp, target])?;
        let total = self.sum_all(terms)?;
        self.scale(total, 1.0 / rows as f32)
    }

    /// Gradients scaled by `min(1, max_norm / (‖g‖₂ + 1e-6))`, `‖g‖₂` over all of them
    /// (PyTorch's `clip_grad_norm_`), without leaving the device.
    pub fn clip_grad_norm(&mut self, grads: &[Value], max_norm: f32) -> Result<Vec<Value>> {
        let Some(total) = self.sum_of_squares(grads)? else { return Ok(vec![]) };
        let factor = self.push(Op::ClipFactor { max_norm }, &[total])?;
        grads.iter().map(|&grad| self.mul(grad, factor)).collect()
    }

    /// `Σ g²` over every element of every gradient (a scalar), or `None` for no gradients.
    pub fn sum_of_squares(&mut self, grads: &[Value]) -> Result<Option<Value>> {
        let mut total: Option<Value> = None;
        for &grad in grads {
            let squared = self.mul(grad, grad)?;
            let sum = self.sum_all(squared)?;
            total = Some(match total {
                Some(t) => self.add(t, sum)?,
                None => sum,
            });
        }
        Ok(total)
    }
}
