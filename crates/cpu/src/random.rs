//! Noise drawn from a counter-based generator: the values `kiln_core::Noise` defines, which
//! the WGSL kernels draw too.

use kiln_core::{Noise, Result, Shape};

use crate::Tensor;

/// `shape` of standard normal noise, element `i` being `noise.normal(i)`.
pub fn random_normal(noise: &Noise, shape: &Shape) -> Result<Tensor> {
    Tensor::new(shape.clone(), (0..shape.numel()).map(|i| noise.normal(i as u32)).collect())
}
