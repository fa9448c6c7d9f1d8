//! The divergence finder: runs a whole graph (forward, backward, updates) on a backend and on
//! the f64 CPU interpreter side by side, and reports the first node whose value differs
//! beyond a tolerance: the tool for finding which kernel of a model is wrong.

use std::collections::HashMap;

use kiln_core::{Backend, HostTensor, Result, Shape};
use kiln_cpu::{Tensor, interpret};
use kiln_graph::{Executor, Graph, Value};

/// One node's comparison.
#[derive(Clone, Debug)]
pub struct NodeError {
    pub node: usize,
    pub op: &'static str,
    pub shape: Shape,
    /// `‖got - want‖₂ / max(‖want‖₂, 1e-6)`, or infinity where got is not finite and want is.
    pub error: f64,
}

/// What a side-by-side run found.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// Every compared node, in the order their values became final (a variable's is its last
    /// in-place update).
    pub nodes: Vec<NodeError>,
    /// Index into `nodes` of the first beyond the tolerance.
    pub first: Option<usize>,
}

/// Runs `graph` once on `backend` with every value kept, and once in f64 on the interpreter,
/// from the same `feeds`; compares every node that owns a value.
pub fn find_divergence<B: Backend>(
    backend: B,
    graph: &Graph,
    feeds: &HashMap<Value, HostTensor>,
    tolerance: f64,
) -> Result<Divergence> {
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(kiln_core::Error::attribute(
            "divergence",
            format!("tolerance {tolerance} is not a finite number >= 0"),
        ));
    }
    let mut final_at: Vec<usize> = (0..graph.nodes().len()).collect();
    for (i, node) in graph.nodes().iter().enumerate() {
        for &slot in node.op.updated_inputs() {
            final_at[node.inputs[slot].0] = i;
        }
    }
    let mut compared: Vec<Value> =
        (0..graph.nodes().len()).map(Value).filter(|&v| graph.node(v).op.updated_inputs().is_empty()).collect();
    compared.sort_by_key(|v| final_at[v.0]);

    let mut exec = Executor::compile(backend, graph, &compared)?;
    for (&v, t) in feeds {
        exec.set(v, t)?;
    }
    let got = exec.run(&compared)?;
    let reference_feeds = feeds.iter().map(|(&v, t)| (v, Tensor::from_host(t))).collect();
    let want = interpret(graph, &reference_feeds)?;
    let nodes: Vec<NodeError> = compared
        .iter()
        .zip(&got)
        .map(|(&v, got)| NodeError {
            node: v.0,
            op: graph.node(v).op.name(),
            shape: graph.shape(v).clone(),
            error: relative_error(&Tensor::from_host(got).data, &want[v.0].data),
        })
        .collect();
    let first = nodes.iter().position(|n| n.error.is_nan() || n.error > tolerance);
    Ok(Divergence { nodes, first })
}

fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    if got.iter().zip(want).any(|(g, w)| !g.is_finite() && w.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = got.iter().zip(want).filter(|(g, w)| g != w).map(|(g, w)| (g - w).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().filter(|w| w.is_finite()).map(|w| w * w).sum::<f64>().sqrt();
    diff / norm.max(1e-6)
}

/// A model's training graph (forward, backward and Adam updates) at a small batch, with
/// seeded random inputs, for `kiln check --graph`.
pub fn sample_training_graph(model: &str, seed: u64) -> Result<(Graph, HashMap<Value, HostTensor>)> {
    use kiln_nn::{Optimizer, ParamGroup, cnn, minimize, mlp};
    let batch = 2;
    let mut classifier = match model {
        "mlp" => mlp(batch, &[784, 100, 10], seed)?,
        "cnn" => cnn(batch, 28, seed)?,
        other => {
            return Err(kiln_core::Error::Unsupported(format!("--graph {other}: the sample models are mlp and cnn")));
        }
    };
    let group =
        ParamGroup { params: classifier.params.clone(), optimizer: Optimizer::Adam(kiln_core::Adam::new(1e-3)) };
    minimize(&mut classifier.graph, classifier.loss, &[group], None)?;
    let pixels = classifier.graph.shape(classifier.images).clone();
    let images = (0..pixels.numel()).map(|i| ((i as u64 * 2_654_435_761 + seed) % 256) as f32 / 255.0).collect();
    let labels = (0..batch).map(|i| ((i as u64 * 7 + seed) % 10) as i32).collect();
    let feeds = HashMap::from([
        (classifier.images, HostTensor::f32(pixels, images)?),
        (classifier.labels, HostTensor::i32(vec![batch], labels)?),
    ]);
    Ok((classifier.graph, feeds))
}
