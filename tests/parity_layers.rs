//! GPU against the CPU reference for the layer families, forward and backward, on random
//! awkward shapes and attributes: sizes 1 and primes, channel counts that are not multiples of
//! 4, every convolution geometry (stride past the kernel, dilation, padding, groups,
//! depthwise, output padding), overlapping and gapped pooling windows, and grids past 65535
//! workgroups.

mod common;

use common::{assert_parity, t};
use kiln::core::{Activation, Conv2d, HostTensor, LossKind, Op, Pool2d, PoolKind};
use kiln::graph::{Executor, Graph, Value};
use proptest::prelude::*;

fn dim() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 3, 5, 7, 8, 13])
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 24, ..ProptestConfig::default() }
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
        (0.01f32..0.5).prop_map(|negative_slope| Activation::LeakyRelu { negative_slope }),
        (0.1f32..2.0).prop_map(|alpha| Activation::Elu { alpha }),
        any::<bool>().prop_map(|tanh| Activation::Gelu { tanh }),
        Just(Activation::Silu),
        Just(Activation::Softplus),
        Just(Activation::Step),
    ]
}

/// Scaled to cover saturation: values up to ±`scale`.
fn scaled(shape: &[usize], seed: u64, scale: f32) -> HostTensor {
    let x = t(shape, seed);
    HostTensor::f32(x.shape.clone(), x.as_f32().expect("f32").iter().map(|v| v * scale).collect()).expect("scaled")
}

fn in_range(shape: &[usize], seed: u64, lo: f32, hi: f32) -> HostTensor {
    let x = t(shape, seed);
    let data = x.as_f32().expect("f32").iter().map(|v| lo + (hi - lo) * (v + 1.0) / 2.0).collect();
    HostTensor::f32(shape.to_vec(), data).expect("tensor")
}

