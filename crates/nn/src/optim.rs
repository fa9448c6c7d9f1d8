//! Optimizers as graph rewrites: the backward pass, then one in-place update per parameter,
//! its state held in the parameter store under the parameter's name. Groups of parameters
//! may each have their own optimizer; parameters in no group stay frozen. A step may also be
//! split at the gradient: one program leaves the gradients in the store (`<param>.grad`),
//! the caller may transform them (accumulate, all-reduce), and another applies them.
//!
//! ```
//! use kiln_core::{Adam, Sgd};
//! use kiln_nn::{Optimizer, ParamGroup, minimize, mlp};
//! # fn main() -> kiln_core::Result<()> {
//! let mut model = mlp(16, &[784, 100, 10], 1)?;
//! // The hidden layer frozen; the output layer trained by Adam, its bias by SGD.
//! let [_, _, weight, bias] = model.params[..] else { unreachable!() };
//! let groups = [
//!     ParamGroup { params: vec![weight], optimizer: Optimizer::Adam(Adam::new(2e-4)) },
//!     ParamGroup { params: vec![bias], optimizer: Optimizer::Sgd(Sgd::new(0.1, 0.0, 0.0)) },
//! ];
//! minimize(&mut model.graph, model.loss, &groups, Some(1.0))?;
//! # Ok(()) }
//! ```

use kiln_core::{Adagrad, Adam, Error, HostTensor, LossScale, Op, Precision, Result, Rmsprop, Sgd};
use kiln_graph::{Graph, Value, grad, grad_with};

/// The store variables of dynamic loss scaling: the scale, and the finite steps since it last
/// changed.
pub const LOSS_SCALE: &str = "loss_scale";
pub const LOSS_SCALE_GOOD_STEPS: &str = "loss_scale.good_steps";

/// An optimizer and its hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
    Adagrad(Adagrad),
    Rmsprop(Rmsprop),
}

impl Optimizer {
    /// Appends the in-place update of `param` by `grad`, with the optimizer's state as
    /// zero-initialised variables named after the parameter (`<param>.momentum_buf`,
    /// `<param>.m` and `<param>.v`, `<param>.sum_sq`, `<param>.sq_avg`). Its step count is the
    /// store counter `<param>.step`.
    pub fn update(&self, g: &mut Graph, param: Value, grad: Value) -> Result<Value> {
        self.update_scaled(g, param, grad, None)
    }

    /// `update` by `factor·grad` where a scalar `factor` is given, skipped where it is 0.
    pub fn update_scaled(&self, g: &mut Graph, param: Value, grad: Value, factor: Option<Value>) -> Result<Value> {
        let shape = g.shape(param).clone();
        let name = g.node(param).name.clone();
        let mut state = |suffix: &str| g.variable(&format!("{name}.{suffix}"), shape.clone());
        let (op, state) = match *self {
            Optimizer::Sgd(s) => (Op::SgdStep(s), vec![state("momentum_buf")]),
            Optimizer::Adam(a) => (Op::AdamStep(a), vec![state("m"), state("v")]),
            Optimizer::Adagrad(a) => (Op::AdagradStep(a), vec![state("sum_sq")]),
            Optimizer::Rmsprop(r) => (Op::RmspropStep(r), vec![state("sq_avg")]),
        };
        let inputs: Vec<Value> = [param, grad].into_iter().chain(state).chain(factor).collect();
        g.push(op, &inputs)
    }
}

/// Parameters trained by one optimizer.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub params: Vec<Value>,
    pub optimizer: Optimizer,
}

/// Appends the backward pass of `loss` and, for every group, one in-place update of each of
/// its parameters by its optimizer; with `clip_norm`, the gradients are first scaled down
/// together to that global norm where longer (PyTorch's `clip_grad_norm_`). Parameters in no
/// group are frozen: no gradient is computed for them and they never change. A parameter in two
/// groups is refused.
pub fn minimize(g: &mut Graph, loss: Value, groups: &[ParamGroup], clip_norm: Option<f32>) -> Result<()> {
    minimize_with(g, loss, groups, clip_norm, None)
}

/// `minimize` with dynamic loss scaling, for graphs of `Precision::Mixed`: the gradients are
/// taken of `loss` times the store variable `loss_scale` (so that small ones survive products
/// of binary16 operands), unscaled inside each update, and a step whose gradients are not all
/// finite changes no parameter and halves the scale (`LossScale`'s rules). The optimizers'
/// step counts advance on a skipped step too.
pub fn minimize_scaled(
    g: &mut Graph,
    loss: Value,
    groups: &[ParamGroup],
    clip_norm: Option<f32>,
    scaling: LossScale,
) -> Result<()> {
    minimize_with(g, loss, groups, clip_norm, Some(scaling))
}

/// `minimize` for a graph of `precision`: `minimize_scaled` with the default `LossScale`
/// under `Precision::Mixed`.
pub fn minimize_in(
    g: &mut Graph,
    loss: Value,
    groups: &[ParamGroup],
    clip_norm: Option<f32>,
    precision: Precision,
) -> Result<()> {
    let scaling = match precision {
        Precision::F32 => None,
        Precision::Mixed => Some(LossScale::default()),
    };
    minimize_with(g, loss, groups, clip_norm, scaling)
}

