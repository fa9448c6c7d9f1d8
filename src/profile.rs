//! `kiln profile`: a model's training step with every dispatch timed, as a table per kernel
//! (graph node, phase, calls, time, FLOPs, bytes, achieved rates, share of the step) and as a
//! Chrome trace (chrome://tracing or ui.perfetto.dev).

use std::collections::BTreeMap;

use kiln_core::{Backend, Op, Result, Shape};
use kiln_graph::{Executor, Graph, StepProfile};

/// One row of the table: one graph node, over every profiled step.
#[derive(Clone, Debug)]
pub struct Row {
    pub node: usize,
    pub op: &'static str,
    /// The entry points its dispatches ran, joined by `+`.
    pub kernels: String,
    pub phase: &'static str,
    pub calls: usize,
    pub total_us: f64,
    pub median_us: f64,
    pub flops: u64,
    pub bytes: u64,
    pub shapes: String,
}

/// Forward before `backward_from`, then backward, and in-place updates as the optimizer.
fn phase(graph: &Graph, node: usize, backward_from: usize) -> &'static str {
    if !graph.nodes()[node].op.updated_inputs().is_empty() {
        "optimizer"
    } else if node >= backward_from {
        "backward"
    } else {
        "forward"
    }
}

/// Floating-point operations of a node: multiply-adds of products and convolutions counted
/// twice, everything else one per output element.
fn flops(op: &Op, inputs: &[&Shape], out: &Shape) -> u64 {
    let n = out.numel() as u64;
    match op {
        Op::MatMul(m) | Op::Linear { matmul: m, .. } | Op::MatMulReluBackward(m) => {
            let a = inputs[0].dims();
            let k = if m.trans_a { a[a.len() - 2] } else { a[a.len() - 1] };
            2 * n * k as u64
        }
        Op::Conv2d(c) | Op::Conv2dRelu(c) | Op::ConvTranspose2d { conv: c, .. } => {
            let w = inputs[1].dims();
            let per_output = if matches!(op, Op::Conv2d(_) | Op::Conv2dRelu(_)) {
                w[1] * w[2] * w[3]
            } else {
                w[0] / c.groups * w[2] * w[3]
            };
            2 * n * per_output as u64
        }
        Op::Conv2dBackwardInput { .. } => {
            2 * inputs[0].numel() as u64 * (inputs[1].numel() / inputs[1].dims()[0]) as u64
        }
        Op::Conv2dBackwardWeight { .. } => 2 * inputs[1].numel() as u64 * (n / out.dims()[0] as u64),
        Op::Input
        | Op::Variable
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Activation(_)
        | Op::ActivationBackward(_)
        | Op::Prelu
        | Op::PreluBackwardInput
        | Op::PreluBackwardAlpha
        | Op::Sum(_)
        | Op::Max(_)
        | Op::MaxBackward(_)
        | Op::BroadcastTo { .. }
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Slice { .. }
        | Op::SliceBackward { .. }
        | Op::Concat { .. }
        | Op::Softmax { .. }
        | Op::SoftmaxBackward { .. }
        | Op::LogSoftmax { .. }
        | Op::LogSoftmaxBackward { .. }
        | Op::CrossEntropyPerSample
        | Op::CrossEntropyPerSampleBackward
        | Op::NllPerSample
        | Op::NllPerSampleBackward
        | Op::Loss(_)
        | Op::LossBackward { .. }
        | Op::Pool2d(_)
        | Op::Pool2dBackward(_)
        | Op::Pool2dBackwardRelu(_)
        | Op::BatchNormStats
        | Op::BatchNorm { .. }
        | Op::BatchNormBackwardReduce { .. }
        | Op::BatchNormBackwardInput { .. }
        | Op::BatchNormRunningUpdate { .. }
        | Op::LayerNormStats
        | Op::LayerNorm { .. }
        | Op::LayerNormBackwardInput { .. }
        | Op::LayerNormBackwardParams { .. }
        | Op::Dropout(_)
        | Op::DropoutBackward(_)
        | Op::RandomNormal { .. }
        | Op::Embedding
        | Op::EmbeddingBackward { .. }
        | Op::ClipFactor { .. }
        | Op::RoundHalf
        | Op::LossScaleFactor { .. }
        | Op::LossScaleUpdate(_)
        | Op::SgdStep(_)
        | Op::AdamStep(_)
        | Op::AdagradStep(_)
        | Op::RmspropStep(_)
        | Op::Assign => n,
    }
}