/// A convolution geometry, or `None` when the kernel does not fit the padded input.
#[derive(Clone, Debug)]
struct ConvCase {
    x: [usize; 4],
    w: [usize; 4],
    conv: Conv2d,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..3,
        1usize..6,
        1usize..5,
        0usize..3,
        1usize..10,
        1usize..10,
        (1usize..4, 1usize..4),
        (1usize..4, 1usize..3),
        (0usize..3, 0usize..3),
        (1usize..3, 1usize..3),
    )
        .prop_map(|(n, c_base, mult, grouping, h, w, (kh, kw), (sh, sw), (ph, pw), (dh, dw))| {
            // grouping: 0 = one group, 1 = depthwise, 2 = two groups of c_base channels each.
            let (c, groups) = match grouping {
                0 => (c_base, 1),
                1 => (c_base, c_base),
                _ => (2 * c_base, 2),
            };
            let o = groups * mult;
            let conv = Conv2d { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups };
            ConvCase { x: [n, c, h, w], w: [o, c / groups, kh, kw], conv }
        })
        .prop_filter("the kernel must fit the padded input", |c| {
            c.conv.output_size(0, c.x[2], c.w[2]).is_some() && c.conv.output_size(1, c.x[3], c.w[3]).is_some()
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn activations(a in activation(), d0 in dim(), d1 in dim(), scale in prop::sample::select(vec![1.0f32, 4.0, 30.0]), seed: u64) {
        assert_parity(a.name(), &[scaled(&[d0, d1], seed, scale)], |g, x| g.activation(x[0], a));
    }

    #[test]
    fn prelu(n in dim(), c in dim(), h in 0usize..4, seed: u64) {
        let shape: Vec<usize> = [n, c].into_iter().chain((h > 0).then_some(h)).collect();
        assert_parity("prelu", &[t(&shape, seed), t(&[c], seed + 1)], |g, x| g.prelu(x[0], x[1]));
    }

    #[test]
    fn sums(dims in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3, 5]), 5), long in 0usize..6, axes in prop::sample::subsequence(vec![0i64, 1, 2, 3, 4], 1..=5), keep: bool, seed: u64) {
        // Mostly one axis of 300: reductions on either side of the one-invocation-per-output
        // length (256), with up to three separate reduced runs of axes (the general path).
        let mut dims = dims;
        if long < 5 {
            dims[long] = 300;
        }
        // Positive values: a sum of thousands of signed ones can cancel to near zero, where
        // any f32 accumulation order is off by more than the relative tolerance.
        let x = [in_range(&dims, seed, 0.5, 1.5)];
        assert_parity("sum", &x, |g, x| g.sum(x[0], &axes, keep));
        assert_parity("mean", &x, |g, x| g.mean(x[0], &axes, keep));
    }

    #[test]
    fn max_and_slice(d0 in dim(), d1 in dim(), d2 in dim(), axes in prop::sample::subsequence(vec![0i64, 1, -1], 1..=3), keep: bool, seed: u64) {
        let x = [t(&[d0, d1, d2], seed)];
        assert_parity("max", &x, |g, x| g.max(x[0], &axes, keep));
        assert_parity("slice", &x, |g, x| g.slice(x[0], 1, d1 / 2, d1 - d1 / 2));
        let parts = [t(&[d0, d1, d2], seed), t(&[d0, d1 / 2 + 1, d2], seed + 1), t(&[d0, 1, d2], seed + 2)];
        assert_parity("concat", &parts, |g, x| g.concat(x, 1));
    }

    #[test]
    fn conv2d(case in conv_case(), bias: bool, seed: u64) {
        let mut inputs = vec![t(&case.x, seed), t(&case.w, seed + 1)];
        if bias {
            inputs.push(t(&[case.w[0]], seed + 2));
        }
        assert_parity("conv2d", &inputs, |g, x| g.conv2d(x[0], x[1], x.get(2).copied(), case.conv));
    }

    #[test]
    fn conv_transpose2d(case in conv_case(), pad_out in (0usize..3, 0usize..3), seed: u64) {
        let c = case.conv;
        let output_padding = [pad_out.0 % c.stride[0].max(c.dilation[0]), pad_out.1 % c.stride[1].max(c.dilation[1])];
        // Reading the case the other way round: x has the conv's output channels, w is [C_in, O/g, kH, kW].
        let x = [case.x[0], case.w[0], case.x[2], case.x[3]];
        let w = [case.w[0], case.x[1] / c.groups, case.w[2], case.w[3]];
        let o = case.x[1];
        let built = kiln::core::Op::ConvTranspose2d { conv: c, output_padding }
            .output(&[(&x.to_vec().into(), kiln::core::DType::F32), (&w.to_vec().into(), kiln::core::DType::F32)]);
        prop_assume!(built.is_ok());
        let inputs = [t(&x, seed), t(&w, seed + 1), t(&[o], seed + 2)];
        assert_parity("conv_transpose2d", &inputs, |g, x| g.conv_transpose2d(x[0], x[1], Some(x[2]), c, output_padding));
    }

    #[test]
    fn pooling(n in 1usize..3, c in 1usize..4, h in 1usize..9, w in 1usize..9, k in (1usize..4, 1usize..4), s in (1usize..4, 1usize..4), pad in (0usize..2, 0usize..2), kind in 0usize..5, seed: u64) {
        let kind = [PoolKind::Max, PoolKind::Min, PoolKind::Avg { count_include_pad: true }, PoolKind::Avg { count_include_pad: false }, PoolKind::Lp { p: 2.0 }][kind];
        let padding = if matches!(kind, PoolKind::Lp { .. }) { [0, 0] } else { [pad.0.min(k.0 / 2), pad.1.min(k.1 / 2)] };
        let p = Pool2d { kind, kernel: [k.0, k.1], stride: [s.0, s.1], padding };
        prop_assume!(p.geometry().output_size(0, h, k.0).is_some() && p.geometry().output_size(1, w, k.1).is_some());
        assert_parity(p.name(), &[t(&[n, c, h, w], seed)], |g, x| g.pool2d(x[0], p));
    }

    #[test]
    fn elementwise_losses(d0 in dim(), d1 in dim(), delta in 0.1f32..3.0, seed: u64) {
        let (pred, target) = (scaled(&[d0, d1], seed, 3.0), t(&[d0, d1], seed + 1));
        for kind in [LossKind::L1, LossKind::Huber { delta }, LossKind::BceWithLogits, LossKind::Hinge] {
            assert_parity(kind.name(), &[pred.clone(), target.clone()], |g, x| g.pointwise_loss(kind, x[0], x[1]));
        }
        let (p, soft) = (in_range(&[d0, d1], seed, 0.02, 0.98), in_range(&[d0, d1], seed + 2, 0.0, 1.0));
        assert_parity("bce_loss", &[p, soft.clone()], |g, x| g.pointwise_loss(LossKind::Bce, x[0], x[1]));
        let q = in_range(&[d0, d1], seed + 3, 0.01, 1.0);
        assert_parity("kl_div", &[pred.clone(), q], |g, x| g.kl_div(x[0], x[1]));
    }

    #[test]
    fn nll_loss(n in dim(), c in 1usize..20, seed: u64) {
        let labels = (0..n).map(|i| ((i as u64 * 31 + seed % 97) % c as u64) as i32).collect();
        let inputs = [t(&[n, c], seed), HostTensor::i32(vec![n], labels).expect("labels")];
        assert_parity("nll_loss", &inputs, |g, x| g.nll_loss(x[0], x[1]));
    }

    #[test]
    fn normalisation(n in prop::sample::select(vec![3usize, 5, 8]), c in dim(), h in 0usize..4, seed: u64) {
        // Two samples per channel normalise to exactly ±1 whatever x is: dx vanishes and only
        // rounding noise is left to compare, so batches start at three.
        let shape: Vec<usize> = [n, c].into_iter().chain([h, h].into_iter().filter(|&d| d > 0)).collect();
        let inputs = [scaled(&shape, seed, 3.0), in_range(&[c], seed + 1, 0.5, 1.5), t(&[c], seed + 2)];
        assert_parity("batch_norm", &inputs, |g, x| Ok(g.batch_norm(x[0], x[1], x[2], 1e-5)?.0));
    }

    #[test]
    fn layer_norm(rows in dim(), d in prop::sample::select(vec![1usize, 3, 5, 7, 13, 64]), seed: u64) {
        // As for batch norm, two features normalise to ±1 and leave no gradient to compare.
        let inputs = [scaled(&[rows, d], seed, 3.0), in_range(&[d], seed + 1, 0.5, 1.5), t(&[d], seed + 2)];
        assert_parity("layer_norm", &inputs, |g, x| g.layer_norm(x[0], x[1], x[2], 1e-5));
    }

    #[test]
    fn embedding_and_dropout(vocab in 1usize..20, d in dim(), m in dim(), p in 0.0f32..0.9, seed: u64) {
        let ids = (0..m).map(|i| ((i as u64 * 7 + seed % 13) % vocab as u64) as i32).collect();
        let inputs = [t(&[vocab, d], seed), HostTensor::i32(vec![m], ids).expect("ids")];
        assert_parity("embedding", &inputs, |g, x| g.embedding(x[0], x[1]));
        assert_parity("dropout", &[t(&[m, d], seed)], |g, x| g.dropout(x[0], p, seed as u32, true));
    }

    #[test]
    fn recurrent_cells(n in dim(), i in dim(), h in dim(), seed: u64) {
        let lstm = [t(&[n, i], seed), t(&[n, h], seed + 1), t(&[n, h], seed + 2), t(&[4 * h, i], seed + 3), t(&[4 * h, h], seed + 4), t(&[4 * h], seed + 5), t(&[4 * h], seed + 6)];
        assert_parity("lstm_cell", &lstm, |g, x| Ok(g.lstm_cell(x[0], x[1], x[2], x[3], x[4], x[5], x[6])?.1));
        let gru = [t(&[n, i], seed), t(&[n, h], seed + 1), t(&[3 * h, i], seed + 3), t(&[3 * h, h], seed + 4), t(&[3 * h], seed + 5), t(&[3 * h], seed + 6)];
        assert_parity("gru_cell", &gru, |g, x| g.gru_cell(x[0], x[1], x[2], x[3], x[4], x[5]));
    }

    #[test]
    fn attention(b in 1usize..3, heads in 1usize..4, t_len in dim(), s_len in dim(), d in dim(), causal: bool, seed: u64) {
        let s_len = if causal { t_len } else { s_len };
        let qkv = [t(&[b, heads, t_len, d], seed), t(&[b, heads, s_len, d], seed + 1), t(&[b, heads, s_len, d], seed + 2)];
        assert_parity("attention", &qkv, |g, x| g.attention(x[0], x[1], x[2], causal));
    }
}

