//! A convolution's columns are kept from the forward product for the weight gradient while
//! they are small enough. Alone in its binary: it turns the tuner off for the whole process
//! (the products of these shapes would otherwise be measured, which takes a while).

use kiln::core::{Backend, Conv2d, DType, Op, Shape, Spec};
use kiln::gpu::Gpu;
use kiln::kernels::GpuBackend;

/// A convolution's columns are kept from the forward product for the weight gradient (one
/// request derived from the input, which the plan shares) while they take at most 64 MiB;
/// larger ones are gathered again rather than held through the layers in between.
#[test]
fn convolution_columns_are_shared_up_to_64_mib() {
    // SAFETY: the only test of this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("KILN_TUNE", "off") };
    let backend = GpuBackend::new(Gpu::new_blocking().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}")));
    let same = Conv2d { padding: [1, 1], ..Conv2d::default() };
    // Columns [N, 576 taps, 64·64 positions]: 37.7 MB for 4 samples, 75.5 MB for 8.
    for (batch, shared) in [(4, true), (8, false)] {
        let (x, w, y) = (Shape::new([batch, 64, 64, 64]), Shape::new([4, 64, 3, 3]), Shape::new([batch, 4, 64, 64]));
        let spec = |shape| Spec { shape, dtype: DType::F32 };
        let forward = backend.scratch(&Op::Conv2d(same), &[spec(&x), spec(&w)], &[spec(&y)]).expect("forward");
        let weight_gradient = Op::Conv2dBackwardWeight { conv: same, kernel_hw: [3, 3] };
        let backward = backend.scratch(&weight_gradient, &[spec(&x), spec(&y)], &[spec(&w)]).expect("gradient");
        for (what, requests) in [("forward", forward), ("weight gradient", backward)] {
            let columns = &requests[0];
            assert_eq!(columns.bytes, 4 * 576 * 4096 * batch as u64, "{what}: {requests:?}");
            assert_eq!(columns.derived_from.is_some(), shared, "{what}, batch {batch}: {requests:?}");
        }
    }
}
