use std::collections::HashMap;

use kiln_core::{
    Activation, Adagrad, Adam, DType, Error, HostTensor, MatMul, Op, Precision, Reduce, Result, Rmsprop, Sgd, Shape,
};

/// A value in a graph: the output of the node with this index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub usize);

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<Value>,
    pub shape: Shape,
    pub dtype: DType,
    /// Name of a source node (for feeding and checkpoints); empty otherwise.
    pub name: String,
    /// Initial contents of a variable (zeros when absent).
    pub init: Option<HostTensor>,
}

/// Append-only list of nodes: insertion order is a topological order.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    precision: Precision,
    /// Under `Precision::Mixed`, each value a product has taken as an operand and its
    /// rounded copy, made once and shared by every product that reads it.
    rounded: HashMap<Value, Value>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the products pushed from now on take as operands: under `Precision::Mixed`, each
    /// operand goes through a `round_half` node first (its gradient's products too, as
    /// autodiff pushes them).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, v: Value) -> &Node {
        &self.nodes[v.0]
    }

    pub fn shape(&self, v: Value) -> &Shape {
        &self.nodes[v.0].shape
    }

    /// Gives node `v` another op computing a value of the same shape and type from `inputs`,
    /// all earlier nodes (a fusion's rewrite).
    pub(crate) fn replace(&mut self, v: Value, op: Op, inputs: Vec<Value>) {
        debug_assert!(inputs.iter().all(|i| i.0 < v.0), "a rewrite keeps the order topological");
        self.nodes[v.0].op = op;
        self.nodes[v.0].inputs = inputs;
    }

    fn source(&mut self, op: Op, name: &str, shape: Shape, dtype: DType, init: Option<HostTensor>) -> Value {
        let node = Node { op, inputs: vec![], shape, dtype, name: name.into(), init };
        self.nodes.push(node);
        Value(self.nodes.len() - 1)
    }

    /// A tensor the caller feeds before each run.
    pub fn input(&mut self, name: &str, shape: impl Into<Shape>, dtype: DType) -> Value {
        self.source(Op::Input, name, shape.into(), dtype, None)
    }

    /// Persistent f32 state (a parameter or optimizer buffer), zero until set.
    pub fn variable(&mut self, name: &str, shape: impl Into<Shape>) -> Value {
        self.source(Op::Variable, name, shape.into(), DType::F32, None)
    }

    /// A variable like `node` (a variable of another graph): same name, shape, dtype and
    /// initial contents, so programs built from either bind the same store entry.
    pub fn variable_like(&mut self, node: &Node) -> Value {
        self.source(Op::Variable, &node.name, node.shape.clone(), node.dtype, node.init.clone())
    }

    /// Persistent state with initial contents.
    pub fn variable_init(&mut self, name: &str, init: HostTensor) -> Value {
        self.source(Op::Variable, name, init.shape.clone(), init.dtype(), Some(init))
    }

    /// Appends `op` on `inputs`, inferring its shape or naming the op and shapes in an error.
    /// Under `Precision::Mixed` a product's operands are first rounded to binary16.
    pub fn push(&mut self, op: Op, inputs: &[Value]) -> Result<Value> {
        let operands = op.product_operands();
        if self.precision == Precision::Mixed && !operands.is_empty() {
            let mut rounded = inputs.to_vec();
            for &i in operands.iter().filter(|&&i| i < inputs.len()) {
                rounded[i] = self.rounded_half(inputs[i])?;
            }
            return self.push_as_given(op, &rounded);
        }
        self.push_as_given(op, inputs)
    }

    /// `v` rounded to binary16: `v` itself where it already is, else one node per value.
    fn rounded_half(&mut self, v: Value) -> Result<Value> {
        if self.nodes[v.0].op == Op::RoundHalf {
            return Ok(v);
        }
        if let Some(&r) = self.rounded.get(&v) {
            return Ok(r);
        }
        let r = self.push_as_given(Op::RoundHalf, &[v])?;
        self.rounded.insert(v, r);
        Ok(r)
    }

    fn push_as_given(&mut self, op: Op, inputs: &[Value]) -> Result<Value> {
        let described: Vec<_> = inputs.iter().map(|v| (&self.nodes[v.0].shape, self.nodes[v.0].dtype)).collect();
        let (shape, dtype) = op.output(&described)?;
        shape.check_size(op.name())?;
        for &i in op.updated_inputs() {
            if self.nodes[inputs[i].0].op != Op::Variable {
                return Err(Error::attribute(
                    op.name(),
                    format!("input {i} is updated in place and must be a variable"),
                ));
            }
        }
        self.nodes.push(Node { op, inputs: inputs.to_vec(), shape, dtype, name: String::new(), init: None });
        Ok(Value(self.nodes.len() - 1))
    }

    pub fn matmul(&mut self, a: Value, b: Value) -> Result<Value> {
        self.push(Op::MatMul(MatMul::default()), &[a, b])
    }

    pub fn matmul_with(&mut self, a: Value, b: Value, m: MatMul) -> Result<Value> {
        self.push(Op::MatMul(m), &[a, b])
    }

    /// `y = x wᵀ + b` with `x [N,I]`, `w [O,I]`, `b [O]`.
    pub fn linear(&mut self, x: Value, w: Value, b: Value) -> Result<Value> {
        let xw = self.matmul_with(x, w, MatMul { trans_a: false, trans_b: true })?;
        self.add(xw, b)
    }

    pub fn add(&mut self, a: Value, b: Value) -> Result<Value> {
        self.push(Op::Add, &[a, b])
    }

    pub fn sub(&mut self, a: Value, b: Value) -> Result<Value> {
        self.push(Op::Sub, &[a, b])
    }

    pub fn mul(&mut self, a: Value, b: Value) -> Result<Value> {
        self.push(Op::Mul, &[a, b])
    }

    pub fn div(&mut self, a: Value, b: Value) -> Result<Value> {
        self.push(Op::Div, &[a, b])
    }

    pub fn activation(&mut self, x: Value, a: Activation) -> Result<Value> {
        self.push(Op::Activation(a), &[x])
    }

    pub fn relu(&mut self, x: Value) -> Result<Value> {
        self.activation(x, Activation::Relu)
    }

    pub fn sigmoid(&mut self, x: Value) -> Result<Value> {
        self.activation(x, Activation::Sigmoid)
    }

    pub fn tanh(&mut self, x: Value) -> Result<Value> {
        self.activation(x, Activation::Tanh)
    }

    /// The identity needs no kernel: it is `x` itself.
    pub fn identity(&mut self, x: Value) -> Result<Value> {
        Ok(x)
    }

    /// `x` where positive, else `alpha[c]·x`, for `x [N,C,…]` and `alpha [C]`.
    pub fn prelu(&mut self, x: Value, alpha: Value) -> Result<Value> {
        self.push(Op::Prelu, &[x, alpha])
    }

    /// `s·x`.
    pub fn scale(&mut self, x: Value, s: f32) -> Result<Value> {
        let shape = self.shape(x).clone();
        self.push(Op::BroadcastTo { shape, scale: s }, &[x])
    }

    /// Sum over `axes` (negative axes count from the end).
    pub fn sum(&mut self, x: Value, axes: &[i64], keepdims: bool) -> Result<Value> {
        let axes = self.resolve_axes("sum", x, axes)?;
        self.push(Op::Sum(Reduce { axes, keepdims, scale: 1.0 }), &[x])
    }

    pub fn mean(&mut self, x: Value, axes: &[i64], keepdims: bool) -> Result<Value> {
        let axes = self.resolve_axes("mean", x, axes)?;
        let count: usize = axes.iter().map(|&a| self.shape(x).dims()[a]).product();
        let scale = 1.0 / count.max(1) as f32;
        self.push(Op::Sum(Reduce { axes, keepdims, scale }), &[x])
    }

    /// Maximum over `axes` (negative axes count from the end).
    pub fn max(&mut self, x: Value, axes: &[i64], keepdims: bool) -> Result<Value> {
        let axes = self.resolve_axes("max", x, axes)?;
        self.push(Op::Max(Reduce { axes, keepdims, scale: 1.0 }), &[x])
    }

    /// Sum over every axis, to a scalar.
    pub fn sum_all(&mut self, x: Value) -> Result<Value> {
        let axes: Vec<i64> = (0..self.shape(x).rank() as i64).collect();
        self.sum(x, &axes, false)
    }

    /// Mean over every axis, to a scalar.
    pub fn mean_all(&mut self, x: Value) -> Result<Value> {
        let axes: Vec<i64> = (0..self.shape(x).rank() as i64).collect();
        self.mean(x, &axes, false)
    }

    fn resolve_axes(&self, op: &str, x: Value, axes: &[i64]) -> Result<Vec<usize>> {
        let mut resolved = axes.iter().map(|&a| self.shape(x).axis(op, a)).collect::<Result<Vec<_>>>()?;
        resolved.sort_unstable();
        if resolved.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::attribute(op, format!("axes {axes:?} repeat an axis of {}", self.shape(x))));
        }
        Ok(resolved)
    }

    pub fn reshape(&mut self, x: Value, shape: impl Into<Shape>) -> Result<Value> {
        self.push(Op::Reshape(shape.into()), &[x])
    }

    pub fn transpose(&mut self, x: Value, perm: &[usize]) -> Result<Value> {
        self.push(Op::Transpose(perm.to_vec()), &[x])
    }

    /// Elements `start..start+len` of `axis`.
    pub fn slice(&mut self, x: Value, axis: usize, start: usize, len: usize) -> Result<Value> {
        self.push(Op::Slice { axis, start, len }, &[x])
    }

    /// `parts` one after another along `axis`.
    pub fn concat(&mut self, parts: &[Value], axis: usize) -> Result<Value> {
        self.push(Op::Concat { axis }, parts)
    }

    pub fn softmax(&mut self, x: Value, axis: i64) -> Result<Value> {
        let axis = self.shape(x).axis("softmax", axis)?;
        self.push(Op::Softmax { axis }, &[x])
    }

    pub fn log_softmax(&mut self, x: Value, axis: i64) -> Result<Value> {
        let axis = self.shape(x).axis("log_softmax", axis)?;
        self.push(Op::LogSoftmax { axis }, &[x])
    }

    pub fn sgd_step(&mut self, param: Value, grad: Value, momentum_buf: Value, s: Sgd) -> Result<Value> {
        self.push(Op::SgdStep(s), &[param, grad, momentum_buf])
    }

    /// Adam, or AdamW when `a.decoupled`.
    pub fn adam_step(&mut self, param: Value, grad: Value, m: Value, v: Value, a: Adam) -> Result<Value> {
        self.push(Op::AdamStep(a), &[param, grad, m, v])
    }

    pub fn adagrad_step(&mut self, param: Value, grad: Value, sum_sq: Value, a: Adagrad) -> Result<Value> {
        self.push(Op::AdagradStep(a), &[param, grad, sum_sq])
    }

    /// In place: `variable` takes `value` when the program runs (a gradient left in the
    /// parameter store for an update program, say).
    pub fn assign(&mut self, variable: Value, value: Value) -> Result<Value> {
        self.push(Op::Assign, &[variable, value])
    }

    pub fn rmsprop_step(&mut self, param: Value, grad: Value, sq_avg: Value, r: Rmsprop) -> Result<Value> {
        self.push(Op::RmspropStep(r), &[param, grad, sq_avg])
    }
}
