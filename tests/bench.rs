//! The benchmark workloads compute what their names say.

mod common;

use kiln::core::{Conv2d, Op};
use kiln::graph::{Executor, Value};

#[test]
fn a_convolution_workload_with_backward_runs_the_forward_pass_too() {
    let c = Conv2d { padding: [1, 1], ..Conv2d::default() };
    let (g, outputs) = kiln::bench::conv_graph([2, 3, 5, 5], [4, 3, 3, 3], c, true, true).expect("graph");
    let mut exec = Executor::compile(common::gpu(), &g, &outputs).expect("compile");
    for (i, node) in g.nodes().iter().enumerate() {
        if node.op == Op::Input {
            exec.set(Value(i), &common::t(node.shape.dims(), i as u64)).expect("input");
        }
    }
    let step = exec.profile().expect("profile");
    let ran = |op: &str| step.dispatches.iter().any(|d| g.nodes()[d.node].op.name() == op);
    for op in ["conv2d", "conv2d_backward_input", "conv2d_backward_weight", "sum"] {
        assert!(ran(op), "{op} did not run: {:?}", step.dispatches.iter().map(|d| &d.label).collect::<Vec<_>>());
    }
}
