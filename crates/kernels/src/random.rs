use bytemuck::{Pod, Zeroable};
use kiln_core::{Noise, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, RANDOM, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["random_normal"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    key: u32,
    pad: [u32; 2],
}

/// The uniform for one run of `noise` over `n` elements.
pub fn params(noise: &Noise, n: usize) -> Vec<u8> {
    bytemuck::bytes_of(&Params { n: n as u32, key: noise.key(), pad: [0; 2] }).to_vec()
}

/// `out` filled with this run's standard normal noise.
pub fn random_normal(gpu: &Gpu, noise: &Noise, out: &B<'_>) -> Result<Dispatch> {
    let n = out.shape.numel();
    let launch = Launch {
        shader: RANDOM,
        entry: "random_normal",
        constants: vec![],
        params: &params(noise, n),
        bindings: vec![(1, out.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
