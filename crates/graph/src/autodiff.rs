//! Reverse-mode autodiff as a graph rewrite: one arm per op appends the nodes of its
//! vector-Jacobian product. Gradients of a value used twice are summed by explicit `add` nodes.

use std::collections::HashMap;

use kiln_core::{Conv2d, Error, HostTensor, MatMul, Op, Reduce, Result, Shape};

use crate::{Graph, Value};

/// Gradients of the scalar `loss` with respect to `wrt`, seeded with 1.
pub fn grad(g: &mut Graph, loss: Value, wrt: &[Value]) -> Result<Vec<Value>> {
    if g.shape(loss).numel() != 1 {
        return Err(Error::shape("grad", "the loss must have one element", "[]", g.shape(loss)));
    }
    let seed = HostTensor::f32(g.shape(loss).clone(), vec![1.0])?;
    let seed = g.variable_init("grad_seed", seed);
    grad_with(g, &[(loss, seed)], wrt)
}

/// Vector-Jacobian products: gradients with respect to `wrt` of `Σ_k sum(out_k · cot_k)`.
/// A value of `wrt` that no output depends on gets an error naming it.
pub fn grad_with(g: &mut Graph, cotangents: &[(Value, Value)], wrt: &[Value]) -> Result<Vec<Value>> {
    let needed = depends_on(g, wrt);
    let mut grads: HashMap<Value, Value> = HashMap::new();
    for &(out, cot) in cotangents {
        accumulate(g, &mut grads, out, cot)?;
    }
    let last = cotangents.iter().map(|(o, _)| o.0).max().unwrap_or(0);
    for index in (0..=last).rev() {
        let y = Value(index);
        let Some(&dy) = grads.get(&y) else { continue };
        if !needed[index] || g.node(y).inputs.is_empty() {
            continue;
        }
        for (input, dx) in backward(g, y, dy)? {
            if needed[input.0] {
                accumulate(g, &mut grads, input, dx)?;
            }
        }
    }
    wrt.iter()
        .map(|v| {
            grads.get(v).copied().ok_or_else(|| Error::attribute("grad", format!("no output depends on node {}", v.0)))
        })
        .collect()
}

/// `needed[i]`: node i is one of `wrt` or depends on one.
fn depends_on(g: &Graph, wrt: &[Value]) -> Vec<bool> {
    let mut needed = vec![false; g.nodes().len()];
    for (i, node) in g.nodes().iter().enumerate() {
        needed[i] = wrt.contains(&Value(i)) || node.inputs.iter().any(|v| needed[v.0]);
    }
    needed
}

fn accumulate(g: &mut Graph, grads: &mut HashMap<Value, Value>, v: Value, dv: Value) -> Result<()> {
    let total = match grads.get(&v) {
        Some(&previous) => g.add(previous, dv)?,
        None => dv,
    };
    grads.insert(v, total);
    Ok(())
}

