use std::collections::HashMap;

use kiln_core::{Error, Result, Role};
use kiln_graph::{Graph, Value};

use crate::Tensor;

/// Runs every node of `graph` once in f64, with no rounding between ops, and returns each
/// node's value. Inputs come from `feeds`; variables from `feeds` when given, else their
/// initial contents (zeros when none). An in-place update overwrites its variables, and its
/// own value is the updated first input.
pub fn interpret(graph: &Graph, feeds: &HashMap<Value, Tensor>) -> Result<Vec<Tensor>> {
    let mut values: Vec<Tensor> = Vec::with_capacity(graph.nodes().len());
    for (i, node) in graph.nodes().iter().enumerate() {
        let value = match node.op.role() {
            Role::Input => feeds.get(&Value(i)).cloned().ok_or_else(|| {
                Error::attribute("interpret", format!("input `{}` (node {i}) was not fed", node.name))
            })?,
            Role::Variable => match (feeds.get(&Value(i)), &node.init) {
                (Some(t), _) => t.clone(),
                (None, Some(init)) => Tensor::from_host(init),
                (None, None) => Tensor::zeros(node.shape.clone()),
            },
            Role::View | Role::Kernel => {
                let op = &node.op;
                let inputs: Vec<&Tensor> = node.inputs.iter().map(|v| &values[v.0]).collect();
                let mut results = crate::eval(op, &inputs)?;
                for (&slot, result) in op.updated_inputs().iter().zip(&results) {
                    values[node.inputs[slot].0] = result.clone();
                }
                results.swap_remove(0)
            }
        };
        values.push(value);
    }
    Ok(values)
}
