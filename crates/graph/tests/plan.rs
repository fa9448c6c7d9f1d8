//! The memory plan: buffers are reused once their last reader has run, reshapes share their
//! input's buffer, pinned outputs survive to the end, and in-place updates own no buffer.

use kiln_core::{DType, Sgd};
use kiln_graph::{Graph, MemoryPlan, grad};

#[test]
fn a_chain_reuses_dead_buffers() {
    let mut g = Graph::new();
    let x = g.input("x", vec![64], DType::F32);
    let a = g.relu(x).expect("relu");
    let b = g.tanh(a).expect("tanh");
    let c = g.sigmoid(b).expect("sigmoid");
    let d = g.relu(c).expect("relu");
    let plan = MemoryPlan::new(&g, &[d]);
    // a dies once b is computed, so c can take its buffer; b's is free again for d.
    assert_eq!(plan.storage[c.0], plan.storage[a.0]);
    assert_eq!(plan.storage[d.0], plan.storage[b.0]);
    assert_eq!(plan.sizes.len(), 3, "x plus two ping-pong buffers: {plan:?}");
    assert_eq!(plan.peak_step_bytes, 2 * 256);
}

#[test]
fn reshape_aliases_and_pinned_values_survive() {
    let mut g = Graph::new();
    let x = g.input("x", vec![4, 4], DType::F32);
    let a = g.relu(x).expect("relu");
    let flat = g.reshape(a, vec![16]).expect("reshape");
    let b = g.tanh(flat).expect("tanh");
    let c = g.sigmoid(b).expect("sigmoid");
    let plan = MemoryPlan::new(&g, &[a, c]);
    assert_eq!(plan.storage[flat.0], plan.storage[a.0]);
    assert_ne!(plan.storage[c.0], plan.storage[a.0], "a is pinned, so c must not overwrite it");
}

#[test]
fn updates_write_their_variables_in_place() {
    let mut g = Graph::new();
    let x = g.input("x", vec![3], DType::F32);
    let w = g.variable("w", vec![3]);
    let buf = g.variable("w.momentum_buf", vec![3]);
    let y = g.mul(x, w).expect("mul");
    let loss = g.sum(y, &[0], false).expect("sum");
    let dw = grad(&mut g, loss, &[w]).expect("grad")[0];
    let step = g.sgd_step(w, dw, buf, Sgd::new(0.1, 0.0, 0.0)).expect("step");
    let plan = MemoryPlan::new(&g, &[loss]);
    assert_eq!(plan.storage[step.0], None);
    assert_eq!(plan.persistent_bytes, 4 * (3 + 3 + 3 + 1), "x, w, buf and the gradient seed");
}
