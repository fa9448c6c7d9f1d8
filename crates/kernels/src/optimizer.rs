use bytemuck::{Pod, Zeroable};
use kiln_core::{Adagrad, Adam, Result, Rmsprop, Sgd};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, OPTIMIZER, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "sgd_step",
    "adam_step",
    "adamw_step",
    "adagrad_step",
    "rmsprop_step",
    "clip_factor",
    "sgd_step_x4",
    "adam_step_x4",
    "adamw_step_x4",
    "adagrad_step_x4",
    "rmsprop_step_x4",
];
pub const PARAMS: &[(&str, usize)] = &[
    ("Sgd", size_of::<SgdParams>()),
    ("Adam", size_of::<AdamParams>()),
    ("Squares", size_of::<SquaresParams>()),
    ("Clip", size_of::<ClipParams>()),
];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    c1: f32,
    c2: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SquaresParams {
    n: u32,
    lr: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ClipParams {
    max_norm: f32,
    _pad: [u32; 3],
}

/// The optimizer updates, each with its attributes.
#[derive(Clone, Copy, Debug)]
pub enum Update<'a> {
    Sgd(&'a Sgd),
    Adam(&'a Adam),
    Adagrad(&'a Adagrad),
    Rmsprop(&'a Rmsprop),
}

impl Update<'_> {
    /// The kernel updating `n` elements: a vec4 per invocation where they are whole fours.
    fn entry(self, n: usize) -> &'static str {
        let fours = n.is_multiple_of(4);
        match (self, fours) {
            (Update::Sgd(_), false) => "sgd_step",
            (Update::Sgd(_), true) => "sgd_step_x4",
            (Update::Adam(a), false) if a.decoupled => "adamw_step",
            (Update::Adam(a), true) if a.decoupled => "adamw_step_x4",
            (Update::Adam(_), false) => "adam_step",
            (Update::Adam(_), true) => "adam_step_x4",
            (Update::Adagrad(_), false) => "adagrad_step",
            (Update::Adagrad(_), true) => "adagrad_step_x4",
            (Update::Rmsprop(_), false) => "rmsprop_step",
            (Update::Rmsprop(_), true) => "rmsprop_step_x4",
        }
    }
}

/// The uniform of an optimizer update over `n` elements at its step (its scheduled rate,
/// bias corrections in f64).
pub fn params(update: Update<'_>, n: usize) -> Vec<u8> {
    let n = n as u32;
    match update {
        Update::Sgd(s) => bytes(SgdParams {
            n,
            lr: s.schedule.at(s.lr, s.step) as f32,
            momentum: s.momentum,
            weight_decay: s.weight_decay,
        }),
        Update::Adam(a) => adam_params(a, n),
        Update::Adagrad(a) => squares(n, a.schedule.at(a.lr, a.step), 0.0, a.eps, a.weight_decay),
        Update::Rmsprop(r) => squares(n, r.schedule.at(r.lr, r.step), r.alpha, r.eps, r.weight_decay),
    }
}

fn bytes<T: Pod>(p: T) -> Vec<u8> {
    bytemuck::bytes_of(&p).to_vec()
}

fn adam_params(a: &Adam, n: u32) -> Vec<u8> {
    let t = a.step as i32;
    bytes(AdamParams {
        n,
        lr: a.schedule.at(a.lr, a.step) as f32,
        beta1: a.beta1,
        beta2: a.beta2,
        eps: a.eps,
        weight_decay: a.weight_decay,
        c1: (1.0 - (a.beta1 as f64).powi(t)) as f32,
        c2: (1.0 - (a.beta2 as f64).powi(t)) as f32,
    })
}

fn squares(n: u32, lr: f64, alpha: f32, eps: f32, weight_decay: f32) -> Vec<u8> {
    bytes(SquaresParams { n, lr: lr as f32, alpha, eps, weight_decay, _pad: [0; 3] })
}

/// In place: `inputs` are param, grad, the `state` tensors (bound read-write) and possibly a
/// scalar factor of the gradient (binding 5; 0 skips the update).
pub fn update(gpu: &Gpu, update: Update<'_>, state: usize, inputs: &[B<'_>]) -> Result<Dispatch> {
    let n = inputs[0].shape.numel();
    let params = params(update, n);
    let mut bindings = vec![(1, inputs[1].buffer), (2, inputs[0].buffer)];
    bindings.extend(inputs[2..2 + state].iter().zip(3..).map(|(b, slot)| (slot, b.buffer)));
    let factor = inputs.get(2 + state);
    bindings.push((5, factor.unwrap_or(&inputs[1]).buffer));
    let launch = Launch {
        shader: OPTIMIZER,
        entry: update.entry(n),
        constants: vec![("SCALED", f64::from(u8::from(factor.is_some())))],
        params: &params,
        bindings,
        workgroups: grid_1d(gpu, if n.is_multiple_of(4) { n / 4 } else { n }),
    };
    launch.build(gpu)
}

/// `factor = min(1, max_norm / (√Σg² + 1e-6))` from the scalar `sum_sq`.
pub fn clip_factor(gpu: &Gpu, max_norm: f32, sum_sq: &B<'_>, factor: &B<'_>) -> Result<Dispatch> {
    let params = bytes(ClipParams { max_norm, _pad: [0; 3] });
    let launch = Launch {
        shader: OPTIMIZER,
        entry: "clip_factor",
        constants: vec![],
        params: &params,
        bindings: vec![(1, sum_sq.buffer), (2, factor.buffer)],
        workgroups: [1, 1, 1],
    };
    launch.build(gpu)
}