#[test]
fn lowered_convolutions_pad_odd_taps_and_split_long_weight_gradients() {
    // O and N·H'·W' multiples of 4: 1 and 3 input channels (9 and 27 taps) are padded to 12
    // and 28 taps, in the forward product, both gradients and the transposed convolution.
    let same = Conv2d { padding: [1, 1], ..Conv2d::default() };
    for c in [1, 3] {
        let inputs = [t(&[2, c, 6, 6], 1), t(&[8, c, 3, 3], 2), t(&[8], 3)];
        assert_parity("conv2d, padded taps", &inputs, |g, x| g.conv2d(x[0], x[1], Some(x[2]), same));
        let inputs = [t(&[2, 8, 6, 6], 4), t(&[8, c, 3, 3], 5), t(&[c], 6)];
        assert_parity("conv_transpose2d, padded taps", &inputs, |g, x| {
            g.conv_transpose2d(x[0], x[1], Some(x[2]), same, [0, 0])
        });
    }
    // N·H'·W' = 1024 positions summed into 8 × 72 weights: few tiles, so slices of K.
    let inputs = [t(&[4, 8, 16, 16], 7), t(&[8, 8, 3, 3], 8)];
    assert_parity("conv2d, long weight gradient", &inputs, |g, x| g.conv2d(x[0], x[1], None, same));
}

