//! The closed set of operators. Backward kernels are ordinary ops; matches over `Op` have no
//! catch-all arm, so the compiler lists every place a new op must be handled.

use crate::{DType, Error, Result, Shape, broadcast_shapes};

/// `y = op(a) · op(b)` over the last two axes; a leading batch axis on either side broadcasts.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MatMul {
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Sum over `axes` (sorted, resolved), times `scale` (1 for `sum`, 1/count for `mean`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub axes: Vec<usize>,
    pub keepdims: bool,
    pub scale: f32,
}

/// SGD with momentum and L2 weight decay, PyTorch semantics (dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

/// Adam with L2 weight decay, PyTorch semantics; `step` is 1-based and advances every run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Fed by the caller before each run.
    Input,
    /// Persistent state: parameters and optimizer buffers.
    Variable,
    MatMul(MatMul),
    Add,
    Sub,
    Mul,
    Div,
    Relu,
    ReluBackward,
    Sigmoid,
    SigmoidBackward,
    Tanh,
    TanhBackward,
    Sum(Reduce),
    /// Broadcasts `x` (same rank, dims 1 or equal) to `shape`, times `scale`.
    BroadcastTo {
        shape: Shape,
        scale: f32,
    },
    Reshape(Shape),
    Transpose(Vec<usize>),
    Softmax {
        axis: usize,
    },
    SoftmaxBackward {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    LogSoftmaxBackward {
        axis: usize,
    },
    /// Per-row `logsumexp(logits) - logits[label]`: `[N,C]`, labels `[N]` → `[N]`.
    CrossEntropyPerSample,
    CrossEntropyPerSampleBackward,
    /// In place: `param`, `grad`, `momentum_buf`; updates `param` and `momentum_buf`.
    SgdStep(Sgd),
    /// In place: `param`, `grad`, `m`, `v`; updates `param`, `m` and `v`.
    AdamStep(Adam),
}

type In<'a> = (&'a Shape, DType);

impl Op {
    /// The op's name, the same in WGSL entry points, host functions and the CPU path.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Variable => "variable",
            Op::MatMul(_) => "matmul",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Relu => "relu",
            Op::ReluBackward => "relu_backward",
            Op::Sigmoid => "sigmoid",
            Op::SigmoidBackward => "sigmoid_backward",
            Op::Tanh => "tanh",
            Op::TanhBackward => "tanh_backward",
            Op::Sum(_) => "sum",
            Op::BroadcastTo { .. } => "broadcast_to",
            Op::Reshape(_) => "reshape",
            Op::Transpose(_) => "transpose",
            Op::Softmax { .. } => "softmax",
            Op::SoftmaxBackward { .. } => "softmax_backward",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::LogSoftmaxBackward { .. } => "log_softmax_backward",
            Op::CrossEntropyPerSample => "cross_entropy_per_sample",
            Op::CrossEntropyPerSampleBackward => "cross_entropy_per_sample_backward",
            Op::SgdStep(_) => "sgd_step",
            Op::AdamStep(_) => "adam_step",
        }
    }

    /// Indices of the inputs an in-place update writes (empty for ordinary ops).
    pub fn updated_inputs(&self) -> &'static [usize] {
        match self {
            Op::SgdStep(_) => &[0, 2],
            Op::AdamStep(_) => &[0, 2, 3],
            _ => &[],
        }
    }

    /// Shape and dtype of the output, or an error naming the op and the shapes.
    pub fn output(&self, inputs: &[In<'_>]) -> Result<(Shape, DType)> {
        let name = self.name();
        match self {
            Op::Input | Op::Variable => Err(Error::attribute(name, "a source node has no inputs")),
            Op::MatMul(m) => arity(name, inputs, 2).and_then(|_| matmul_shape(*m, inputs)),
            Op::Add | Op::Sub | Op::Mul | Op::Div => {
                let [a, b] = floats::<2>(name, inputs)?;
                Ok((broadcast_shapes(name, a, b)?, DType::F32))
            }
            Op::Relu | Op::Sigmoid | Op::Tanh => {
                let [x] = floats::<1>(name, inputs)?;
                Ok((x.clone(), DType::F32))
            }
            Op::ReluBackward
            | Op::SigmoidBackward
            | Op::TanhBackward
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmaxBackward { .. } => {
                let [x, dy] = floats::<2>(name, inputs)?;
                same(name, "gradient must match its forward tensor", x, dy)?;
                Ok((x.clone(), DType::F32))
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                let [x] = floats::<1>(name, inputs)?;
                check_axis(name, x, *axis)?;
                Ok((x.clone(), DType::F32))
            }
            Op::Sum(r) => reduce_shape(name, r, inputs),
            Op::BroadcastTo { shape, .. } => broadcast_to_shape(name, shape, inputs),
            Op::Reshape(shape) => {
                let [x] = floats::<1>(name, inputs)?;
                if x.numel() != shape.numel() {
                    return Err(Error::shape(name, "element count must not change", x, shape));
                }
                Ok((shape.clone(), DType::F32))
            }
            Op::Transpose(perm) => transpose_shape(name, perm, inputs),
            Op::CrossEntropyPerSample => cross_entropy_shape(name, inputs, false),
            Op::CrossEntropyPerSampleBackward => cross_entropy_shape(name, inputs, true),
            Op::SgdStep(_) => update_shape(name, inputs, 3),
            Op::AdamStep(_) => update_shape(name, inputs, 4),
        }
    }
}

