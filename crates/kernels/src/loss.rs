use bytemuck::{Pod, Zeroable};
use kiln_core::{LossKind, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, LOSS, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "cross_entropy_per_sample",
    "cross_entropy_per_sample_backward",
    "nll_per_sample",
    "nll_per_sample_backward",
    "l1_loss",
    "l1_loss_backward_pred",
    "l1_loss_backward_target",
    "huber_loss",
    "huber_loss_backward_pred",
    "huber_loss_backward_target",
    "bce_loss",
    "bce_loss_backward_pred",
    "bce_loss_backward_target",
    "bce_with_logits",
    "bce_with_logits_backward_pred",
    "bce_with_logits_backward_target",
    "hinge_loss",
    "hinge_loss_backward_pred",
    "hinge_loss_backward_target",
    "kl_div",
    "kl_div_backward_pred",
    "kl_div_backward_target",
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>()), ("Elems", size_of::<Elems>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Elems {
    n: u32,
    delta: f32,
    _pad: [u32; 2],
}

/// Per-row cross-entropy or NLL of `[N,C]` scores, or its gradient when `dy` is given;
/// `entry` names which, and `reads_scores` is false for NLL's gradient, which depends on the
/// labels alone (the scores only give its shape).
pub fn per_sample(
    gpu: &Gpu,
    (entry, reads_scores): (&'static str, bool),
    scores: &B<'_>,
    labels: &B<'_>,
    dy: Option<&B<'_>>,
    out: &B<'_>,
) -> Result<Dispatch> {
    let dims = scores.shape.dims();
    let params = Params { rows: dims[0] as u32, classes: dims[1] as u32, _pad: [0; 2] };
    crate::check_loops(gpu, entry, 3 * dims[1], &[scores.shape])?;

    let mut bindings = vec![(2, labels.buffer), (4, out.buffer)];
    bindings.extend(dy.map(|dy| (3, dy.buffer)));
    if reads_scores {
        bindings.push((1, scores.buffer));
    }
    let launch = Launch {
        shader: LOSS,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, dims[0]),
    };
    launch.build(gpu)
}

/// An elementwise loss of `kind`, or its gradient with respect to pred or target when `dy`
/// is given (`entry` names which).
pub fn elementwise(
    gpu: &Gpu,
    entry: &'static str,
    kind: LossKind,
    pred: &B<'_>,
    target: &B<'_>,
    dy: Option<&B<'_>>,
    out: &B<'_>,
) -> Result<Dispatch> {
    let n = out.shape.numel();
    let params = Elems { n: n as u32, delta: kind.parameter(), _pad: [0; 2] };
    let mut bindings = vec![(1, pred.buffer), (2, target.buffer), (4, out.buffer)];
    bindings.extend(dy.map(|dy| (3, dy.buffer)));
    let launch = Launch {
        shader: LOSS,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
