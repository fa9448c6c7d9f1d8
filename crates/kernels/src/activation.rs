use bytemuck::{Pod, Zeroable};
use kiln_core::{Op, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{ACTIVATION, B, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] =
    &["relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh_forward", "tanh_backward"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// WGSL's builtin `tanh` cannot be shadowed, so the forward entry point is `tanh_forward`.
fn entry(op: &Op) -> &'static str {
    match op {
        Op::Relu => "relu",
        Op::ReluBackward => "relu_backward",
        Op::Sigmoid => "sigmoid",
        Op::SigmoidBackward => "sigmoid_backward",
        Op::TanhBackward => "tanh_backward",
        _ => "tanh_forward",
    }
}

/// `out = f(x)` forward, or `out = f'(saved)·dy` backward when `dy` is given.
pub fn activation(gpu: &Gpu, op: &Op, x: &B<'_>, dy: Option<&B<'_>>, out: &B<'_>) -> Result<Dispatch> {
    let n = out.shape.numel();
    let params = Params { n: n as u32, _pad: [0; 3] };
    let mut bindings = vec![(1, x.buffer), (3, out.buffer)];
    bindings.extend(dy.map(|dy| (2, dy.buffer)));
    let launch = Launch {
        shader: ACTIVATION,
        entry: entry(op),
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}