fn arity(op: &str, inputs: &[In<'_>], n: usize) -> Result<()> {
    if inputs.len() != n {
        return Err(Error::shape(op, "wrong number of inputs", n, inputs.len()));
    }
    for (shape, _) in inputs {
        shape.check_rank(op)?;
    }
    Ok(())
}

/// Checks arity and that every input is f32, returning the shapes.
fn floats<'a, const N: usize>(op: &str, inputs: &[In<'a>]) -> Result<[&'a Shape; N]> {
    arity(op, inputs, N)?;
    if let Some((shape, _)) = inputs.iter().find(|(_, dtype)| *dtype != DType::F32) {
        return Err(Error::shape(op, "expected an f32 input", "f32", format!("i32 tensor {shape}")));
    }
    Ok(std::array::from_fn(|i| inputs[i].0))
}

fn same(op: &str, message: &str, a: &Shape, b: &Shape) -> Result<()> {
    if a != b {
        return Err(Error::shape(op, message, a, b));
    }
    Ok(())
}

fn check_axis(op: &str, x: &Shape, axis: usize) -> Result<()> {
    if axis >= x.rank() {
        return Err(Error::attribute(op, format!("axis {axis} out of range for shape {x}")));
    }
    Ok(())
}

fn matmul_shape(m: MatMul, inputs: &[In<'_>]) -> Result<(Shape, DType)> {
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
    let dims = batch.into_iter().chain([rows, cols]).collect::<Vec<_>>();
    Ok((Shape(dims), DType::F32))
}

fn reduce_shape(op: &str, r: &Reduce, inputs: &[In<'_>]) -> Result<(Shape, DType)> {
    let [x] = floats::<1>(op, inputs)?;
    if r.axes.windows(2).any(|w| w[0] >= w[1]) || r.axes.iter().any(|&a| a >= x.rank()) {
        return Err(Error::attribute(op, format!("axes {:?} must be distinct and within shape {x}", r.axes)));
    }
    let dims = x.0.iter().enumerate().filter_map(|(i, &d)| match r.axes.contains(&i) {
        true if r.keepdims => Some(1),
        true => None,
        false => Some(d),
    });
    Ok((Shape(dims.collect()), DType::F32))
}

fn broadcast_to_shape(op: &str, shape: &Shape, inputs: &[In<'_>]) -> Result<(Shape, DType)> {
    let [x] = floats::<1>(op, inputs)?;
    let fits = x.rank() == shape.rank() && x.0.iter().zip(&shape.0).all(|(&a, &b)| a == b || a == 1);
    if !fits {
        return Err(Error::shape(op, "cannot broadcast", shape, x));
    }
    Ok((shape.clone(), DType::F32))
}

fn transpose_shape(op: &str, perm: &[usize], inputs: &[In<'_>]) -> Result<(Shape, DType)> {
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
    Ok((Shape(perm.iter().map(|&p| x.0[p]).collect()), DType::F32))
}

fn cross_entropy_shape(op: &str, inputs: &[In<'_>], backward: bool) -> Result<(Shape, DType)> {
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
        return Ok((logits.clone(), DType::F32));
    }
    Ok((rows, DType::F32))
}

fn update_shape(op: &str, inputs: &[In<'_>], n: usize) -> Result<(Shape, DType)> {
    arity(op, inputs, n)?;
    let param = inputs[0].0;
    for (shape, _) in &inputs[1..] {
        same(op, "gradient and optimizer state must match the parameter", param, shape)?;
    }
    Ok((param.clone(), DType::F32))
}