/// The kernels one GPU step of `build` and its input gradients runs, by label.
fn kernels_run(
    inputs: &[HostTensor],
    build: impl Fn(&mut Graph, &[Value]) -> kiln::core::Result<Value>,
) -> Vec<String> {
    let mut g = Graph::new();
    let values: Vec<Value> =
        inputs.iter().enumerate().map(|(i, x)| g.input(&format!("x{i}"), x.shape.clone(), x.dtype())).collect();
    let out = build(&mut g, &values).expect("builds");
    let dy = g.input("dy", g.shape(out).clone(), kiln::core::DType::F32);
    let grads = kiln::graph::grad_with(&mut g, &[(out, dy)], &values).expect("grad");
    let mut exec = Executor::compile(common::gpu(), &g, &[[out].as_slice(), &grads].concat()).expect("compile");
    for (v, x) in values.iter().zip(inputs) {
        exec.set(*v, x).expect("input");
    }
    exec.set(dy, &t(g.shape(out).dims(), 9)).expect("dy");
    exec.profile().expect("profile").dispatches.into_iter().map(|d| d.label).collect()
}

#[test]
fn lowered_convolutions_run_per_sample_or_over_the_batch() {
    // Samples of 8×8 and 12×12 output positions (whole fours, 64 or more): one product per
    // sample on y and dy as they are, the weight gradients summed over the batch afterwards.
    // 5×5 (25 positions) and 4×4 (16, too few): one product over the batch, through rows
    // [O, N·P]. 3 input channels' 27 taps are padded to 28 either way.
    let same = Conv2d { padding: [1, 1], ..Conv2d::default() };
    for (side, c, per_sample) in [(8, 3, true), (12, 8, true), (5, 3, false), (4, 8, false)] {
        let inputs = [t(&[4, c, side, side], 1), t(&[8, c, 3, 3], 2), t(&[8], 3)];
        let conv = |g: &mut Graph, x: &[Value]| g.push(Op::Conv2dRelu(same), &[x[0], x[1], x[2]]);
        assert_parity(&format!("conv2d_relu, {side}×{side}"), &inputs, conv);
        let labels = kernels_run(&inputs, conv);
        let through_rows = labels.iter().any(|l| l.starts_with("conv2d_to_rows") || l.starts_with("conv2d_from_rows"));
        assert_eq!(through_rows, !per_sample, "{side}×{side}: {labels:?}");
        assert_eq!(labels.iter().any(|l| l.starts_with("matmul_sum_slices")), per_sample, "{side}×{side}: {labels:?}");
        // The weight gradient reads the columns the forward product gathered.
        let gathers = labels.iter().filter(|l| l.starts_with("conv2d_im2col")).count();
        assert_eq!(gathers, 1, "{side}×{side}: {labels:?}");
        let inputs = [t(&[4, 8, side, side], 4), t(&[8, c, 3, 3], 5), t(&[c], 6)];
        assert_parity(&format!("conv_transpose2d, {side}×{side}"), &inputs, |g, x| {
            g.conv_transpose2d(x[0], x[1], Some(x[2]), same, [0, 0])
        });
    }
}

