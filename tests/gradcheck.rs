//! Every backward rule against float64 central differences: the whole graph runs in f64 on the
//! CPU reference interpreter, and for a random projection r the autodiff gradient of
//! L = Σ r·f(x) must match (L(x + h·e_i) - L(x - h·e_i)) / 2h with h = 1e-6. Inputs keep away
//! from kinks (relu at 0, ties in max and pooling, the corners of l1/huber/hinge) by more
//! than h.

mod common;

use std::collections::HashMap;

use kiln::core::{Activation, Adam, Conv2d, DType, HostTensor, LossKind, MatMul, Op, Pool2d, PoolKind, Result, Sgd};
use kiln::cpu::{Tensor, interpret};
use kiln::graph::{Graph, Value, grad};

const H: f64 = 1e-6;

/// Checks the gradient of `build` w.r.t. every f32 input.
fn gradcheck(name: &str, inputs: &[HostTensor], build: impl Fn(&mut Graph, &[Value]) -> Result<Value>) {
    let mut g = Graph::new();
    let values: Vec<Value> =
        inputs.iter().enumerate().map(|(i, t)| g.input(&format!("x{i}"), t.shape.clone(), t.dtype())).collect();
    let out = build(&mut g, &values).expect("builds");
    let projection = g.input("r", g.shape(out).clone(), DType::F32);
    let weighted = g.mul(out, projection).expect("mul");
    let loss = g.sum_all(weighted).expect("sum");
    let wrt: Vec<Value> = values.iter().zip(inputs).filter(|(_, t)| t.dtype() == DType::F32).map(|(v, _)| *v).collect();
    let grads = grad(&mut g, loss, &wrt).expect("grad");
    let r = Tensor::new(
        g.shape(out).clone(),
        common::random_vec(g.shape(out).numel(), 99).iter().map(|&v| v as f64).collect(),
    );
    let mut feeds: HashMap<Value, Tensor> =
        values.iter().zip(inputs).map(|(&v, t)| (v, Tensor::from_host(t))).collect();
    feeds.insert(projection, r.expect("r"));
    let all = interpret(&g, &feeds).expect("runs");
    for (k, (&v, &dv)) in wrt.iter().zip(&grads).enumerate() {
        let analytic = &all[dv.0].data;
        let x = feeds[&v].clone();
        let numeric: Vec<f64> = (0..x.data.len())
            .map(|i| {
                let mut at = |delta: f64| {
                    let mut moved = x.clone();
                    moved.data[i] += delta;
                    feeds.insert(v, moved);
                    interpret(&g, &feeds).expect("runs")[loss.0].data[0]
                };
                (at(H) - at(-H)) / (2.0 * H)
            })
            .collect();
        feeds.insert(v, x);
        let diff: f64 = analytic.iter().zip(&numeric).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = numeric.iter().map(|b| b * b).sum::<f64>().sqrt();
        let error = diff / norm.max(1e-6);
        assert!(
            error < 1e-6,
            "{name}: gradient of input {k} off by {error:.2e}\nautodiff {analytic:?}\nnumeric {numeric:?}"
        );
    }
}

/// Random values of magnitude at least 0.2, away from the kinks at 0.
fn t(shape: &[usize], seed: u64) -> HostTensor {
    let data = common::random_vec(shape.iter().product(), seed).iter().map(|&v| v.signum() * (0.2 + v.abs())).collect();
    HostTensor::f32(shape.to_vec(), data).expect("tensor")
}

/// Distinct values spaced well apart (in shuffled order), so maxima and minima never tie.
fn distinct(shape: &[usize], seed: u64) -> HostTensor {
    let n: usize = shape.iter().product();
    let mut order: Vec<(f32, usize)> = common::random_vec(n, seed).into_iter().zip(0..n).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut data = vec![0.0; n];
    for (rank, (_, i)) in order.into_iter().enumerate() {
        data[i] = (rank as f32 - n as f32 / 2.0) * 0.01;
    }
    HostTensor::f32(shape.to_vec(), data).expect("tensor")
}

fn positive(shape: &[usize], seed: u64, lo: f32, hi: f32) -> HostTensor {
    let data =
        common::random_vec(shape.iter().product(), seed).iter().map(|&v| lo + (hi - lo) * (v + 1.0) / 2.0).collect();
    HostTensor::f32(shape.to_vec(), data).expect("tensor")
}

