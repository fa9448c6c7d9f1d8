use bytemuck::{Pod, Zeroable};
use kiln_core::{Op, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, SOFTMAX, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["softmax", "log_softmax", "softmax_backward", "log_softmax_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    len: u32,
    inner: u32,
    _pad: u32,
}

/// Softmax-family op along `axis`; `dy` is given for the backward entry points.
pub fn softmax(gpu: &Gpu, op: &Op, axis: usize, x: &B<'_>, dy: Option<&B<'_>>, out: &B<'_>) -> Result<Dispatch> {
    let dims = x.shape.dims();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let rows = x.shape.numel() / len.max(1);
    let params = Params { rows: rows as u32, len: len as u32, inner: inner as u32, _pad: 0 };
    crate::check_loops(gpu, op.name(), 3 * len, &[x.shape])?;

    let mut bindings = vec![(1, x.buffer), (3, out.buffer)];
    bindings.extend(dy.map(|dy| (2, dy.buffer)));
    let launch = Launch {
        shader: SOFTMAX,
        entry: op.name(),
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, rows),
    };
    launch.build(gpu)
}
