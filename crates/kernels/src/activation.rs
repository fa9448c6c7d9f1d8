use bytemuck::{Pod, Zeroable};
use kiln_core::{Activation, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{ACTIVATION, B, Launch, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "relu",
    "relu_backward",
    "relu_x4",
    "relu_backward_x4",
    "sigmoid_x4",
    "sigmoid_backward_x4",
    "tanh_forward_x4",
    "tanh_backward_x4",
    "gelu_tanh_x4",
    "gelu_tanh_backward_x4",
    "leaky_relu_x4",
    "leaky_relu_backward_x4",
    "sigmoid",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "elu",
    "elu_backward",
    "gelu",
    "gelu_backward",
    "gelu_tanh",
    "gelu_tanh_backward",
    "silu",
    "silu_backward",
    "softplus",
    "softplus_backward",
    "step_forward",
    "step_backward",
    "prelu",
    "prelu_backward_input",
    "prelu_backward_alpha",
];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    a: f32,
    inner: u32,
    channels: u32,
}

/// WGSL's builtins `tanh` and `step` cannot be shadowed, so those forward entry points are
/// `tanh_forward` and `step_forward`.
fn entry(a: &Activation, backward: bool) -> &'static str {
    match (a, backward) {
        (Activation::Tanh, false) => "tanh_forward",
        (Activation::Step, false) => "step_forward",
        (_, false) => a.name(),
        (_, true) => a.backward_name(),
    }
}

fn launch(
    gpu: &Gpu,
    entry: &'static str,
    params: Params,
    bindings: Vec<(u32, &kiln_gpu::GpuBuffer)>,
    n: usize,
) -> Result<Dispatch> {
    let launch = Launch {
        shader: ACTIVATION,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups: grid_1d(gpu, n),
    };
    launch.build(gpu)
}

/// The four-element form of an entry point, where it has one.
fn four_wide(entry: &str) -> Option<&'static str> {
    match entry {
        "relu" => Some("relu_x4"),
        "relu_backward" => Some("relu_backward_x4"),
        "sigmoid" => Some("sigmoid_x4"),
        "sigmoid_backward" => Some("sigmoid_backward_x4"),
        "tanh_forward" => Some("tanh_forward_x4"),
        "tanh_backward" => Some("tanh_backward_x4"),
        "gelu_tanh" => Some("gelu_tanh_x4"),
        "gelu_tanh_backward" => Some("gelu_tanh_backward_x4"),
        "leaky_relu" => Some("leaky_relu_x4"),
        "leaky_relu_backward" => Some("leaky_relu_backward_x4"),
        _ => None,
    }
}

/// `out = f(x)` forward, or `out = f'(saved)·dy` backward when `dy` is given; four elements per
/// invocation where the activation has that form and the elements are whole fours.
pub fn activation(gpu: &Gpu, a: &Activation, x: &B<'_>, dy: Option<&B<'_>>, out: &B<'_>) -> Result<Dispatch> {
    let n = out.shape.numel();
    let entry = entry(a, dy.is_some());
    let (entry, n) = match four_wide(entry) {
        Some(four) if n.is_multiple_of(4) => (four, n / 4),
        _ => (entry, n),
    };
    let params = Params { n: n as u32, a: a.parameter(), inner: 1, channels: 1 };
    let mut bindings = vec![(1, x.buffer), (3, out.buffer)];
    bindings.extend(dy.map(|dy| (2, dy.buffer)));
    launch(gpu, entry, params, bindings, n)
}

/// The channel layout of `x [N,C,…]`.
fn prelu_params(x: &B<'_>) -> Params {
    let dims = x.shape.dims();
    let inner = dims[2..].iter().product::<usize>();
    Params { n: x.shape.numel() as u32, a: 0.0, inner: inner as u32, channels: dims[1] as u32 }
}

pub fn prelu(gpu: &Gpu, x: &B<'_>, alpha: &B<'_>, out: &B<'_>) -> Result<Dispatch> {
    let bindings = vec![(1, x.buffer), (3, out.buffer), (4, alpha.buffer)];
    launch(gpu, "prelu", prelu_params(x), bindings, x.shape.numel())
}

pub fn prelu_backward_input(gpu: &Gpu, x: &B<'_>, alpha: &B<'_>, dy: &B<'_>, out: &B<'_>) -> Result<Dispatch> {
    let bindings = vec![(1, x.buffer), (2, dy.buffer), (3, out.buffer), (4, alpha.buffer)];
    launch(gpu, "prelu_backward_input", prelu_params(x), bindings, x.shape.numel())
}

/// One workgroup per channel.
pub fn prelu_backward_alpha(gpu: &Gpu, x: &B<'_>, dy: &B<'_>, out: &B<'_>) -> Result<Dispatch> {
    let params = prelu_params(x);
    let strided = (params.n / params.channels).div_ceil(64) as usize;
    crate::check_loops(gpu, "prelu_backward_alpha", strided + 1 + 7, &[x.shape])?;
    let launch = Launch {
        shader: ACTIVATION,
        entry: "prelu_backward_alpha",
        constants: vec![],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, x.buffer), (2, dy.buffer), (3, out.buffer)],
        workgroups: [params.channels, 1, 1],
    };
    launch.build(gpu)
}