fn labels(n: usize, classes: usize) -> HostTensor {
    HostTensor::i32(vec![n], (0..n).map(|i| ((i * 7 + 1) % classes) as i32).collect()).expect("labels")
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
    let all = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu { negative_slope: 0.1 },
        Activation::Elu { alpha: 1.3 },
        Activation::Gelu { tanh: false },
        Activation::Gelu { tanh: true },
        Activation::Silu,
        Activation::Softplus,
        Activation::Step,
    ];
    for a in all {
        gradcheck(a.name(), &x, |g, x| g.activation(x[0], a));
    }
    gradcheck("prelu", &[t(&[2, 3, 2, 2], 5), t(&[3], 6)], |g, x| g.prelu(x[0], x[1]));
    gradcheck("prelu rank 2", &[t(&[4, 3], 5), t(&[3], 6)], |g, x| g.prelu(x[0], x[1]));
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
    let d = [distinct(&[3, 4, 5], 7)];
    gradcheck("max axis 1", &d, |g, x| g.max(x[0], &[1], false));
    gradcheck("max keepdims", &d, |g, x| g.max(x[0], &[0, 2], true));
    gradcheck("max all", &d, |g, x| g.max(x[0], &[0, 1, 2], false));
}

#[test]
fn layout_ops() {
    let x = [t(&[2, 3, 4], 7)];
    gradcheck("reshape", &x, |g, x| g.reshape(x[0], vec![6, 4]));
    gradcheck("transpose", &x, |g, x| g.transpose(x[0], &[2, 0, 1]));
    gradcheck("slice middle axis", &x, |g, x| g.slice(x[0], 1, 1, 2));
    gradcheck("slice last axis", &x, |g, x| g.slice(x[0], 2, 3, 1));
    let parts = [t(&[2, 3, 4], 8), t(&[2, 1, 4], 9), t(&[2, 2, 4], 10)];
    gradcheck("concat middle axis", &parts, |g, x| g.concat(x, 1));
    gradcheck("concat first axis", &[t(&[1, 3], 11), t(&[2, 3], 12)], |g, x| g.concat(x, 0));
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
fn class_losses() {
    gradcheck("cross_entropy", &[t(&[4, 3], 9), labels(4, 3)], |g, x| g.cross_entropy(x[0], x[1]));
    gradcheck("nll_loss", &[t(&[5, 4], 9), labels(5, 4)], |g, x| g.nll_loss(x[0], x[1]));
}

#[test]
fn elementwise_losses_for_pred_and_target() {
    // pred and target differ by at least 0.2 (l1, huber), and t·p stays off 1 (hinge).
    let (pred, target) = (t(&[3, 4], 10), positive(&[3, 4], 11, 0.1, 0.15));
    gradcheck("mse_loss", &[pred.clone(), target.clone()], |g, x| g.mse_loss(x[0], x[1]));
    gradcheck("l1_loss", &[pred.clone(), target.clone()], |g, x| g.pointwise_loss(LossKind::L1, x[0], x[1]));
    for delta in [0.05, 0.5, 5.0] {
        let kind = LossKind::Huber { delta };
        gradcheck("huber_loss", &[pred.clone(), target.clone()], |g, x| g.pointwise_loss(kind, x[0], x[1]));
    }
    let probabilities = positive(&[3, 4], 12, 0.05, 0.95);
    let soft = positive(&[3, 4], 13, 0.0, 1.0);
    gradcheck("bce_loss", &[probabilities, soft.clone()], |g, x| g.pointwise_loss(LossKind::Bce, x[0], x[1]));
    gradcheck("bce_with_logits", &[t(&[3, 4], 14), soft], |g, x| g.pointwise_loss(LossKind::BceWithLogits, x[0], x[1]));
    let signs = HostTensor::f32(vec![3, 4], common::random_vec(12, 15).iter().map(|v| v.signum()).collect());
    gradcheck("hinge_loss", &[t(&[3, 4], 16), signs.expect("signs")], |g, x| {
        g.pointwise_loss(LossKind::Hinge, x[0], x[1])
    });
    let q = positive(&[3, 4], 17, 0.05, 1.0);
    gradcheck("kl_div", &[t(&[3, 4], 18), q], |g, x| g.kl_div(x[0], x[1]));
}

fn conv(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize) -> Conv2d {
    Conv2d { stride, padding, dilation, groups }
}

#[test]
fn conv2d_in_every_geometry() {
    let cases = [
        ("3x3 pad 1", [1, 3, 5, 5], [2, 3, 3, 3], conv([1, 1], [1, 1], [1, 1], 1)),
        ("stride 2 rect", [2, 2, 6, 5], [3, 2, 2, 3], conv([2, 1], [0, 1], [1, 1], 1)),
        ("stride past kernel", [1, 2, 7, 7], [2, 2, 2, 2], conv([3, 3], [0, 0], [1, 1], 1)),
        ("dilated", [1, 2, 7, 6], [2, 2, 3, 2], conv([1, 1], [2, 1], [2, 3], 1)),
        ("groups", [1, 4, 4, 4], [6, 2, 3, 3], conv([1, 1], [1, 1], [1, 1], 2)),
        ("depthwise x2", [2, 3, 5, 4], [6, 1, 3, 3], conv([1, 2], [1, 1], [1, 1], 3)),
    ];
    for (name, xs, ws, c) in cases {
        let b = [ws[0]];
        gradcheck(name, &[t(&xs, 1), t(&ws, 2), t(&b, 3)], |g, x| g.conv2d(x[0], x[1], Some(x[2]), c));
        gradcheck(name, &[t(&xs, 1), t(&ws, 2)], |g, x| g.conv2d(x[0], x[1], None, c));
    }
}

#[test]
fn conv_transpose2d_with_output_padding() {
    let cases = [
        ("stride 2", [1, 2, 3, 3], [2, 3, 3, 3], conv([2, 2], [1, 1], [1, 1], 1), [1, 1]),
        ("groups", [2, 4, 3, 2], [4, 1, 2, 2], conv([2, 1], [0, 0], [1, 1], 2), [1, 0]),
        ("padding past stride", [1, 2, 3, 3], [2, 2, 3, 3], conv([1, 1], [0, 0], [2, 2], 1), [1, 1]),
    ];
    for (name, xs, ws, c, op) in cases {
        let o = ws[1] * c.groups;
        gradcheck(name, &[t(&xs, 1), t(&ws, 2), t(&[o], 3)], |g, x| g.conv_transpose2d(x[0], x[1], Some(x[2]), c, op));
    }
}

#[test]
fn pooling_with_overlap_padding_and_gaps() {
    let geometries = [([3, 3], [2, 2], [1, 1]), ([2, 3], [1, 2], [1, 0]), ([2, 2], [3, 3], [0, 0])];
    for (kernel, stride, padding) in geometries {
        for kind in [
            PoolKind::Max,
            PoolKind::Min,
            PoolKind::Avg { count_include_pad: true },
            PoolKind::Avg { count_include_pad: false },
        ] {
            let p = Pool2d { kind, kernel, stride, padding };
            gradcheck(p.name(), &[distinct(&[2, 2, 6, 7], 3)], |g, x| g.pool2d(x[0], p));
        }
        let lp = Pool2d { kind: PoolKind::Lp { p: 2.0 }, kernel, stride, padding: [0, 0] };
        gradcheck("lp_pool2d", &[t(&[1, 2, 6, 7], 4)], |g, x| g.pool2d(x[0], lp));
    }
    gradcheck("global_avg_pool2d", &[t(&[2, 3, 3, 2], 5)], |g, x| g.global_avg_pool2d(x[0]));
}

#[test]
fn normalisation() {
    let affine = |c: usize| [positive(&[c], 20, 0.5, 1.5), t(&[c], 21)];
    for shape in [vec![6, 3], vec![3, 2, 3, 2], vec![2, 3, 1, 1]] {
        let [gamma, beta] = affine(shape[1]);
        let inputs = [t(&shape, 22), gamma, beta];
        gradcheck("batch_norm", &inputs, |g, x| Ok(g.batch_norm(x[0], x[1], x[2], 1e-5)?.0));
        let running = HostTensor::f32(vec![2, shape[1]], [vec![0.3; shape[1]], vec![1.7; shape[1]]].concat());
        let running = running.expect("running statistics");
        gradcheck("batch_norm (eval)", &inputs, |g, x| {
            let stats = g.variable_init("running", running.clone());
            g.batch_norm_eval(x[0], stats, x[1], x[2], 1e-3)
        });
    }
    for shape in [vec![3, 5], vec![2, 2, 4], vec![3, 1]] {
        let d = shape[shape.len() - 1];
        let [gamma, beta] = affine(d);
        gradcheck("layer_norm", &[t(&shape, 23), gamma, beta], |g, x| g.layer_norm(x[0], x[1], x[2], 1e-5));
    }
}

#[test]
fn dropout_embedding_and_clipping() {
    gradcheck("dropout", &[t(&[4, 5], 24)], |g, x| g.dropout(x[0], 0.3, 7, true));
    let ids = HostTensor::i32(vec![2, 3], vec![1, 3, 1, 0, 3, 3]).expect("ids");
    gradcheck("embedding", &[t(&[5, 4], 25), ids], |g, x| g.embedding(x[0], x[1]));
}

#[test]
fn clipping_scales_every_gradient_to_the_global_norm() {
    for (max_norm, want_norm) in [(0.5, 0.5), (100.0, 13f64.sqrt())] {
        let mut g = Graph::new();
        let a = g.input("a", vec![2], DType::F32);
        let b = g.input("b", vec![1], DType::F32);
        let clipped = g.clip_grad_norm(&[a, b], max_norm).expect("clip");
        let feeds = HashMap::from([
            (a, Tensor::new(vec![2], vec![2.0, 0.0]).expect("a")),
            (b, Tensor::new(vec![1], vec![-3.0]).expect("b")),
        ]);
        let values = interpret(&g, &feeds).expect("runs");
        let norm = clipped.iter().flat_map(|v| values[v.0].data.clone()).map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - want_norm).abs() < 1e-5, "max_norm {max_norm}: clipped norm {norm}");
        assert!(
            (values[clipped[0].0].data[0] / values[clipped[1].0].data[0] + 2.0 / 3.0).abs() < 1e-12,
            "direction kept"
        );
    }
}

