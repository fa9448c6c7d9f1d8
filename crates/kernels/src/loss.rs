use bytemuck::{Pod, Zeroable};
use kiln_core::{Op, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, LOSS, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["cross_entropy_per_sample", "cross_entropy_per_sample_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    _pad: [u32; 2],
}

/// Per-row cross-entropy of `[N,C]` logits, or its gradient when `dy` is given.
pub fn cross_entropy(
    gpu: &Gpu,
    op: &Op,
    logits: &B<'_>,
    labels: &B<'_>,
    dy: Option<&B<'_>>,
    out: &B<'_>,
) -> Result<Dispatch> {
    let dims = logits.shape.dims();
    let params = Params { rows: dims[0] as u32, classes: dims[1] as u32, _pad: [0; 2] };
    let mut bindings = vec![(1, logits.buffer), (2, labels.buffer), (4, out.buffer)];
    bindings.extend(dy.map(|dy| (3, dy.buffer)));
    let launch = Launch {
        shader: LOSS,
        entry: op.name(),
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, dims[0]),
    };
    launch.build(gpu)
}