/// Aggregates `steps` into one row per node.
pub fn table(graph: &Graph, steps: &[StepProfile], backward_from: usize) -> Vec<Row> {
    let mut per_node: BTreeMap<usize, (Vec<String>, Vec<f64>)> = BTreeMap::new();
    for step in steps {
        let mut this_step: BTreeMap<usize, f64> = BTreeMap::new();
        for d in &step.dispatches {
            *this_step.entry(d.node).or_default() += d.seconds;
            let labels = &mut per_node.entry(d.node).or_default().0;
            if !labels.contains(&d.label) {
                labels.push(d.label.clone());
            }
        }
        for (node, seconds) in this_step {
            per_node.entry(node).or_default().1.push(seconds);
        }
    }
    per_node
        .into_iter()
        .map(|(node, (labels, mut times))| {
            times.sort_by(f64::total_cmp);
            let n = &graph.nodes()[node];
            let inputs: Vec<&Shape> = n.inputs.iter().map(|v| graph.shape(*v)).collect();
            let bytes = inputs.iter().map(|s| s.bytes()).sum::<u64>() + n.shape.bytes();
            let shapes = inputs.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ");
            Row {
                node,
                op: n.op.name(),
                kernels: labels.join("+"),
                phase: phase(graph, node, backward_from),
                calls: times.len(),
                total_us: times.iter().sum::<f64>() * 1e6,
                median_us: times[times.len() / 2] * 1e6,
                flops: flops(&n.op, &inputs, &n.shape),
                bytes,
                shapes: format!("{shapes} -> {}", n.shape),
            }
        })
        .collect()
}

/// Profiles `steps` runs of a compiled graph after one warm-up run.
pub fn profile_steps<B: Backend>(exec: &mut Executor<B>, steps: usize) -> Result<Vec<StepProfile>> {
    exec.run(&[])?;
    (0..steps).map(|_| exec.profile()).collect()
}

/// The table as text, slowest first.
pub fn render(rows: &[Row], steps: &[StepProfile]) -> String {
    let step_us: f64 = rows.iter().map(|r| r.median_us).sum();
    let wall_us = steps.iter().map(|s| s.wall_seconds).sum::<f64>() / steps.len().max(1) as f64 * 1e6;
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| b.median_us.total_cmp(&a.median_us));
    let mut out = format!(
        "{:>5} {:<28} {:<9} {:>5} {:>11} {:>11} {:>10} {:>10} {:>8} {:>8} {:>6}  kernels; shapes\n",
        "node", "op", "phase", "calls", "total µs", "median µs", "MFLOP", "MB", "GFLOP/s", "GB/s", "share"
    );
    for r in sorted {
        let seconds = r.median_us * 1e-6;
        out += &format!(
            "{:>5} {:<28} {:<9} {:>5} {:>11.0} {:>11.0} {:>10.2} {:>10.2} {:>8.2} {:>8.2} {:>5.1}%  {}; {}\n",
            r.node,
            r.op,
            r.phase,
            r.calls,
            r.total_us,
            r.median_us,
            r.flops as f64 / 1e6,
            r.bytes as f64 / 1e6,
            r.flops as f64 / seconds.max(1e-12) / 1e9,
            r.bytes as f64 / seconds.max(1e-12) / 1e9,
            100.0 * r.median_us / step_us.max(1e-12),
            r.kernels,
            r.shapes
        );
    }
    let timer = steps.first().map_or("", |s| s.timer.as_str());
    let dispatches = steps.first().map_or(0, |s| s.dispatches.len());
    out + &format!(
        "{} kernels, {dispatches} dispatches per step; kernels sum to {step_us:.0} µs per step; the step took \
         {wall_us:.0} µs of wall time; timer: {timer}\n",
        rows.len()
    )
}

/// A Chrome trace: one track per queue (the one compute queue), one slice per dispatch laid
/// end to end in submission order within each step's slice, with the node, op and shapes as
/// arguments.
pub fn chrome_trace(graph: &Graph, steps: &[StepProfile]) -> serde_json::Value {
    let mut events = vec![
        serde_json::json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "compute queue"}}),
    ];
    let mut at_us = 0.0;
    for (i, step) in steps.iter().enumerate() {
        let total: f64 = step.dispatches.iter().map(|d| d.seconds * 1e6).sum();
        events.push(serde_json::json!({"name": format!("step {i}"), "ph": "X", "pid": 1, "tid": 1, "ts": at_us, "dur": total, "cat": "step"}));
        let mut t = at_us;
        for d in &step.dispatches {
            let node = &graph.nodes()[d.node];
            let shapes: Vec<String> = node.inputs.iter().map(|v| graph.shape(*v).to_string()).collect();
            events.push(serde_json::json!({
                "name": d.label, "ph": "X", "pid": 1, "tid": 1, "ts": t, "dur": d.seconds * 1e6, "cat": "dispatch",
                "args": {"node": d.node, "op": d.op, "inputs": shapes, "output": node.shape.to_string()},
            }));
            t += d.seconds * 1e6;
        }
        at_us += total;
    }
    serde_json::json!({"traceEvents": events, "displayTimeUnit": "ms"})
}
