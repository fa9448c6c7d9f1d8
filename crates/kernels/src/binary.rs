use bytemuck::{Pod, Zeroable};
use kiln_core::{Op, Result, Shape, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, BINARY, Launch, grid_1d, pack8};

pub const ENTRY_POINTS: &[&str] = &["add", "sub", "mul", "div", "add_x4", "sub_x4", "mul_x4", "div_x4"];
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

/// Each op's kernel and its `_x4` form, for operands of y's shape holding whole fours.
const FOURS: [(&str, &str); 4] = [("add", "add_x4"), ("sub", "sub_x4"), ("mul", "mul_x4"), ("div", "div_x4")];

fn fours(op: &Op) -> Result<&'static str> {
    let four = FOURS.iter().find(|(one, _)| *one == op.name()).map(|&(_, four)| four);
    four.ok_or_else(|| kiln_core::Error::attribute(op.name(), "is not an elementwise binary op"))
}

/// `y = a ∘ b` with NumPy broadcasting.
pub fn binary(gpu: &Gpu, op: &Op, a: &B<'_>, b: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let contiguous = a.shape == y.shape && b.shape == y.shape;
    let (entry, n) = match y.shape.numel() {
        n if contiguous && n.is_multiple_of(4) => (fours(op)?, n / 4),
        n => (op.name(), n),
    };
    let params = Params {
        n: n as u32,
        rank: y.shape.rank() as u32,
        contiguous: u32::from(contiguous),
        _pad: 0,
        shape: pack8(y.shape.dims()),
        a_strides: pack8(&broadcast_strides(y.shape, a.shape)),
        b_strides: pack8(&broadcast_strides(y.shape, b.shape)),
    };
    let launch = Launch {
        shader: BINARY,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, a.buffer), (2, b.buffer), (3, y.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
