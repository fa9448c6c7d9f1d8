//! GPU against the CPU reference on random and awkward shapes: sizes 1, primes, multiples of 4
//! and not, and grids past 65535 workgroups. Each case runs the op forward and backward (with
//! a random cotangent) on both backends and compares every output and gradient.

mod common;

use common::{assert_parity, evaluate, gpu, t};
use kiln::core::{Activation, HostTensor, MatMul};
use proptest::prelude::*;

fn dim() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 8, 13, 16, 31, 33, 64, 65])
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 16, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul(m in dim(), k in dim(), n in dim(), batch in 0usize..3, ta: bool, tb: bool, seed: u64) {
        let lead = |rows, cols, batched: bool| if batched { vec![2, rows, cols] } else { vec![rows, cols] };
        let a = if ta { lead(k, m, batch == 1) } else { lead(m, k, batch == 1) };
        let b = if tb { lead(n, k, batch == 2) } else { lead(k, n, batch == 2) };
        let mm = MatMul { trans_a: ta, trans_b: tb };
        assert_parity("matmul", &[t(&a, seed), t(&b, seed + 1)], |g, x| g.matmul_with(x[0], x[1], mm));
    }

    #[test]
    fn broadcast_binary(d0 in dim(), d1 in dim(), mask in 0usize..4, seed: u64) {
        let a = vec![d0, d1];
        let b = match mask { 0 => vec![d0, d1], 1 => vec![d1], 2 => vec![d0, 1], _ => vec![1, 1, d1] };
        let inputs = [t(&a, seed), t(&b, seed + 1)];
        assert_parity("add", &inputs, |g, x| g.add(x[0], x[1]));
        assert_parity("sub", &inputs, |g, x| g.sub(x[0], x[1]));
        assert_parity("mul", &inputs, |g, x| g.mul(x[0], x[1]));
    }

    #[test]
    fn division(d0 in dim(), d1 in dim(), seed: u64) {
        let b = HostTensor::f32(vec![d1], common::random_vec(d1, seed).iter().map(|v| 1.5 + v).collect()).expect("b");
        assert_parity("div", &[t(&[d0, d1], seed), b], |g, x| g.div(x[0], x[1]));
    }

    #[test]
    fn activations(d0 in dim(), d1 in dim(), seed: u64) {
        let x = [t(&[d0, d1], seed)];
        assert_parity("relu", &x, |g, x| g.relu(x[0]));
        assert_parity("sigmoid", &x, |g, x| g.sigmoid(x[0]));
        assert_parity("tanh", &x, |g, x| g.tanh(x[0]));
    }

    #[test]
    fn reductions(d0 in dim(), d1 in dim(), d2 in dim(), axes in prop::sample::subsequence(vec![0i64, 1, 2], 1..=3), keep: bool, seed: u64) {
        let x = [t(&[d0, d1, d2], seed)];
        assert_parity("sum", &x, |g, x| g.sum(x[0], &axes, keep));
        assert_parity("mean", &x, |g, x| g.mean(x[0], &axes, keep));
    }

    #[test]
    fn layout(d0 in dim(), d1 in dim(), d2 in dim(), perm in Just(vec![0usize, 1, 2]).prop_shuffle(), seed: u64) {
        let x = [t(&[d0, d1, d2], seed)];
        assert_parity("transpose", &x, |g, x| g.transpose(x[0], &perm));
        assert_parity("reshape", &x, |g, x| g.reshape(x[0], vec![d0 * d1, d2]));
    }

    #[test]
    fn softmax(d0 in dim(), d1 in dim(), d2 in dim(), axis in -3i64..3, seed: u64) {
        let x = [t(&[d0, d1, d2], seed)];
        assert_parity("softmax", &x, |g, x| g.softmax(x[0], axis));
        assert_parity("log_softmax", &x, |g, x| g.log_softmax(x[0], axis));
    }

    #[test]
    fn cross_entropy(n in dim(), c in 1usize..40, seed: u64) {
        let labels = (0..n).map(|i| ((i as u64 * 31 + seed % 97) % c as u64) as i32).collect();
        let inputs = [t(&[n, c], seed), HostTensor::i32(vec![n], labels).expect("labels")];
        assert_parity("cross_entropy", &inputs, |g, x| g.cross_entropy(x[0], x[1]));
    }
}

