//! Every backward rule against central differences on the CPU path: for a random projection r,
//! the autodiff gradient of L = Σ r·f(x) must match (L(x + h·e_i) - L(x - h·e_i)) / 2h.
//! The kernels accumulate in f64; the differences are taken in f64 from f32 evaluations, so
//! h is large enough (1e-2) that f32 rounding stays far below the tolerance.

mod common;

use kiln::core::{DType, HostTensor, MatMul, Op, Result};
use kiln::cpu::Cpu;
use kiln::graph::{Executor, Graph, Value, grad};

const H: f32 = 1e-2;

/// Checks the gradient of `build` w.r.t. every f32 input; values are kept away from 0 so kinks
/// (relu) are not straddled.
fn gradcheck(name: &str, inputs: &[HostTensor], build: impl Fn(&mut Graph, &[Value]) -> Result<Value>) {
    let mut g = Graph::new();
    let values: Vec<Value> =
        inputs.iter().enumerate().map(|(i, t)| g.input(&format!("x{i}"), t.shape.clone(), t.dtype())).collect();
    let out = build(&mut g, &values).expect("builds");
    let projection = g.input("r", g.shape(out).clone(), DType::F32);
    let weighted = g.mul(out, projection).expect("mul");
    let axes: Vec<i64> = (0..g.shape(weighted).rank() as i64).collect();
    let loss = if axes.is_empty() { weighted } else { g.sum(weighted, &axes, false).expect("sum") };
    let wrt: Vec<Value> = values.iter().zip(inputs).filter(|(_, t)| t.dtype() == DType::F32).map(|(v, _)| *v).collect();
    let grads = grad(&mut g, loss, &wrt).expect("grad");
    let mut exec = Executor::compile(Cpu, &g, &[[loss].as_slice(), &grads].concat()).expect("compile");
    let r = HostTensor::f32(g.shape(out).clone(), common::random_vec(g.shape(out).numel(), 99)).expect("r");
    exec.set(projection, &r).expect("r");
    for (v, t) in values.iter().zip(inputs) {
        exec.set(*v, t).expect("input");
    }
    let analytic = exec.run(&grads).expect("run");
    for (k, (&v, got)) in wrt.iter().zip(&analytic).enumerate() {
        let x = inputs[v.0].as_f32().expect("f32").to_vec();
        let numeric: Vec<f32> = (0..x.len())
            .map(|i| {
                let mut at = |delta: f32| {
                    let mut moved = x.clone();
                    moved[i] += delta;
                    exec.set(v, &HostTensor::f32(inputs[v.0].shape.clone(), moved).expect("t")).expect("set");
                    exec.run(&[loss]).expect("run")[0].as_f32().expect("f32")[0] as f64
                };
                ((at(H) - at(-H)) / (2.0 * H as f64)) as f32
            })
            .collect();
        exec.set(v, &inputs[v.0]).expect("restore");
        let error = common::relative_error(got.as_f32().expect("f32"), &numeric);
        assert!(
            error < 2e-3,
            "{name}: gradient of input {k} off by {error:.2e}\nautodiff {got:?}\nnumeric {numeric:?}"
        );
    }
}

fn t(shape: &[usize], seed: u64) -> HostTensor {
    let data = common::random_vec(shape.iter().product(), seed).iter().map(|&v| v.signum() * (0.2 + v.abs())).collect();
    HostTensor::f32(shape.to_vec(), data).expect("tensor")
}

#[test]
fn matmul_in_every_layout() {
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let m = MatMul { trans_a, trans_b };
        let a = if trans_a { t(&[4, 3], 1) } else { t(&[3, 4], 1) };
        let b = if trans_b { t(&[5, 4], 2) } else { t(&[4, 5], 2) };
        gradcheck(&format!("matmul {m:?}"), &[a, b], |g, x| g.matmul_with(x[0], x[1], m));
    }
}

#[test]
fn batched_matmul_with_a_shared_operand() {
    gradcheck("batched", &[t(&[2, 3, 4], 1), t(&[2, 4, 2], 2)], |g, x| g.matmul(x[0], x[1]));
    gradcheck("shared b", &[t(&[2, 3, 4], 1), t(&[4, 2], 2)], |g, x| g.matmul(x[0], x[1]));
    gradcheck("shared a", &[t(&[3, 4], 1), t(&[2, 4, 2], 2)], |g, x| g.matmul(x[0], x[1]));
}

#[test]
fn linear() {
    gradcheck("linear", &[t(&[3, 5], 1), t(&[4, 5], 2), t(&[4], 3)], |g, x| g.linear(x[0], x[1], x[2]));
}

#[test]
fn broadcasting_binary_ops() {
    let pairs = [(vec![3, 4], vec![3, 4]), (vec![2, 3, 4], vec![4]), (vec![3, 1], vec![1, 4]), (vec![], vec![2, 3])];
    for (sa, sb) in pairs {
        let inputs = [t(&sa, 1), t(&sb, 2)];
        gradcheck("add", &inputs, |g, x| g.add(x[0], x[1]));
        gradcheck("sub", &inputs, |g, x| g.sub(x[0], x[1]));
        gradcheck("mul", &inputs, |g, x| g.mul(x[0], x[1]));
        gradcheck("div", &inputs, |g, x| g.div(x[0], x[1]));
    }
}

#[test]
fn activations() {
    let x = [t(&[3, 5], 4)];
    gradcheck("relu", &x, |g, x| g.relu(x[0]));
    gradcheck("sigmoid", &x, |g, x| g.sigmoid(x[0]));
    gradcheck("tanh", &x, |g, x| g.tanh(x[0]));
}

#[test]
fn reductions_and_broadcast() {
    let x = [t(&[2, 3, 4], 5)];
    gradcheck("sum axis 1", &x, |g, x| g.sum(x[0], &[1], false));
    gradcheck("sum keepdims", &x, |g, x| g.sum(x[0], &[0, 2], true));
    gradcheck("mean all", &x, |g, x| g.mean(x[0], &[0, 1, 2], false));
    gradcheck("broadcast_to", &[t(&[2, 1, 4], 6)], |g, x| {
        g.push(Op::BroadcastTo { shape: vec![2, 3, 4].into(), scale: 0.5 }, &[x[0]])
    });
}

#[test]
fn layout_ops() {
    let x = [t(&[2, 3, 4], 7)];
    gradcheck("reshape", &x, |g, x| g.reshape(x[0], vec![6, 4]));
    gradcheck("transpose", &x, |g, x| g.transpose(x[0], &[2, 0, 1]));
}

#[test]
fn softmax_family() {
    let x = [t(&[3, 4, 5], 8)];
    for axis in [0, 1, -1] {
        gradcheck("softmax", &x, |g, x| g.softmax(x[0], axis));
        gradcheck("log_softmax", &x, |g, x| g.log_softmax(x[0], axis));
    }
}

#[test]
fn losses() {
    let labels = HostTensor::i32(vec![4], vec![0, 2, 1, 2]).expect("labels");
    gradcheck("cross_entropy", &[t(&[4, 3], 9), labels], |g, x| g.cross_entropy(x[0], x[1]));
    gradcheck("mse_loss", &[t(&[3, 4], 10), t(&[3, 4], 11)], |g, x| g.mse_loss(x[0], x[1]));
}
