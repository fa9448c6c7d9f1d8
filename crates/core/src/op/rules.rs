//! Shape rules shared by the op families: arity and dtype checks, elementwise, reductions,
//! layout and the class losses.

use super::{GRADIENT, In, MatMul, Reduce};
use crate::{DType, Error, Result, Shape};

pub(super) fn arity(op: &str, inputs: &[In<'_>], n: usize) -> Result<()> {
    if inputs.len() != n {
        return Err(Error::shape(op, "wrong number of inputs", n, inputs.len()));
    }
    for (shape, _) in inputs {
        shape.check_rank(op)?;
    }
    Ok(())
}

/// Checks arity and that every input is f32, returning the shapes.
pub(super) fn floats<'a, const N: usize>(op: &str, inputs: &[In<'a>]) -> Result<[&'a Shape; N]> {
    arity(op, inputs, N)?;
    if let Some((shape, _)) = inputs.iter().find(|(_, dtype)| *dtype != DType::F32) {
        return Err(Error::shape(op, "expected an f32 input", "f32", format!("i32 tensor {shape}")));
    }
    Ok(std::array::from_fn(|i| inputs[i].0))
}

pub(super) fn same(op: &str, message: &str, a: &Shape, b: &Shape) -> Result<()> {
    if a != b {
        return Err(Error::shape(op, message, a, b));
    }
    Ok(())
}

pub(super) fn check_axis(op: &str, x: &Shape, axis: usize) -> Result<()> {
    if axis >= x.rank() {
        return Err(Error::attribute(op, format!("axis {axis} out of range for shape {x}")));
    }
    Ok(())
}