#[test]
fn grids_past_65535_workgroups_are_folded() {
    // 65,600 workgroups of 64 for the elementwise kernels, 70,001 for the reduction.
    let n = 65_600 * 64;
    let inputs = [t(&[n], 1), t(&[n], 2)];
    assert_parity("large add", &inputs, |g, x| g.add(x[0], x[1]));
    assert_parity("large relu", &inputs[..1], |g, x| g.relu(x[0]));
    assert_parity("many sums", &[t(&[70_001, 3], 3)], |g, x| g.sum(x[0], &[1], false));
}

#[test]
fn bias_gradient_sums_match_with_and_without_whole_fours() {
    // [N, C, H, W] over N, H, W, as a convolution's bias gradient: H·W a multiple of 4 (read
    // four at a time) or not, and long enough for a workgroup per channel.
    for dims in [[6, 5, 12, 8], [6, 5, 7, 7], [3, 2, 4, 100]] {
        let x = [t(&dims, 7)];
        assert_parity("bias gradient sum", &x, |g, x| g.sum(x[0], &[0, 2, 3], false));
        assert_parity("bias gradient mean", &x, |g, x| g.mean(x[0], &[0, 2, 3], true));
    }
}

#[test]
fn short_sums_match_with_and_without_whole_fours_of_outputs() {
    // One invocation per output, or per four adjacent outputs where the innermost kept axis
    // is contiguous and a multiple of 4 long: a linear layer's bias gradient ([batch,
    // features] over the batch, features 12 or 10), a middle axis of [3, 5, 8] or [3, 5, 6],
    // the two outer axes of [2, 3, 8].
    for (dims, axes) in [
        (vec![9, 12], vec![0]),
        (vec![9, 10], vec![0]),
        (vec![3, 5, 8], vec![1]),
        (vec![3, 5, 6], vec![1]),
        (vec![2, 3, 8], vec![0, 1]),
    ] {
        let x = [t(&dims, 17)];
        assert_parity("short sum", &x, |g, x| g.sum(x[0], &axes, false));
        assert_parity("short mean", &x, |g, x| g.mean(x[0], &axes, true));
    }
}

#[test]
fn same_shape_binaries_activations_and_slice_gradients_match_in_fours_and_singles() {
    // Operands of the output's shape: 48 elements (a vec4 per invocation) or 35.
    for dims in [[6, 8], [5, 7]] {
        let divisor =
            HostTensor::f32(dims.to_vec(), common::random_vec(dims[0] * dims[1], 4).iter().map(|v| 1.5 + v).collect())
                .expect("divisor");
        let inputs = [t(&dims, 3), divisor];
        assert_parity("same-shape add", &inputs, |g, x| g.add(x[0], x[1]));
        assert_parity("same-shape sub", &inputs, |g, x| g.sub(x[0], x[1]));
        assert_parity("same-shape mul", &inputs, |g, x| g.mul(x[0], x[1]));
        assert_parity("same-shape div", &inputs, |g, x| g.div(x[0], x[1]));
    }
    for dims in [[6, 8], [5, 7]] {
        let x = [t(&dims, 8)];
        for activation in [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Gelu { tanh: true },
            Activation::LeakyRelu { negative_slope: 0.2 },
        ] {
            assert_parity("activation", &x, |g, x| g.activation(x[0], activation));
        }
    }
    // Slices whose gradient's edges fall at multiples of 4 elements (an LSTM's gates: fours of
    // the last axis; a middle axis over rows of 4) or do not.
    let x = [t(&[3, 16], 5)];
    for (start, len) in [(0, 4), (4, 8), (12, 4), (1, 4), (4, 3)] {
        assert_parity("slice of the last axis", &x, |g, x| g.slice(x[0], 1, start, len));
    }
    let x = [t(&[2, 5, 4], 6)];
    for (start, len) in [(0, 2), (3, 2), (1, 1)] {
        assert_parity("slice of a middle axis", &x, |g, x| g.slice(x[0], 1, start, len));
    }
    let x = [t(&[2, 5, 3], 7)];
    assert_parity("slice of a middle axis, rows of 3", &x, |g, x| g.slice(x[0], 1, 1, 4));
}

#[test]
fn huge_logits_stay_finite() {
    let logits = HostTensor::f32(vec![2, 3], vec![1e4, -1e4, 0.0, -1e4, 1e4, 5e3]).expect("logits");
    let labels = HostTensor::i32(vec![2], vec![1, 0]).expect("labels");
    let out = evaluate(gpu(), &[logits, labels], &|g, x| g.cross_entropy(x[0], x[1]));
    for t in &out {
        assert!(t.as_f32().expect("f32").iter().all(|v| v.is_finite()), "{out:?}");
    }
    assert!((out[0].as_f32().expect("f32")[0] - 2e4).abs() < 1.0, "loss {:?}", out[0]);
}
