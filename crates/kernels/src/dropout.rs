use bytemuck::{Pod, Zeroable};
use kiln_core::{Dropout, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, DROPOUT, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["dropout", "dropout_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    threshold: u32,
    key: u32,
    scale: f32,
}

/// The uniform for one run of `d` over `n` elements.
pub fn params(d: &Dropout, n: usize) -> Vec<u8> {
    let p = Params { n: n as u32, threshold: d.threshold(), key: d.key(), scale: d.scale() };
    bytemuck::bytes_of(&p).to_vec()
}

/// The dropout mask of `d` applied to `x` (or to dy, for `dropout_backward`).
pub fn dropout(gpu: &Gpu, entry: &'static str, d: &Dropout, x: &B<'_>, out: &B<'_>) -> Result<Dispatch> {
    let n = out.shape.numel();
    let launch = Launch {
        shader: DROPOUT,
        entry,
        constants: vec![],
        params: &params(d, n),
        bindings: vec![(1, x.buffer), (2, out.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