/// Ops whose `n` inputs are f32 tensors of one shape, which is also the output's: backward
/// ops (saved tensors and `dy`) and optimizer updates (param, grad and state).
pub(super) fn same_shapes(op: &str, inputs: &[In<'_>], n: usize, message: &str) -> Result<Shape> {
    arity(op, inputs, n)?;
    let first = inputs[0].0;
    for (shape, dtype) in inputs {
        if *dtype != DType::F32 {
            return Err(Error::shape(op, "expected f32 inputs", "f32", format!("i32 tensor {shape}")));
        }
        same(op, message, first, shape)?;
    }
    Ok(first.clone())
}

/// Ops whose `n` inputs are f32 tensors of one element each.
pub(super) fn scalars(op: &str, inputs: &[In<'_>], n: usize, message: &str) -> Result<()> {
    arity(op, inputs, n)?;
    for (shape, dtype) in inputs {
        if *dtype != DType::F32 || shape.numel() != 1 {
            return Err(Error::shape(op, message, "one f32 element", format!("{dtype:?} tensor {shape}")));
        }
    }
    Ok(())
}

pub(super) fn matmul_shape(m: MatMul, inputs: &[In<'_>]) -> Result<Shape> {
    let [a, b] = floats::<2>("matmul", inputs)?;
    let ok_rank = |s: &Shape| s.rank() == 2 || s.rank() == 3;
    if !ok_rank(a) || !ok_rank(b) {
        return Err(Error::shape("matmul", "operands must be [M,K] or [B,M,K]", "rank 2 or 3", format!("{a} and {b}")));
    }
    let last2 = |s: &Shape, t: bool| {
        let d = &s.0[s.rank() - 2..];
        if t { (d[1], d[0]) } else { (d[0], d[1]) }
    };
    let ((rows, k_a), (k_b, cols)) = (last2(a, m.trans_a), last2(b, m.trans_b));
    if k_a != k_b {
        return Err(Error::shape("matmul", "inner dimensions differ", format!("{a} · [{k_a}, N]"), b));
    }
    let batch = match (a.rank(), b.rank()) {
        (3, 3) if a.0[0] != b.0[0] => return Err(Error::shape("matmul", "batch sizes differ", a, b)),
        (3, _) => Some(a.0[0]),
        (_, 3) => Some(b.0[0]),
        _ => None,
    };
    Ok(Shape(batch.into_iter().chain([rows, cols]).collect()))
}

/// `linear`'s `(x, w, b)`: a 2-D product and one bias value per column of it.
pub(super) fn linear_shape(m: MatMul, inputs: &[In<'_>]) -> Result<Shape> {
    let [_, _, b] = floats::<3>("linear", inputs)?;
    let y = matmul_shape(m, &inputs[..2])?;
    if y.rank() != 2 || b.0 != [y.0[1]] {
        return Err(Error::shape(
            "linear",
            "the bias holds one value per column of a 2-D product",
            format!("[{}]", y.0[y.rank() - 1]),
            b,
        ));
    }
    Ok(y)
}

/// `a`, `b` as for a product, `x` of the product's shape.
pub(super) fn matmul_relu_backward_shape(m: MatMul, inputs: &[In<'_>]) -> Result<Shape> {
    let name = "matmul_relu_backward";
    let [_, _, x] = floats::<3>(name, inputs)?;
    let y = matmul_shape(m, &inputs[..2])?;
    same(name, GRADIENT, &y, x)?;
    Ok(y)
}

/// The ops of PReLU's family.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum PreluPart {
    Forward,
    BackwardInput,
    BackwardAlpha,
}

/// `x [N,C,…]` with `alpha [C]`; the alpha gradient is `[C]`, the others have x's shape.
pub(super) fn prelu_shape(name: &str, part: PreluPart, inputs: &[In<'_>]) -> Result<Shape> {
    let (x, channels) = match part {
        PreluPart::BackwardAlpha => {
            let [x, dy] = floats::<2>(name, inputs)?;
            same(name, "gradient must match its forward tensor", x, dy)?;
            (x, None)
        }
        PreluPart::BackwardInput => {
            let [x, alpha, dy] = floats::<3>(name, inputs)?;
            same(name, "gradient must match its forward tensor", x, dy)?;
            (x, Some(alpha))
        }
        PreluPart::Forward => {
            let [x, alpha] = floats::<2>(name, inputs)?;
            (x, Some(alpha))
        }
    };
    if x.rank() < 2 {
        return Err(Error::shape(name, "x must be [N,C,…]", "rank >= 2", x));
    }
    if let Some(alpha) = channels
        && alpha.dims() != [x.dims()[1]]
    {
        return Err(Error::shape(name, "alpha must hold one slope per channel", format!("[{}]", x.dims()[1]), alpha));
    }
    Ok(if part == PreluPart::BackwardAlpha { Shape::new([x.dims()[1]]) } else { x.clone() })
}

pub(super) fn reduce_shape(op: &str, r: &Reduce, inputs: &[In<'_>]) -> Result<Shape> {
    let [x] = floats::<1>(op, inputs)?;
    if r.axes.windows(2).any(|w| w[0] >= w[1]) || r.axes.iter().any(|&a| a >= x.rank()) {
        return Err(Error::attribute(op, format!("axes {:?} must be distinct and within shape {x}", r.axes)));
    }
    let dims = x.0.iter().enumerate().filter_map(|(i, &d)| match r.axes.contains(&i) {
        true if r.keepdims => Some(1),
        true => None,
        false => Some(d),
    });
    Ok(Shape(dims.collect()))
}

/// `(x, y, dy)` of a max reduction: y and dy have the reduced shape.
pub(super) fn max_backward_shape(op: &str, r: &Reduce, inputs: &[In<'_>]) -> Result<Shape> {
    let [x, y, dy] = floats::<3>(op, inputs)?;
    let reduced = reduce_shape(op, r, &[(x, DType::F32)])?;
    same(op, "the maximum must have the reduced shape", &reduced, y)?;
    same(op, "the gradient must have the reduced shape", &reduced, dy)?;
    Ok(x.clone())
}

pub(super) fn broadcast_to_shape(op: &str, shape: &Shape, inputs: &[In<'_>]) -> Result<Shape> {
    let [x] = floats::<1>(op, inputs)?;
    let fits = x.rank() == shape.rank() && x.0.iter().zip(&shape.0).all(|(&a, &b)| a == b || a == 1);
    if !fits {
        return Err(Error::shape(op, "cannot broadcast", shape, x));
    }
    Ok(shape.clone())
}

pub(super) fn transpose_shape(op: &str, perm: &[usize], inputs: &[In<'_>]) -> Result<Shape> {
    let [x] = floats::<1>(op, inputs)?;
    let mut seen = vec![false; x.rank()];
    for &p in perm {
        if p >= x.rank() || std::mem::replace(&mut seen[p], true) {
            return Err(Error::attribute(op, format!("perm {perm:?} is not a permutation of the axes of {x}")));
        }
    }
    if perm.len() != x.rank() {
        return Err(Error::attribute(op, format!("perm {perm:?} must list every axis of {x}")));
    }
    Ok(Shape(perm.iter().map(|&p| x.0[p]).collect()))
}

pub(super) fn slice_shape(op: &str, axis: usize, start: usize, len: usize, inputs: &[In<'_>]) -> Result<Shape> {
    let [x] = floats::<1>(op, inputs)?;
    check_axis(op, x, axis)?;
    if len == 0 || start + len > x.dims()[axis] {
        return Err(Error::attribute(op, format!("{start}..{} is not within axis {axis} of {x}", start + len)));
    }
    let mut dims = x.dims().to_vec();
    dims[axis] = len;
    Ok(Shape(dims))
}

/// Inputs of one rank and dtype f32, equal but along `axis`, one after another along it.
pub(super) fn concat_shape(op: &str, axis: usize, inputs: &[In<'_>]) -> Result<Shape> {
    let Some(((first, _), rest)) = inputs.split_first() else {
        return Err(Error::attribute(op, "needs at least one input"));
    };
    if let Some((shape, _)) = inputs.iter().find(|(_, dtype)| *dtype != DType::F32) {
        return Err(Error::shape(op, "expected f32 inputs", "f32", format!("i32 tensor {shape}")));
    }
    check_axis(op, first, axis)?;
    let mut dims = first.dims().to_vec();
    for (shape, _) in rest {
        let fits = shape.rank() == first.rank()
            && shape.dims().iter().zip(first.dims()).enumerate().all(|(d, (a, b))| d == axis || a == b);
        if !fits {
            return Err(Error::shape(op, format!("inputs must match but along axis {axis}"), first, shape));
        }
        dims[axis] += shape.dims()[axis];
    }
    Ok(Shape(dims))
}

pub(super) fn slice_backward_shape(
    op: &str,
    axis: usize,
    start: usize,
    full: usize,
    inputs: &[In<'_>],
) -> Result<Shape> {
    let [dy] = floats::<1>(op, inputs)?;
    check_axis(op, dy, axis)?;
    if start + dy.dims()[axis] > full {
        return Err(Error::attribute(op, format!("{dy} at {start} does not fit {full} along axis {axis}")));
    }
    let mut dims = dy.dims().to_vec();
    dims[axis] = full;
    Ok(Shape(dims))
}

/// `(logits [N,C], labels [N] i32)` → `[N]`; the backward op adds `dy [N]` and gives `[N,C]`.
pub(super) fn class_loss_shape(op: &str, inputs: &[In<'_>], backward: bool) -> Result<Shape> {
    arity(op, inputs, if backward { 3 } else { 2 })?;
    let ((logits, lt), (labels, dt)) = (inputs[0], inputs[1]);
    if lt != DType::F32 || dt != DType::I32 {
        return Err(Error::shape(op, "expected f32 logits and i32 labels", "f32, i32", format!("{lt:?}, {dt:?}")));
    }
    if logits.rank() != 2 || labels.0 != [logits.0[0]] {
        return Err(Error::shape(
            op,
            "logits must be [N,C] and labels [N]",
            "[N,C] and [N]",
            format!("{logits} and {labels}"),
        ));
    }
    let rows = Shape(vec![logits.0[0]]);
    if backward {
        same(op, "gradient must be [N]", &rows, inputs[2].0)?;
        return Ok(logits.clone());
    }
    Ok(rows)
}
