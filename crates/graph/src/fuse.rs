//! Fusion: a graph rewrite run as a program is compiled, after differentiation, that merges
//! kernels without changing a single value. Node indices are kept, so the caller's values name
//! the same tensors; values the caller reads are never fused away. `KILN_FUSE=off` compiles
//! every node as written.
//! - A convolution whose only uses are the ReLU after it and that ReLU's gradient becomes one
//!   `conv2d_relu` node computing the ReLU's value; the ReLU becomes a view of it, and the
//!   gradient reads it where it read the convolution (ReLU's gradient passes dy exactly where
//!   its input is positive, which is where its output is).
//! - A product plus a bias per column (a linear layer) becomes one `linear` node, and with the
//!   ReLU after it, as above, `linear_relu`; the product is then unused and pruned.
//! - A ReLU's gradient at `x` of a pooling's gradient at the same `x`, used by nothing else,
//!   becomes one `pool2d_backward_relu` node; the pooling's gradient is then unused and pruned.
//! - A ReLU's gradient of a product used by nothing else (the gradient flowing back through a
//!   linear layer into the ReLU before it) becomes one `matmul_relu_backward` node; the product
//!   is then unused and pruned.

use kiln_core::{Activation, Error, Op, Result};

use crate::{Graph, Value};

/// Whether programs fuse, from `KILN_FUSE` (`on`, the default, or `off`).
pub fn fusion_enabled() -> Result<bool> {
    match std::env::var("KILN_FUSE") {
        Err(_) => Ok(true),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" | "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(Error::Unsupported(format!(
                "KILN_FUSE={value}: expected on (the default: fuse kernels) or off (every node its own kernel)"
            ))),
        },
    }
}

/// `graph` with its fusible pairs fused; `outputs` (values the caller reads) are never fused
/// away.
pub fn fuse(graph: &Graph, outputs: &[Value]) -> Graph {
    let nodes = graph.nodes();
    let mut uses: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for input in &node.inputs {
            uses[input.0].push(i);
        }
    }
    let read = |v: usize| outputs.contains(&Value(v));
    let mut fused = graph.clone();
    // A producer whose only uses are one ReLU and that ReLU's gradients (reading it as x): the
    // ReLU, which then becomes a view of the producer.
    let sole_relu = |i: usize| {
        let relu = Op::Activation(Activation::Relu);
        let relus: Vec<usize> = uses[i].iter().copied().filter(|&u| nodes[u].op == relu).collect();
        let gradient_reads_x =
            |u: usize| nodes[u].op == Op::ActivationBackward(Activation::Relu) && nodes[u].inputs[1] != Value(i);
        let others = uses[i].iter().filter(|&&u| nodes[u].op != relu && !gradient_reads_x(u)).count();
        (relus.len() == 1 && others == 0 && !read(i)).then(|| relus[0])
    };
    let to_view = |fused: &mut Graph, relu: usize, of: usize| {
        fused.replace(Value(relu), Op::Reshape(nodes[relu].shape.clone()), vec![Value(of)]);
    };
    // y = x·w + b, the product used by nothing else, b one value per column: the product's
    // attributes and the fused node's inputs.
    let linear = |i: usize| {
        let node = &nodes[i];
        if node.op != Op::Add {
            return None;
        }
        let (product, bias) = (node.inputs[0], node.inputs[1]);
        let Op::MatMul(matmul) = nodes[product.0].op else { return None };
        let shape = &nodes[product.0].shape;
        let per_column = shape.rank() == 2 && nodes[bias.0].shape.dims() == [shape.dims()[1]];
        let sole_use = uses[product.0].len() == 1 && !read(product.0);
        (per_column && node.shape == *shape && sole_use)
            .then(|| (matmul, [nodes[product.0].inputs.as_slice(), &[bias]].concat()))
    };
    for (i, node) in nodes.iter().enumerate() {
        if let Op::Conv2d(conv) = node.op
            && let Some(relu) = sole_relu(i)
        {
            fused.replace(Value(i), Op::Conv2dRelu(conv), node.inputs.clone());
            to_view(&mut fused, relu, i);
        }
        if let Some((matmul, inputs)) = linear(i) {
            let relu = sole_relu(i);
            fused.replace(Value(i), Op::Linear { matmul, relu: relu.is_some() }, inputs);
            if let Some(relu) = relu {
                to_view(&mut fused, relu, i);
            }
        }
    }
    // The same tensor seen through views of its own shape (a fused ReLU among them).
    let same = |graph: &Graph, mut v: Value| {
        while let Op::Reshape(shape) = &graph.node(v).op
            && shape == graph.shape(graph.node(v).inputs[0])
        {
            v = graph.node(v).inputs[0];
        }
        v
    };
    for (i, node) in nodes.iter().enumerate() {
        if node.op != Op::ActivationBackward(Activation::Relu) {
            continue;
        }
        let (x, gradient) = (node.inputs[0], node.inputs[1]);
        if uses[gradient.0].len() != 1 || read(gradient.0) {
            continue;
        }
        let producer = &nodes[gradient.0];
        if let Op::Pool2dBackward(pool) = producer.op
            && same(&fused, producer.inputs[0]) == same(&fused, x)
        {
            fused.replace(Value(i), Op::Pool2dBackwardRelu(pool), producer.inputs.clone());
        } else if let Op::MatMul(matmul) = producer.op {
            let inputs = vec![producer.inputs[0], producer.inputs[1], x];
            fused.replace(Value(i), Op::MatMulReluBackward(matmul), inputs);
        }
    }
    fused
}
