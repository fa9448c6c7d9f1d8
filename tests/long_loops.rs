//! Sizes past the loop budget of Mesa's CPU drivers (they end an invocation's loops after
//! 65,535 passes and carry on with a wrong result): long softmax rows, a cross-entropy over
//! 70,001 classes, sums and maxima of five million elements, and products with a long K all
//! compute correctly — cut into chunks on CPU adapters — against the CPU reference, forward
//! and backward.

mod common;

use common::{assert_close, t};
use kiln::core::HostTensor;

#[test]
fn softmax_rows_at_and_past_the_budget() {
    // 21,845 columns: three loops of 21,845 over a row were 65,538 passes, and the last ones
    // were silently dropped.
    for columns in [21_845, 100_003] {
        let x = [t(&[2, columns], 1)];
        assert_close(&format!("softmax over {columns}"), &x, |g, v| g.softmax(v[0], -1));
        assert_close(&format!("log_softmax over {columns}"), &x, |g, v| g.log_softmax(v[0], -1));
    }
    // Along a middle axis: rows strided by the inner extent.
    let x = [t(&[2, 40_000, 3], 2)];
    assert_close("softmax along a long middle axis", &x, |g, v| g.softmax(v[0], 1));
}

#[test]
fn a_cross_entropy_over_70001_classes() {
    let logits = t(&[3, 70_001], 3);
    let labels = HostTensor::i32(vec![3], vec![0, 70_000, 12_345]).expect("labels");
    assert_close("cross-entropy over 70,001 classes", &[logits.clone(), labels.clone()], |g, v| {
        g.cross_entropy(v[0], v[1])
    });
    assert_close("nll over 70,001 classes", &[logits, labels], |g, v| g.nll_loss(v[0], v[1]));
}

#[test]
fn sums_and_maxima_of_five_million_elements() {
    let x = [t(&[5_000_000], 4)];
    assert_close("sum of 5M", &x, |g, v| g.sum_all(v[0]));
    assert_close("mean of 5M", &x, |g, v| g.mean_all(v[0]));
    let rows = [t(&[2, 2_500_001], 5)];
    assert_close("row sums of 2.5M", &rows, |g, v| g.sum(v[0], &[1], false));
    assert_close("max of 2.5M", &rows, |g, v| g.max(v[0], &[1], false));
}

#[test]
fn products_with_a_long_k() {
    // The 4-wide kernels step k by 4: 75,000 steps. The scalar kernel steps it by one.
    assert_close("matmul K = 300,000", &[t(&[4, 300_000], 6), t(&[300_000, 4], 7)], |g, v| g.matmul(v[0], v[1]));
    assert_close("matmul K = 70,001", &[t(&[3, 70_001], 8), t(&[70_001, 5], 9)], |g, v| g.matmul(v[0], v[1]));
    assert_close("batched matmul K = 70,001", &[t(&[2, 3, 70_001], 10), t(&[2, 70_001, 5], 11)], |g, v| {
        g.matmul(v[0], v[1])
    });
}
