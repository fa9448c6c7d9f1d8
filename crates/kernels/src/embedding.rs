use bytemuck::{Pod, Zeroable};
use kiln_core::Result;
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, EMBEDDING, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["embedding", "embedding_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    ids: u32,
    dim: u32,
    vocab: u32,
}

/// `embedding(table, ids)` forward, or with `rows` = dy the gradient `embedding_backward`.
pub fn embedding(
    gpu: &Gpu,
    entry: &'static str,
    rows: &B<'_>,
    ids: &B<'_>,
    vocab: usize,
    out: &B<'_>,
) -> Result<Dispatch> {
    let n = out.shape.numel();
    let dim = out.shape.dims().last().copied().unwrap_or(1);
    let u = |v: usize| v as u32;
    let params = Params { n: u(n), ids: u(ids.shape.numel()), dim: u(dim), vocab: u(vocab) };
    if entry == "embedding_backward" {
        crate::check_loops(gpu, entry, ids.shape.numel() + 1, &[ids.shape, rows.shape])?;
    }

    let launch = Launch {
        shader: EMBEDDING,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, rows.buffer), (2, ids.buffer), (3, out.buffer)],
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
