use bytemuck::{Pod, Zeroable};
use kiln_core::{Op, Result, Shape, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, BINARY, Launch, grid_1d, pack8};

pub const ENTRY_POINTS: &[&str] = &["add", "sub", "mul", "div"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    rank: u32,
    contiguous: u32,
    _pad: u32,
    shape: [u32; 8],
    a_strides: [u32; 8],
    b_strides: [u32; 8],
}

/// Strides of `input` broadcast against `out` (0 along broadcast axes), per output axis.
pub(crate) fn broadcast_strides(out: &Shape, input: &Shape) -> Vec<usize> {
    let pad = out.rank() - input.rank();
    let strides = contiguous_strides(input.dims());
    (0..out.rank()).map(|d| if d < pad || input.dims()[d - pad] == 1 { 0 } else { strides[d - pad] }).collect()
}

/// `y = a ∘ b` with NumPy broadcasting.
pub fn binary(gpu: &Gpu, op: &Op, a: &B<'_>, b: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let n = y.shape.numel();
    let params = Params {
        n: n as u32,
        rank: y.shape.rank() as u32,
        contiguous: u32::from(a.shape == y.shape && b.shape == y.shape),
        _pad: 0,
        shape: pack8(y.shape.dims()),
        a_strides: pack8(&broadcast_strides(y.shape, a.shape)),
        b_strides: pack8(&broadcast_strides(y.shape, b.shape)),
    };
    let launch = Launch {
        shader: BINARY,
        entry: op.name(),
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, a.buffer), (2, b.buffer), (3, y.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
