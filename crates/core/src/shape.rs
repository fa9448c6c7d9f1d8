use std::fmt;

use crate::{Error, MAX_RANK, Result};

/// Element type of a tensor. Every element is four bytes, so buffers are sized alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I32,
}

/// Dimensions of a row-major tensor; `[]` is a scalar.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Size in bytes of a tensor of this shape (every dtype is four bytes wide).
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }

    /// Refuses a shape Kiln cannot hold: one with a zero extent (no kernel computes an empty
    /// tensor), or one whose byte count does not fit 64 bits. Every shape of a graph passes this
    /// before anything is allocated, so `numel` and `bytes` never overflow.
    pub fn check_size(&self, what: &str) -> Result<()> {
        if self.0.contains(&0) {
            return Err(Error::shape(
                what,
                "every extent must be at least 1 (Kiln computes no empty tensors)",
                "no 0",
                self,
            ));
        }
        let bytes = self.0.iter().try_fold(4u64, |acc, &d| acc.checked_mul(d as u64));
        if bytes.is_none_or(|b| b > usize::MAX as u64) {
            return Err(Error::shape(what, "too many elements to address", "a size that fits memory", self));
        }
        Ok(())
    }

    /// Resolves a possibly negative axis against this rank.
    pub fn axis(&self, op: &str, axis: i64) -> Result<usize> {
        let rank = self.rank() as i64;
        let resolved = if axis < 0 { axis + rank } else { axis };
        if (0..rank).contains(&resolved) {
            Ok(resolved as usize)
        } else {
            Err(Error::attribute(op, format!("axis {axis} is out of range for shape {self}")))
        }
    }

    pub fn check_rank(&self, op: &str) -> Result<()> {
        if self.rank() > MAX_RANK {
            return Err(Error::shape(op, "rank too high", format!("rank <= {MAX_RANK}"), self));
        }
        Ok(())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
}

/// Row-major strides of `dims`, in elements.
pub fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

/// NumPy broadcasting of two shapes, or an error naming the op.
pub fn broadcast_shapes(op: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    let rank = a.rank().max(b.rank());
    let dim = |s: &Shape, i: usize| if i < rank - s.rank() { 1 } else { s.0[i - (rank - s.rank())] };
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let (x, y) = (dim(a, i), dim(b, i));
        out.push(match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => return Err(Error::shape(op, "shapes do not broadcast", a, b)),
        });
    }
    Ok(Shape(out))
}
