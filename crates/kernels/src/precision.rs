use bytemuck::{Pod, Zeroable};
use kiln_core::{LossScale, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, PRECISION, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["round_half", "round_half_x4", "loss_scale_factor", "loss_scale_update"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    growth_interval: f32,
    min_scale: f32,
    max_scale: f32,
    clip: u32,
    max_norm: f32,
    _pad: [u32; 2],
}

fn elements(n: usize) -> Params {
    Params { n: n as u32, growth_interval: 0.0, min_scale: 0.0, max_scale: 0.0, clip: 0, max_norm: 0.0, _pad: [0; 2] }
}

/// `out = x` rounded to binary16, four elements per invocation where they are whole fours.
pub fn round_half(gpu: &Gpu, x: &B<'_>, out: &B<'_>) -> Result<Dispatch> {
    let n = x.shape.numel();
    let (entry, n) = if n.is_multiple_of(4) { ("round_half_x4", n / 4) } else { ("round_half", n) };
    let params = elements(n);
    Launch {
        shader: PRECISION,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, x.buffer), (2, out.buffer)],
        workgroups: grid_1d(gpu, n),
    }
    .build(gpu)
}

/// `factor = 1/scale` where the scalar `sum_sq` is finite, else 0; with `max_norm`, times the
/// unscaled gradients' clipping factor.
pub fn loss_scale_factor(
    gpu: &Gpu,
    max_norm: Option<f32>,
    sum_sq: &B<'_>,
    scale: &B<'_>,
    factor: &B<'_>,
) -> Result<Dispatch> {
    let params = Params { clip: u32::from(max_norm.is_some()), max_norm: max_norm.unwrap_or(0.0), ..elements(1) };
    one_invocation(gpu, "loss_scale_factor", params, [sum_sq, factor, scale])
}

/// In place: the scale and the count of finite steps after a step of `factor`.
pub fn loss_scale_update(gpu: &Gpu, l: &LossScale, [scale, good, factor]: [&B<'_>; 3]) -> Result<Dispatch> {
    let params = Params {
        growth_interval: l.growth_interval as f32,
        min_scale: LossScale::MIN,
        max_scale: LossScale::MAX,
        ..elements(1)
    };
    one_invocation(gpu, "loss_scale_update", params, [factor, scale, good])
}

/// A scalar kernel's single invocation over bindings 1, 2 and 3.
fn one_invocation(gpu: &Gpu, entry: &'static str, params: Params, buffers: [&B<'_>; 3]) -> Result<Dispatch> {
    Launch {
        shader: PRECISION,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: (1..).zip(buffers.map(|b| b.buffer)).collect(),
        workgroups: [1, 1, 1],
    }
    .build(gpu)
}