#[test]
fn depthwise_convolutions_on_both_sides_of_the_span_limits() {
    // Spans of 6, 9, 8 and 8 columns (row by row, and one workgroup per channel for the weight
    // gradient), then a 5×5 kernel past the 16 taps that gradient holds and a span of 14 past
    // the 12 any of them holds: the tap-by-tap kernels. Rows of 13 end in a partial quad.
    let geometries = [
        ([3, 3], [1, 1], [1, 1]),
        ([3, 3], [2, 2], [1, 1]),
        ([3, 3], [1, 1], [2, 2]),
        ([5, 5], [1, 1], [1, 1]),
        ([3, 3], [3, 3], [2, 2]),
    ];
    for (kernel, stride, dilation) in geometries {
        let conv = Conv2d { stride, padding: [1, 1], dilation, groups: 4 };
        let inputs = [t(&[3, 4, 13, 13], 1), t(&[8, 1, kernel[0], kernel[1]], 2), t(&[8], 3)];
        assert_parity("depthwise conv2d", &inputs, |g, x| g.conv2d(x[0], x[1], Some(x[2]), conv));
    }
}

#[test]
fn grids_past_65535_workgroups_for_layer_kernels() {
    // 4.4M elements: more than 65535 workgroups of 64 for every elementwise and gather kernel.
    let big = [t(&[1, 1, 2100, 2100], 1)];
    // Four output channels: 4.4M outputs, and a weight gradient summing 1.1M products each.
    let wide = [t(&[1, 1, 1050, 1050], 1), t(&[4, 1, 1, 1], 2)];
    assert_parity("large conv2d 1x1", &wide, |g, x| g.conv2d(x[0], x[1], None, Conv2d::default()));
    let p = Pool2d { kind: PoolKind::Max, kernel: [1, 1], stride: [1, 1], padding: [0, 0] };
    assert_parity("large max_pool2d", &big, |g, x| g.pool2d(x[0], p));
    assert_parity("large gelu", &big, |g, x| g.activation(x[0], Activation::Gelu { tanh: false }));
    assert_parity("large dropout", &big, |g, x| g.dropout(x[0], 0.5, 3, true));
}

#[test]
fn loops_past_the_adapter_limit_are_refused_by_name_or_computed() {
    let ids = HostTensor::i32(vec![70_000], (0..70_000).map(|i| i % 3).collect()).expect("ids");
    let inputs = [t(&[3, 2], 1), ids];
    let build = |g: &mut kiln::graph::Graph, x: &[kiln::graph::Value]| g.embedding(x[0], x[1]);
    if common::gpu().gpu().loop_limit().is_some() {
        let mut g = kiln::graph::Graph::new();
        let table = g.input("table", vec![3, 2], kiln::core::DType::F32);
        let ids = g.input("ids", vec![70_000], kiln::core::DType::I32);
        let y = build(&mut g, &[table, ids]).expect("builds");
        let dy = g.input("dy", g.shape(y).clone(), kiln::core::DType::F32);
        let grads = kiln::graph::grad_with(&mut g, &[(y, dy)], &[table]).expect("grad");
        let text = kiln::graph::Executor::compile(common::gpu(), &g, &grads).err().expect("refused").to_string();
        assert!(text.contains("embedding_backward") && text.contains("[70000]") && text.contains("budget"), "{text}");
    } else {
        assert_parity("embedding over 70,000 ids", &inputs, build);
    }
}
