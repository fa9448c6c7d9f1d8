//! The memory plan: buffers are reused once their last reader has run, reshapes share their
//! input's buffer, pinned outputs survive to the end, and in-place updates own no buffer.

use kiln_core::{DType, ScratchRequest, Sgd};
use kiln_graph::{Graph, MemoryPlan, Slot, grad};

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
    assert_eq!(plan.storage[w.0], Some(Slot::Store("w".into())), "variables live in the parameter store");
    assert_eq!(plan.input_bytes, 4 * 3, "x alone: w, buf and the gradient seed are the store's");
}

#[test]
fn kernel_scratch_is_shared_between_kernels_never_live_at_once() {
    let mut g = Graph::new();
    let x = g.input("x", vec![64], DType::F32);
    let a = g.relu(x).expect("relu");
    let b = g.tanh(a).expect("tanh");
    let c = g.sigmoid(b).expect("sigmoid");
    // Nodes a and c each ask for 1000 bytes of scratch, b for 24: live only while each runs.
    let mut scratch = vec![vec![]; g.nodes().len()];
    scratch[a.0] = vec![ScratchRequest::own(1000)];
    scratch[b.0] = vec![ScratchRequest::own(24)];
    scratch[c.0] = vec![ScratchRequest::own(1000)];
    let plan = MemoryPlan::with_scratch(&g, &[c], &scratch, &|bytes| bytes);
    assert_eq!(plan.scratch[a.0], plan.scratch[b.0], "a's scratch is free again when b runs");
    assert_eq!(plan.scratch[a.0], plan.scratch[c.0]);
    let values = [a, b, c].map(|v| plan.storage[v.0].clone());
    assert!(values.iter().all(|v| *v != Some(Slot::Buffer(plan.scratch[a.0][0]))), "scratch never holds a value");
    assert_eq!(plan.peak_step_bytes, 1000 + 256 + 256, "a's input and value beside its scratch");
    let total: u64 = plan.sizes.iter().sum();
    assert_eq!(total, plan.program_bytes);
    assert_eq!(total, 256 + 1000 + 256 + 256, "x, one scratch buffer and two value buffers: {plan:?}");
}

#[test]
fn a_gradient_assigned_to_a_variable_is_computed_straight_into_it() {
    let mut g = Graph::new();
    let x = g.input("x", vec![3], DType::F32);
    let w = g.variable("w", vec![3]);
    let y = g.mul(x, w).expect("mul");
    let loss = g.sum(y, &[0], false).expect("sum");
    let dw = grad(&mut g, loss, &[w]).expect("grad")[0];
    let slot = g.variable("w.grad", vec![3]);
    let assign = g.assign(slot, dw).expect("assign");
    let plan = MemoryPlan::new(&g, &[loss]);
    assert!(plan.elided[assign.0], "no copy kernel");
    assert_eq!(plan.storage[dw.0], Some(Slot::Store("w.grad".into())));

    // Accumulating reads the variable before writing it: the sum goes to a buffer, then a copy.
    let mut g = Graph::new();
    let x = g.input("x", vec![3], DType::F32);
    let acc = g.variable("acc", vec![3]);
    let sum = g.add(acc, x).expect("add");
    let assign = g.assign(acc, sum).expect("assign");
    let plan = MemoryPlan::new(&g, &[]);
    assert!(!plan.elided[assign.0]);
    assert!(matches!(plan.storage[sum.0], Some(Slot::Buffer(_))));
}

#[test]
fn scratch_derived_from_one_value_is_filled_once_and_shared_while_that_value_is_unchanged() {
    let mut g = Graph::new();
    let w = g.variable("w", vec![64]);
    let a = g.relu(w).expect("relu");
    let b = g.tanh(a).expect("tanh");
    let c = g.sigmoid(w).expect("sigmoid");
    let d = g.add(b, c).expect("add");
    let e = g.assign(w, d).expect("assign");
    let f = g.relu(w).expect("relu");
    let columns = |input: usize, key: &str| ScratchRequest::derived(1000, input, key.into());
    let mut scratch = vec![vec![]; g.nodes().len()];
    // a, c and f gather the same function of w; b the same key of another value; d another key
    // of w. The assignment e changes w between c and f.
    scratch[a.0] = vec![ScratchRequest::own(24), columns(0, "cols")];
    scratch[b.0] = vec![columns(0, "cols")];
    scratch[c.0] = vec![columns(0, "cols")];
    scratch[d.0] = vec![columns(0, "other")];
    // f also names an input it lacks: that request is its own buffer.
    scratch[f.0] = vec![columns(0, "cols"), columns(5, "cols")];
    let plan = MemoryPlan::with_scratch(&g, &[f, e], &scratch, &|bytes| bytes);
    assert_eq!(plan.scratch[c.0][0], plan.scratch[a.0][1], "c reads what a gathered: {plan:?}");
    assert_eq!(plan.scratch_filled[a.0], [false, false]);
    assert_eq!(plan.scratch_filled[c.0], [true]);
    for (node, what) in [(b, "another value"), (d, "another key")] {
        assert_eq!(plan.scratch_filled[node.0], [false], "{what}");
    }
    assert_eq!(plan.scratch_filled[f.0], [false, false], "w after the assignment, and no input 5");
    assert_ne!(plan.scratch[b.0][0], plan.scratch[a.0][1], "b must not overwrite a's gather before c reads it");
}