/// The gradient contributions of node `y` to its inputs, given `dy`.
fn backward(g: &mut Graph, y: Value, dy: Value) -> Result<Vec<(Value, Value)>> {
    let node = g.node(y).clone();
    let x = |i: usize| node.inputs[i];
    Ok(match &node.op {
        // y = op(a)·op(b) ⇒ da, db by the transposed products, summed over a broadcast batch
        Op::MatMul(m) => matmul_backward(g, *m, x(0), x(1), dy)?,
        // y = a ± b ⇒ da = Σ dy, db = ±Σ dy over broadcast axes
        Op::Add => vec![(x(0), sum_to(g, dy, x(0), 1.0)?), (x(1), sum_to(g, dy, x(1), 1.0)?)],
        Op::Sub => vec![(x(0), sum_to(g, dy, x(0), 1.0)?), (x(1), sum_to(g, dy, x(1), -1.0)?)],
        // y = a·b ⇒ da = Σ dy·b, db = Σ dy·a
        Op::Mul => {
            let (da, db) = (g.mul(dy, x(1))?, g.mul(dy, x(0))?);
            vec![(x(0), sum_to(g, da, x(0), 1.0)?), (x(1), sum_to(g, db, x(1), 1.0)?)]
        }
        // y = a/b ⇒ da = Σ dy/b, db = -Σ dy·y/b
        Op::Div => {
            let da = g.div(dy, x(1))?;
            let dy_y = g.mul(dy, y)?;
            let db = g.div(dy_y, x(1))?;
            vec![(x(0), sum_to(g, da, x(0), 1.0)?), (x(1), sum_to(g, db, x(1), -1.0)?)]
        }
        // y = f(x) ⇒ dx = f'(x)·dy
        Op::Activation(a) => vec![(x(0), g.push(Op::ActivationBackward(*a), &[x(0), dy])?)],
        // y = x>0 ? x : α_c·x ⇒ dx = dy·(x>0 ? 1 : α_c), dα_c = Σ_{x≤0} dy·x
        Op::Prelu => vec![
            (x(0), g.push(Op::PreluBackwardInput, &[x(0), x(1), dy])?),
            (x(1), g.push(Op::PreluBackwardAlpha, &[x(0), dy])?),
        ],
        // y = s·Σ_axes x ⇒ dx = s·broadcast(dy)
        Op::Sum(r) => vec![(x(0), sum_backward(g, r, x(0), dy)?)],
        // y = max_axes x ⇒ dx = dy shared by the elements equal to y
        Op::Max(r) => vec![(x(0), g.push(Op::MaxBackward(r.clone()), &[x(0), y, dy])?)],
        // y = s·broadcast(x) ⇒ dx = s·Σ dy over the broadcast axes
        Op::BroadcastTo { scale, .. } => vec![(x(0), sum_to(g, dy, x(0), *scale)?)],
        // y = reshape(x) ⇒ dx = reshape(dy)
        Op::Reshape(_) => vec![(x(0), g.reshape(dy, node_shape(g, x(0)))?)],
        // y = transpose(x, p) ⇒ dx = transpose(dy, p⁻¹)
        Op::Transpose(perm) => vec![(x(0), g.transpose(dy, &inverse(perm))?)],
        // y = x[start..start+len] along axis ⇒ dx = dy placed back among zeros
        Op::Slice { axis, start, .. } => {
            let full = g.shape(x(0)).dims()[*axis];
            vec![(x(0), g.push(Op::SliceBackward { axis: *axis, start: *start, full }, &[dy])?)]
        }
        // y = [x_0, x_1, …] along an axis ⇒ dx_k = dy[offset_k..offset_k + len_k]
        Op::Concat { axis } => {
            let mut start = 0;
            let mut grads = Vec::with_capacity(node.inputs.len());
            for &input in &node.inputs {
                let len = g.shape(input).dims()[*axis];
                grads.push((input, g.slice(dy, *axis, start, len)?));
                start += len;
            }
            grads
        }
        // y = softmax(x) ⇒ dx = y(dy - Σ dy·y)
        Op::Softmax { axis } => vec![(x(0), g.push(Op::SoftmaxBackward { axis: *axis }, &[y, dy])?)],
        // y = log_softmax(x) ⇒ dx = dy - e^y Σ dy
        Op::LogSoftmax { axis } => vec![(x(0), g.push(Op::LogSoftmaxBackward { axis: *axis }, &[y, dy])?)],
        // y_n = lse(x_n) - x_n[l_n] ⇒ dx_n = dy_n(softmax(x_n) - onehot(l_n)); labels have none
        Op::CrossEntropyPerSample => {
            vec![(x(0), g.push(Op::CrossEntropyPerSampleBackward, &[x(0), x(1), dy])?)]
        }
        // y_n = -x_n[l_n] ⇒ dx_n = -dy_n·onehot(l_n)
        Op::NllPerSample => vec![(x(0), g.push(Op::NllPerSampleBackward, &[x(0), x(1), dy])?)],
        // y = ℓ(p, t) ⇒ dp = dy·∂ℓ/∂p, dt = dy·∂ℓ/∂t
        Op::Loss(kind) => vec![
            (x(0), g.push(Op::LossBackward { kind: *kind, wrt_target: false }, &[x(0), x(1), dy])?),
            (x(1), g.push(Op::LossBackward { kind: *kind, wrt_target: true }, &[x(0), x(1), dy])?),
        ],
        Op::Conv2d(c) => conv2d_backward(g, c, &node.inputs, dy)?,
        // y = max(conv, 0) ⇒ the ReLU's gradient (y > 0 exactly where the convolution's output
        // is), then the convolution's
        Op::Conv2dRelu(c) => {
            let dz = g.push(Op::ActivationBackward(kiln_core::Activation::Relu), &[y, dy])?;
            conv2d_backward(g, c, &node.inputs, dz)?
        }
        Op::ConvTranspose2d { conv, .. } => conv_transpose2d_backward(g, conv, &node.inputs, dy)?,
        // y = pool(x) ⇒ dx gathers dy from every window holding each element
        Op::Pool2d(p) => vec![(x(0), g.push(Op::Pool2dBackward(*p), &[x(0), y, dy])?)],
        Op::BatchNorm { eps } => batch_norm_backward(g, *eps, &node.inputs, dy)?,
        Op::LayerNorm { eps } => layer_norm_backward(g, *eps, &node.inputs, dy)?,
        // y = m·x ⇒ dx = m·dy with the same mask
        Op::Dropout(d) => vec![(x(0), g.push(Op::DropoutBackward(*d), &[dy])?)],
        // y[i] = table[ids[i]] ⇒ dtable[v] = Σ_{ids[i] = v} dy[i]; ids have none
        Op::Embedding => {
            let vocab = g.shape(x(0)).dims()[0];
            vec![(x(0), g.push(Op::EmbeddingBackward { vocab }, &[x(1), dy])?)]
        }
        // A product's operand rounded to binary16 passes its gradient through unchanged, as the
        // cast of mixed-precision training does (the products it feeds round their own dy).
        Op::RoundHalf => vec![(x(0), dy)],
        Op::Input
        | Op::Variable
        | Op::ActivationBackward(_)
        | Op::PreluBackwardInput
        | Op::PreluBackwardAlpha
        | Op::MaxBackward(_)
        | Op::SliceBackward { .. }
        | Op::SoftmaxBackward { .. }
        | Op::LogSoftmaxBackward { .. }
        | Op::CrossEntropyPerSampleBackward
        | Op::NllPerSampleBackward
        | Op::LossBackward { .. }
        | Op::Conv2dBackwardInput { .. }
        | Op::Conv2dBackwardWeight { .. }
        | Op::Pool2dBackward(_)
        | Op::Pool2dBackwardRelu(_)
        | Op::Linear { .. }
        | Op::MatMulReluBackward(_)
        | Op::BatchNormStats
        | Op::BatchNormBackwardReduce { .. }
        | Op::BatchNormBackwardInput { .. }
        | Op::BatchNormRunningUpdate { .. }
        | Op::LayerNormStats
        | Op::LayerNormBackwardInput { .. }
        | Op::LayerNormBackwardParams { .. }
        | Op::DropoutBackward(_)
        | Op::RandomNormal { .. }
        | Op::EmbeddingBackward { .. }
        | Op::ClipFactor { .. }
        | Op::LossScaleFactor { .. }
        | Op::LossScaleUpdate(_)
        | Op::SgdStep(_)
        | Op::AdamStep(_)
        | Op::AdagradStep(_)
        | Op::RmspropStep(_)
        | Op::Assign => return Err(Error::Unsupported(format!("{}: no gradient rule", node.op.name()))),
    })
}

