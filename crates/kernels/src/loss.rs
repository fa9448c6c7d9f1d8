use bytemuck::{Pod, Zeroable};
use kiln_core::{LossKind, Result, Shape};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer};

use crate::softmax::{RowStats, Rows};
use crate::{B, GpuKernel, LOSS, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "cross_entropy_per_sample",
    "cross_entropy_per_sample_backward",
    "nll_per_sample",
    "nll_per_sample_backward",
    "cross_entropy_from_stats",
    "cross_entropy_backward_from_stats",
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
    stats_offset: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Elems {
    n: u32,
    delta: f32,
    _pad: [u32; 2],
}

/// The per-sample losses of `[N,C]` scores with labels, and their gradients.
#[derive(Clone, Copy, Debug)]
pub enum PerSample {
    CrossEntropy,
    CrossEntropyBackward,
    Nll,
    NllBackward,
}

impl PerSample {
    /// The entry point, and the loop passes per class of its one-invocation-per-row kernel
    /// (cross-entropy loops over a row twice for its log-sum-exp, its gradient once more).
    fn entry(self) -> (&'static str, usize) {
        match self {
            PerSample::CrossEntropy => ("cross_entropy_per_sample", 2),
            PerSample::CrossEntropyBackward => ("cross_entropy_per_sample_backward", 3),
            PerSample::Nll => ("nll_per_sample", 0),
            PerSample::NllBackward => ("nll_per_sample_backward", 0),
        }
    }

    /// The kernel of a row too long for one invocation, reading chunked statistics.
    fn chunked_entry(self) -> Option<&'static str> {
        match self {
            PerSample::CrossEntropy => Some("cross_entropy_from_stats"),
            PerSample::CrossEntropyBackward => Some("cross_entropy_backward_from_stats"),
            PerSample::Nll | PerSample::NllBackward => None,
        }
    }

    /// Whether it writes a `[N,C]` gradient, one invocation per element.
    fn per_element(self) -> bool {
        match self {
            PerSample::CrossEntropyBackward | PerSample::NllBackward => true,
            PerSample::CrossEntropy | PerSample::Nll => false,
        }
    }

    /// NLL's gradient depends on the labels alone (the scores only give its shape).
    fn reads_scores(self) -> bool {
        match self {
            PerSample::CrossEntropy | PerSample::CrossEntropyBackward | PerSample::Nll => true,
            PerSample::NllBackward => false,
        }
    }

    fn rows(self, gpu: &Gpu, scores: &Shape) -> Option<Rows> {
        let (_, passes) = self.entry();
        self.chunked_entry().map(|_| Rows::of(gpu, scores, 1, passes)).filter(|rows| rows.scratch_bytes().is_some())
    }
}

/// The scratch of a per-sample loss: chunked row statistics, for rows past the loop budget.
pub fn scratch(gpu: &Gpu, op: PerSample, scores: &Shape) -> Vec<u64> {
    op.rows(gpu, scores).and_then(|rows| rows.scratch_bytes()).into_iter().collect()
}

/// Per-row cross-entropy or NLL of `[N,C]` scores, or its gradient when `dy` is given.
pub fn per_sample(
    gpu: &Gpu,
    op: PerSample,
    [scores, labels]: [&B<'_>; 2],
    dy: Option<&B<'_>>,
    out: &B<'_>,
    scratch: &[&GpuBuffer],
) -> Result<GpuKernel> {
    let dims = scores.shape.dims();
    let (entry, passes) = op.entry();
    let mut params = Params { rows: dims[0] as u32, classes: dims[1] as u32, stats_offset: 0, _pad: 0 };
    let mut bindings = vec![(2, labels.buffer), (4, out.buffer)];
    bindings.extend(dy.map(|dy| (3, dy.buffer)));
    if op.reads_scores() {
        bindings.push((1, scores.buffer));
    }
    let count = if op.per_element() { dims[0] * dims[1] } else { dims[0] };
    let build = |entry, params: &Params, bindings| {
        let launch = Launch {
            shader: LOSS,
            entry,
            constants: vec![],
            params: bytemuck::bytes_of(params),
            bindings,
            workgroups: grid_1d(gpu, count),
        };
        launch.build(gpu)
    };
    let (Some(rows), Some(from_stats)) = (op.rows(gpu, scores.shape), op.chunked_entry()) else {
        crate::check_loops(gpu, entry, passes * (dims[1] + 1), &[scores.shape])?;
        return build(entry, &params, bindings).map(GpuKernel::from);
    };
    let bytes = rows.scratch_bytes().unwrap_or(0);
    let stats = crate::fits(scratch.first().copied(), bytes, entry)?;
    let statistics =
        rows.statistics(gpu, RowStats::LogSumExp, [scores.buffer, scores.buffer], stats, &[scores.shape])?;
    params.stats_offset = (bytes / 8) as u32 - params.rows;
    bindings.push((5, stats));
    let apply = build(from_stats, &params, bindings)?;
    Ok(GpuKernel::new(statistics.into_iter().chain([apply]).collect()))
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
