//! Shared by the integration tests.
#![allow(dead_code)]

use kiln::gpu::Gpu;
use kiln::kernels::GpuBackend;

/// The GPU backend, or a failure that says how to get an adapter: GPU tests never pass
/// silently without one.
pub fn gpu() -> GpuBackend {
    match Gpu::new_blocking() {
        Ok(gpu) => GpuBackend::new(gpu),
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    }
}

/// `‖got - want‖ / max(‖want‖, 1e-6)`, the golden format's measure.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let diff: f64 = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
    diff / norm.max(1e-6)
}

/// A deterministic pseudo-random vector in [-1, 1).
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
