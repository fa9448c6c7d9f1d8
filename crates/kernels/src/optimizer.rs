use bytemuck::{Pod, Zeroable};
use kiln_core::{Adam, Result, Sgd};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, OPTIMIZER, grid_1d};

pub const ENTRY_POINTS: &[&str] = &["sgd_step", "adam_step"];
pub const PARAMS: &[(&str, usize)] = &[("Sgd", size_of::<SgdParams>()), ("Adam", size_of::<AdamParams>())];

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

/// In place: `inputs` are param, grad, state…; the state (all but grad) is bound read-write.
fn update(gpu: &Gpu, entry: &'static str, params: &[u8], inputs: &[B<'_>]) -> Result<Dispatch> {
    let mut bindings = vec![(1, inputs[1].buffer), (2, inputs[0].buffer)];
    bindings.extend(inputs[2..].iter().zip(3..).map(|(b, slot)| (slot, b.buffer)));
    let launch = Launch {
        shader: OPTIMIZER,
        entry,
        constants: vec![],
        params,
        bindings,
        workgroups: grid_1d(gpu, inputs[0].shape.numel()),
    };
    launch.build(gpu)
}

pub fn sgd_step(gpu: &Gpu, s: &Sgd, inputs: &[B<'_>]) -> Result<Dispatch> {
    update(gpu, "sgd_step", &sgd_params(s, inputs[0].shape.numel()), inputs)
}

pub fn adam_step(gpu: &Gpu, a: &Adam, inputs: &[B<'_>]) -> Result<Dispatch> {
    update(gpu, "adam_step", &adam_params(a, inputs[0].shape.numel()), inputs)
}

pub fn sgd_params(s: &Sgd, n: usize) -> Vec<u8> {
    let p = SgdParams { n: n as u32, lr: s.lr, momentum: s.momentum, weight_decay: s.weight_decay };
    bytemuck::bytes_of(&p).to_vec()
}

/// Adam's uniform for step `a.step`, bias corrections computed in f64.
pub fn adam_params(a: &Adam, n: usize) -> Vec<u8> {
    let t = a.step as i32;
    let p = AdamParams {
        n: n as u32,
        lr: a.lr,
        beta1: a.beta1,
        beta2: a.beta2,
        eps: a.eps,
        weight_decay: a.weight_decay,
        c1: (1.0 - (a.beta1 as f64).powi(t)) as f32,
        c2: (1.0 - (a.beta2 as f64).powi(t)) as f32,
    };
    bytemuck::bytes_of(&p).to_vec()
}