fn minimize_with(
    g: &mut Graph,
    loss: Value,
    groups: &[ParamGroup],
    clip_norm: Option<f32>,
    scaling: Option<LossScale>,
) -> Result<()> {
    let params = distinct_params(g, groups)?;
    let (grads, factor) = match scaling {
        None => {
            let grads = grad(g, loss, &params)?;
            let grads = match clip_norm {
                Some(max_norm) => g.clip_grad_norm(&grads, max_norm)?,
                None => grads,
            };
            (grads, None)
        }
        Some(scaling) => {
            let (grads, factor) = scaled_gradients(g, loss, &params, clip_norm, scaling)?;
            (grads, Some(factor))
        }
    };
    let mut grads = grads.into_iter();
    for group in groups {
        for (&param, grad) in group.params.iter().zip(grads.by_ref()) {
            group.optimizer.update_scaled(g, param, grad, factor)?;
        }
    }
    Ok(())
}

/// The gradients of `loss · loss_scale` and the factor every update multiplies them by: `1/scale`
/// (times the clipping factor of the unscaled gradients, with `clip_norm`) where they are all
/// finite, else 0; and the scale's update after the step.
fn scaled_gradients(
    g: &mut Graph,
    loss: Value,
    params: &[Value],
    clip_norm: Option<f32>,
    scaling: LossScale,
) -> Result<(Vec<Value>, Value)> {
    let shape = g.shape(loss).clone();
    if shape.numel() != 1 {
        return Err(Error::shape("minimize_scaled", "the loss must have one element", "[]", shape));
    }
    let scale = g.variable_init(LOSS_SCALE, HostTensor::f32(shape.clone(), vec![LossScale::INITIAL])?);
    let good_steps = g.variable(LOSS_SCALE_GOOD_STEPS, shape);
    let grads = grad_with(g, &[(loss, scale)], params)?;
    let Some(total) = g.sum_of_squares(&grads)? else {
        return Err(Error::attribute("minimize_scaled", "no parameters to train"));
    };
    let factor = g.push(Op::LossScaleFactor { max_norm: clip_norm }, &[total, scale])?;
    g.push(Op::LossScaleUpdate(scaling), &[scale, good_steps, factor])?;
    Ok((grads, factor))
}

/// Every group's parameters in order, refusing one listed twice.
fn distinct_params(g: &Graph, groups: &[ParamGroup]) -> Result<Vec<Value>> {
    let params: Vec<Value> = groups.iter().flat_map(|group| group.params.iter().copied()).collect();
    for (i, p) in params.iter().enumerate() {
        if params[..i].contains(p) {
            let name = &g.node(*p).name;
            return Err(Error::attribute("minimize", format!("parameter `{name}` is in more than one group")));
        }
    }
    Ok(params)
}

/// The store variable holding the gradient of the parameter named `param`.
pub fn gradient_name(param: &str) -> String {
    format!("{param}.grad")
}

/// What a gradient program does with the store variable `<param>.grad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientSink {
    /// Overwrites it with this run's gradient.
    Assign,
    /// Adds this run's gradient to it (accumulation over micro-batches).
    Accumulate,
}

/// Appends the backward pass of `loss` with respect to `params`, leaving each gradient in the
/// store variable `<param>.grad`; returns those variables.
pub fn store_gradients(g: &mut Graph, loss: Value, params: &[Value], sink: GradientSink) -> Result<Vec<Value>> {
    let grads = grad(g, loss, params)?;
    params
        .iter()
        .zip(grads)
        .map(|(&param, grad)| {
            let name = gradient_name(&g.node(param).name);
            let variable = g.variable(&name, g.shape(param).clone());
            let value = match sink {
                GradientSink::Assign => grad,
                GradientSink::Accumulate => g.add(variable, grad)?,
            };
            g.assign(variable, value)?;
            Ok(variable)
        })
        .collect()
}

/// A graph applying the gradients in `<param>.grad` to the parameters of `groups` (values of
/// `model`), each by its group's optimizer, the gradients first clipped together to
/// `clip_norm` where given: the second half of a step split at the gradient.
pub fn apply_gradients(model: &Graph, groups: &[ParamGroup], clip_norm: Option<f32>) -> Result<Graph> {
    distinct_params(model, groups)?;
    let mut g = Graph::new();
    let mut params = Vec::new();
    let mut grads = Vec::new();
    for &param in groups.iter().flat_map(|group| &group.params) {
        let node = model.node(param);
        params.push(g.variable_like(node));
        grads.push(g.variable(&gradient_name(&node.name), node.shape.clone()));
    }
    let grads = match clip_norm {
        Some(max_norm) => g.clip_grad_norm(&grads, max_norm)?,
        None => grads,
    };
    let mut pairs = params.into_iter().zip(grads);
    for group in groups {
        for (param, grad) in pairs.by_ref().take(group.params.len()) {
            group.optimizer.update(&mut g, param, grad)?;
        }
    }
    Ok(g)
}