#[test]
fn recurrent_cells_and_attention() {
    let (n, i, h) = (2, 3, 4);
    let lstm = [
        t(&[n, i], 1),
        t(&[n, h], 2),
        t(&[n, h], 3),
        t(&[4 * h, i], 4),
        t(&[4 * h, h], 5),
        t(&[4 * h], 6),
        t(&[4 * h], 7),
    ];
    gradcheck("lstm h", &lstm, |g, x| Ok(g.lstm_cell(x[0], x[1], x[2], x[3], x[4], x[5], x[6])?.0));
    gradcheck("lstm c", &lstm, |g, x| Ok(g.lstm_cell(x[0], x[1], x[2], x[3], x[4], x[5], x[6])?.1));
    let gru = [t(&[n, i], 1), t(&[n, h], 2), t(&[3 * h, i], 4), t(&[3 * h, h], 5), t(&[3 * h], 6), t(&[3 * h], 7)];
    gradcheck("gru", &gru, |g, x| g.gru_cell(x[0], x[1], x[2], x[3], x[4], x[5]));
    let qkv = [t(&[1, 2, 3, 4], 8), t(&[1, 2, 3, 4], 9), t(&[1, 2, 3, 4], 10)];
    gradcheck("attention", &qkv, |g, x| g.attention(x[0], x[1], x[2], false));
    gradcheck("causal attention", &qkv, |g, x| g.attention(x[0], x[1], x[2], true));
    let cross = [t(&[2, 1, 2, 3], 8), t(&[2, 1, 5, 3], 9), t(&[2, 1, 5, 3], 10)];
    gradcheck("cross attention", &cross, |g, x| g.attention(x[0], x[1], x[2], false));
}

