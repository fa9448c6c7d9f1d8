//! Shape rules of normalisation and embedding.

use super::In;
use super::rules::{arity, floats, same};
use crate::{DType, Error, Result, Shape};

/// The ops of batch norm's family, as its shape rule tells them apart.
#[derive(Clone, Copy)]
pub(super) enum BatchNormPart {
    Stats,
    Apply,
    BackwardReduce,
    BackwardInput,
    RunningUpdate,
}

/// The ops of layer norm's family.
#[derive(Clone, Copy)]
pub(super) enum LayerNormPart {
    Stats,
    Apply,
    BackwardInput,
    BackwardParams,
}

/// Expects `shape` to be exactly `want`, naming `what`.
fn expect(op: &str, what: &str, shape: &Shape, want: &[usize]) -> Result<()> {
    same(op, &format!("{what} has the wrong shape"), &Shape::new(want), shape)
}

/// Batch norm's family: per-channel statistics `[2,C]` over every axis but 1.
pub(super) fn batch_norm_shape(name: &str, part: BatchNormPart, inputs: &[In<'_>]) -> Result<Shape> {
    if let BatchNormPart::RunningUpdate = part {
        let [running, stats] = floats::<2>(name, inputs)?;
        same(name, "running statistics must match the batch statistics", running, stats)?;
        return Ok(running.clone());
    }
    let x = inputs.first().map(|i| i.0).ok_or_else(|| Error::shape(name, "wrong number of inputs", "x first", 0))?;
    if x.rank() < 2 {
        return Err(Error::shape(name, "x must be [N,C] or [N,C,…]", "rank >= 2", x));
    }
    let c = x.dims()[1];
    let stats = [2, c];
    match part {
        BatchNormPart::Stats => floats::<1>(name, inputs).map(|_| Shape::new(stats)),
        BatchNormPart::Apply => {
            let [_, s, gamma, beta] = floats::<4>(name, inputs)?;
            expect(name, "stats", s, &stats)?;
            expect(name, "gamma", gamma, &[c])?;
            expect(name, "beta", beta, &[c])?;
            Ok(x.clone())
        }
        BatchNormPart::BackwardReduce => {
            let [_, s, dy] = floats::<3>(name, inputs)?;
            expect(name, "stats", s, &stats)?;
            same(name, "gradient must match its forward tensor", x, dy)?;
            Ok(Shape::new(stats))
        }
        BatchNormPart::BackwardInput | BatchNormPart::RunningUpdate => {
            let [_, s, gamma, dy, sums] = floats::<5>(name, inputs)?;
            expect(name, "stats", s, &stats)?;
            expect(name, "gamma", gamma, &[c])?;
            same(name, "gradient must match its forward tensor", x, dy)?;
            expect(name, "sums", sums, &stats)?;
            Ok(x.clone())
        }
    }
}

/// Layer norm's family: per-row statistics `[R,2]` over the last axis, `R` rows.
pub(super) fn layer_norm_shape(name: &str, part: LayerNormPart, inputs: &[In<'_>]) -> Result<Shape> {
    let x = inputs.first().map(|i| i.0).ok_or_else(|| Error::shape(name, "wrong number of inputs", "x first", 0))?;
    let Some(&d) = x.dims().last() else {
        return Err(Error::shape(name, "x must have a feature axis", "rank >= 1", x));
    };
    let stats = [x.numel() / d.max(1), 2];
    match part {
        LayerNormPart::Stats => floats::<1>(name, inputs).map(|_| Shape::new(stats)),
        LayerNormPart::Apply => {
            let [_, s, gamma, beta] = floats::<4>(name, inputs)?;
            expect(name, "stats", s, &stats)?;
            expect(name, "gamma", gamma, &[d])?;
            expect(name, "beta", beta, &[d])?;
            Ok(x.clone())
        }
        LayerNormPart::BackwardInput => {
            let [_, s, gamma, dy] = floats::<4>(name, inputs)?;
            expect(name, "stats", s, &stats)?;
            expect(name, "gamma", gamma, &[d])?;
            same(name, "gradient must match its forward tensor", x, dy)?;
            Ok(x.clone())
        }
        LayerNormPart::BackwardParams => {
            let [_, s, dy] = floats::<3>(name, inputs)?;
            expect(name, "stats", s, &stats)?;
            same(name, "gradient must match its forward tensor", x, dy)?;
            Ok(Shape::new([2, d]))
        }
    }
}

/// `(table [V,D] f32, ids […] i32)` → `[…,D]`.
pub(super) fn embedding_shape(op: &str, inputs: &[In<'_>]) -> Result<Shape> {
    arity(op, inputs, 2)?;
    let ((table, tt), (ids, it)) = (inputs[0], inputs[1]);
    if tt != DType::F32 || it != DType::I32 || table.rank() != 2 {
        let got = format!("{tt:?} {table} and {it:?} {ids}");
        return Err(Error::shape(op, "expects an f32 table [V,D] and i32 ids", "f32 [V,D], i32 ids", got));
    }
    Ok(Shape(ids.dims().iter().copied().chain([table.dims()[1]]).collect()))
}

/// `(ids […] i32, dy […,D])` → `[vocab, D]`.
pub(super) fn embedding_backward_shape(op: &str, vocab: usize, inputs: &[In<'_>]) -> Result<Shape> {
    arity(op, inputs, 2)?;
    let ((ids, it), (dy, dt)) = (inputs[0], inputs[1]);
    let d = dy.dims().last().copied().unwrap_or(0);
    let fits = dy.rank() == ids.rank() + 1 && dy.dims()[..ids.rank()] == *ids.dims();
    if it != DType::I32 || dt != DType::F32 || !fits {
        return Err(Error::shape(op, "expects i32 ids […] and dy […,D]", format!("{ids} + [D]"), dy));
    }
    Ok(Shape::new([vocab, d]))
}