/// `y = conv(x, w) + b` ⇒ `dx = conv2d_backward_input(dy, w)`, `dw = conv2d_backward_weight(x, dy)`,
/// `db = Σ_{n,h,w} dy`.
fn conv2d_backward(g: &mut Graph, c: &Conv2d, inputs: &[Value], dy: Value) -> Result<Vec<(Value, Value)>> {
    let (x, w) = (inputs[0], inputs[1]);
    let (xd, wd) = (g.shape(x).dims().to_vec(), g.shape(w).dims().to_vec());
    let dx = g.push(Op::Conv2dBackwardInput { conv: *c, input_hw: [xd[2], xd[3]] }, &[dy, w])?;
    let dw = g.push(Op::Conv2dBackwardWeight { conv: *c, kernel_hw: [wd[2], wd[3]] }, &[x, dy])?;
    let mut grads = vec![(x, dx), (w, dw)];
    if let Some(&b) = inputs.get(2) {
        grads.push((b, g.sum(dy, &[0, 2, 3], false)?));
    }
    Ok(grads)
}

/// `y = convᵀ(x, w) + b`, the adjoint of `z ↦ conv(z, w)` ⇒ `dx = conv(dy, w)` (cropped to x
/// where output padding made the image larger), `dw = conv2d_backward_weight(dy, x)`, `db = Σ dy`.
fn conv_transpose2d_backward(g: &mut Graph, c: &Conv2d, inputs: &[Value], dy: Value) -> Result<Vec<(Value, Value)>> {
    let (x, w) = (inputs[0], inputs[1]);
    let (xd, wd) = (g.shape(x).dims().to_vec(), g.shape(w).dims().to_vec());
    let mut dx = g.push(Op::Conv2d(*c), &[dy, w])?;
    for axis in [2, 3] {
        if g.shape(dx).dims()[axis] != xd[axis] {
            dx = g.push(Op::Slice { axis, start: 0, len: xd[axis] }, &[dx])?;
        }
    }
    let dw = g.push(Op::Conv2dBackwardWeight { conv: *c, kernel_hw: [wd[2], wd[3]] }, &[dy, x])?;
    let mut grads = vec![(x, dx), (w, dw)];
    if let Some(&b) = inputs.get(2) {
        grads.push((b, g.sum(dy, &[0, 2, 3], false)?));
    }
    Ok(grads)
}