#[test]
fn optimizer_updates_match_their_formulas_over_steps() {
    // Not gradients: the in-place updates, run by the interpreter, against PyTorch's rules
    // written out here for two steps of Adam and SGD.
    let mut g = Graph::new();
    let p = g.variable_init("p", HostTensor::f32(vec![2], vec![1.0, -2.0]).expect("p"));
    let grad = g.input("g", vec![2], DType::F32);
    let (m, v) = (g.variable("m", vec![2]), g.variable("v", vec![2]));
    let adam = Adam { weight_decay: 0.1, decoupled: true, ..Adam::new(0.5) };
    g.adam_step(p, grad, m, v, adam).expect("adamw");
    let feeds = HashMap::from([(grad, Tensor::new(vec![2], vec![0.5, -1.0]).expect("g"))]);
    let after = interpret(&g, &feeds).expect("runs");
    // Step 1: p·(1 - lr·wd) - lr·sign(g) (m/c1 = g, √(v/c2) = |g|, eps negligible).
    let want = [1.0 * (1.0 - 0.05) - 0.5, -2.0 * (1.0 - 0.05) + 0.5];
    for (got, want) in after[p.0].data.iter().zip(want) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    let mut s = Graph::new();
    let w = s.variable_init("w", HostTensor::f32(vec![1], vec![2.0]).expect("w"));
    let dw = s.input("dw", vec![1], DType::F32);
    let buf = s.variable("buf", vec![1]);
    s.sgd_step(w, dw, buf, Sgd::new(0.1, 0.9, 0.5)).expect("sgd");
    let after = interpret(&s, &HashMap::from([(dw, Tensor::new(vec![1], vec![1.0]).expect("dw"))])).expect("runs");
    assert!((after[w.0].data[0] - (2.0 - 0.1 * (1.0 + 0.5 * 2.0))).abs() < 1e-6);
}
