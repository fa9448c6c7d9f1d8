use bytemuck::{Pod, Zeroable};
use kiln_core::{Result, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu};

use crate::binary::broadcast_strides;
use crate::{B, LAYOUT, Launch, grid_1d, pack8};

pub const ENTRY_POINTS: &[&str] = &["transpose", "broadcast_to"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    rank: u32,
    scale: f32,
    _pad: u32,
    shape: [u32; 8],
    strides: [u32; 8],
}

fn gather(gpu: &Gpu, entry: &'static str, strides: &[usize], scale: f32, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let n = y.shape.numel();
    let params = Params {
        n: n as u32,
        rank: y.shape.rank() as u32,
        scale,
        _pad: 0,
        shape: pack8(y.shape.dims()),
        strides: pack8(strides),
    };
    let launch = Launch {
        shader: LAYOUT,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, x.buffer), (2, y.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}

/// Axis k of `y` is axis `perm[k]` of `x`.
pub fn transpose(gpu: &Gpu, perm: &[usize], x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let x_strides = contiguous_strides(x.shape.dims());
    let strides: Vec<usize> = perm.iter().map(|&p| x_strides[p]).collect();
    gather(gpu, "transpose", &strides, 1.0, x, y)
}

/// `y = scale · x` broadcast to the shape of `y`.
pub fn broadcast_to(gpu: &Gpu, scale: f32, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    gather(gpu, "broadcast_to", &broadcast_strides(y.shape, x.shape), scale, x, y)
}