/// Row `row` of a `[2,C]` tensor of sums, as `[C]`.
fn row_of_two(g: &mut Graph, sums: Value, row: usize) -> Result<Value> {
    let len = g.shape(sums).dims()[1];
    let picked = g.push(Op::Slice { axis: 0, start: row, len: 1 }, &[sums])?;
    g.reshape(picked, vec![len])
}

/// `y = γ·x̂ + β` ⇒ `dγ = Σ dy·x̂`, `dβ = Σ dy`, and dx through the batch statistics when they
/// were computed from this x (training), else with them held constant (running statistics).
fn batch_norm_backward(g: &mut Graph, eps: f32, inputs: &[Value], dy: Value) -> Result<Vec<(Value, Value)>> {
    let [x, stats, gamma, beta] = [inputs[0], inputs[1], inputs[2], inputs[3]];
    let training = g.node(stats).op == Op::BatchNormStats && g.node(stats).inputs == [x];
    let sums = g.push(Op::BatchNormBackwardReduce { eps }, &[x, stats, dy])?;
    let dx = g.push(Op::BatchNormBackwardInput { eps, training }, &[x, stats, gamma, dy, sums])?;
    Ok(vec![(x, dx), (gamma, row_of_two(g, sums, 1)?), (beta, row_of_two(g, sums, 0)?)])
}

/// `y = γ·x̂ + β` per row ⇒ dx through the row statistics, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
fn layer_norm_backward(g: &mut Graph, eps: f32, inputs: &[Value], dy: Value) -> Result<Vec<(Value, Value)>> {
    let [x, stats, gamma, beta] = [inputs[0], inputs[1], inputs[2], inputs[3]];
    if g.node(stats).op != Op::LayerNormStats || g.node(stats).inputs != [x] {
        return Err(Error::Unsupported("layer_norm: the gradient needs statistics computed from x".into()));
    }
    let dx = g.push(Op::LayerNormBackwardInput { eps }, &[x, stats, gamma, dy])?;
    let sums = g.push(Op::LayerNormBackwardParams { eps }, &[x, stats, dy])?;
    Ok(vec![(x, dx), (gamma, row_of_two(g, sums, 1)?), (beta, row_of_two(g, sums, 0)?)])
}

fn node_shape(g: &Graph, v: Value) -> Shape {
    g.shape(v).clone()
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// `y = A'·B'` with `A' = op(a)`, `B' = op(b)`: `dA' = dy·B'ᵀ`, `dB' = A'ᵀ·dy`, transposed back
/// where the operand was transposed, and summed over the batch where the operand was 2-D.
fn matmul_backward(g: &mut Graph, m: MatMul, a: Value, b: Value, dy: Value) -> Result<Vec<(Value, Value)>> {
    let da = if m.trans_a {
        g.matmul_with(b, dy, MatMul { trans_a: m.trans_b, trans_b: true })?
    } else {
        g.matmul_with(dy, b, MatMul { trans_a: false, trans_b: !m.trans_b })?
    };
    let db = if m.trans_b {
        g.matmul_with(dy, a, MatMul { trans_a: true, trans_b: m.trans_a })?
    } else {
        g.matmul_with(a, dy, MatMul { trans_a: !m.trans_a, trans_b: false })?
    };
    Ok(vec![(a, sum_to(g, da, a, 1.0)?), (b, sum_to(g, db, b, 1.0)?)])
}

/// `dx = s·broadcast(dy)` back to the shape of `x`, through the keepdims shape.
fn sum_backward(g: &mut Graph, r: &Reduce, x: Value, dy: Value) -> Result<Value> {
    let shape = node_shape(g, x);
    let kept: Vec<usize> =
        shape.dims().iter().enumerate().map(|(i, &d)| if r.axes.contains(&i) { 1 } else { d }).collect();
    let dy = if r.keepdims { dy } else { g.reshape(dy, kept)? };
    g.push(Op::BroadcastTo { shape, scale: r.scale }, &[dy])
}

/// `scale · dy` summed down to the shape of `x` (NumPy broadcasting in reverse).
fn sum_to(g: &mut Graph, dy: Value, x: Value, scale: f32) -> Result<Value> {
    let (from, to) = (node_shape(g, dy), node_shape(g, x));
    if from == to && scale == 1.0 {
        return Ok(dy);
    }
    let pad = from.rank() - to.rank();
    let axes = (0..from.rank()).filter(|&i| i < pad || (to.dims()[i - pad] == 1 && from.dims()[i] != 1)).collect();
    let summed = g.push(Op::Sum(Reduce { axes, keepdims: true, scale }), &[dy])?;
    if node_shape(g, summed) == to { Ok(summed) } else { g.reshape(summed, to) }
}
