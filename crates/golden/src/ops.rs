//! Builds one operator of the golden format (`../shared/golden/FORMAT.md`) as graph nodes,
//! from named inputs and JSON attributes. Composite ops (linear, losses) are built from
//! primitive nodes, so their gradients come from autodiff like any model's.

use std::collections::BTreeMap;

use kiln_core::{
    Activation, Adagrad, Adam, Conv2d, Error, LossKind, LrSchedule, Op, Pool2d, PoolKind, Result, Rmsprop, Sgd, Shape,
};
use kiln_graph::{Graph, Value};
use serde_json::Value as Json;

/// The operators `build_op` knows: every operator of FORMAT.md, and Kiln's own `round_half`
/// (cases in tests/golden_awkward).
pub const SUPPORTED_OPS: &[&str] = &[
    "matmul",
    "linear",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "min_pool2d",
    "avg_pool2d",
    "lp_pool2d",
    "global_avg_pool2d",
    "softmax",
    "log_softmax",
    "relu",
    "sigmoid",
    "tanh",
    "silu",
    "softplus",
    "identity",
    "round_half",
    "leaky_relu",
    "elu",
    "gelu",
    "prelu",
    "add",
    "sub",
    "mul",
    "div",
    "sum",
    "mean",
    "max",
    "reshape",
    "transpose",
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "cross_entropy",
    "nll_loss",
    "bce_loss",
    "bce_with_logits",
    "hinge_loss",
    "kl_div",
    "batch_norm",
    "layer_norm",
    "embedding",
    "lstm_cell",
    "gru_cell",
    "attention",
    "sgd_step",
    "adam_step",
    "adamw_step",
    "adagrad_step",
    "rmsprop_step",
];

struct Attrs<'a> {
    op: &'a str,
    json: &'a Json,
}

impl Attrs<'_> {
    fn get(&self, key: &str) -> Result<&Json> {
        self.json.get(key).ok_or_else(|| Error::attribute(self.op, format!("missing attribute `{key}`")))
    }

    fn f32(&self, key: &str) -> Result<f32> {
        let v = self.get(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| Error::attribute(self.op, format!("`{key}` must be a number, got {v}")))
    }

    fn int(&self, key: &str) -> Result<i64> {
        let v = self.get(key)?;
        v.as_i64().ok_or_else(|| Error::attribute(self.op, format!("`{key}` must be an integer, got {v}")))
    }

    fn bool(&self, key: &str) -> Result<bool> {
        let v = self.get(key)?;
        v.as_bool().ok_or_else(|| Error::attribute(self.op, format!("`{key}` must be a boolean, got {v}")))
    }

    fn ints(&self, key: &str) -> Result<Vec<i64>> {
        let v = self.get(key)?;
        let list = v.as_array().and_then(|a| a.iter().map(Json::as_i64).collect::<Option<Vec<_>>>());
        list.ok_or_else(|| Error::attribute(self.op, format!("`{key}` must be a list of integers, got {v}")))
    }

    fn pair(&self, key: &str) -> Result<[usize; 2]> {
        match self.dims(key)?.as_slice() {
            &[a, b] => Ok([a, b]),
            other => Err(Error::attribute(self.op, format!("`{key}` must list two integers, got {other:?}"))),
        }
    }

    fn string(&self, key: &str) -> Result<&str> {
        let v = self.get(key)?;
        v.as_str().ok_or_else(|| Error::attribute(self.op, format!("`{key}` must be a string, got {v}")))
    }

    fn conv(&self) -> Result<Conv2d> {
        let groups = usize::try_from(self.int("groups")?)
            .map_err(|_| Error::attribute(self.op, "`groups` must be a positive integer"))?;
        Ok(Conv2d {
            stride: self.pair("stride")?,
            padding: self.pair("padding")?,
            dilation: self.pair("dilation")?,
            groups,
        })
    }

    fn pool(&self, kind: PoolKind) -> Result<Pool2d> {
        let padding = if self.json.get("padding").is_some() { self.pair("padding")? } else { [0, 0] };
        Ok(Pool2d { kind, kernel: self.pair("kernel")?, stride: self.pair("stride")?, padding })
    }

    fn step(&self) -> Result<u32> {
        u32::try_from(self.int("step")?)
            .map_err(|_| Error::attribute(self.op, "`step` must be a positive 32-bit integer"))
    }

    fn dims(&self, key: &str) -> Result<Vec<usize>> {
        self.ints(key)?
            .into_iter()
            .map(|d| {
                usize::try_from(d).map_err(|_| Error::attribute(self.op, format!("`{key}` has negative entry {d}")))
            })
            .collect()
    }
}

/// Appends `op` to `g` on `inputs` and returns its outputs by name. Optimizer steps update
/// their variables in place, so their outputs are those variables.
pub fn build_op(
    g: &mut Graph,
    op: &str,
    attrs: &Json,
    inputs: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>> {
    let a = Attrs { op, json: attrs };
    let x =
        |name: &str| inputs.get(name).copied().ok_or_else(|| Error::attribute(op, format!("missing input `{name}`")));
    let y = |v: Value| Ok(BTreeMap::from([("y".to_string(), v)]));
    let loss = |v: Value| Ok(BTreeMap::from([("loss".to_string(), v)]));
    let pointwise = |g: &mut Graph, kind: LossKind, pred: &str| g.pointwise_loss(kind, x(pred)?, x("target")?);
    let bias = || if a.bool("bias")? { x("b").map(Some) } else { Ok(None) };
    match op {
        "matmul" => y(g.matmul(x("a")?, x("b")?)?),
        "linear" => y(g.linear(x("x")?, x("w")?, x("b")?)?),
        "conv2d" => y(g.conv2d(x("x")?, x("w")?, bias()?, a.conv()?)?),
        "conv_transpose2d" => y(g.conv_transpose2d(x("x")?, x("w")?, bias()?, a.conv()?, a.pair("output_padding")?)?),
        "max_pool2d" => y(g.pool2d(x("x")?, a.pool(PoolKind::Max)?)?),
        "min_pool2d" => y(g.pool2d(x("x")?, a.pool(PoolKind::Min)?)?),
        "avg_pool2d" => {
            let kind = PoolKind::Avg { count_include_pad: a.bool("count_include_pad")? };
            y(g.pool2d(x("x")?, a.pool(kind)?)?)
        }
        "lp_pool2d" => y(g.pool2d(x("x")?, a.pool(PoolKind::Lp { p: a.f32("p")? })?)?),
        "global_avg_pool2d" => y(g.global_avg_pool2d(x("x")?)?),
        "softmax" => y(g.softmax(x("x")?, a.int("axis")?)?),
        "log_softmax" => y(g.log_softmax(x("x")?, a.int("axis")?)?),
        "relu" => y(g.relu(x("x")?)?),
        "sigmoid" => y(g.sigmoid(x("x")?)?),
        "tanh" => y(g.tanh(x("x")?)?),
        "silu" => y(g.activation(x("x")?, Activation::Silu)?),
        "softplus" => y(g.activation(x("x")?, Activation::Softplus)?),
        "identity" => y(g.identity(x("x")?)?),
        "round_half" => y(g.push(Op::RoundHalf, &[x("x")?])?),
        "leaky_relu" => y(g.activation(x("x")?, Activation::LeakyRelu { negative_slope: a.f32("negative_slope")? })?),
        "elu" => y(g.activation(x("x")?, Activation::Elu { alpha: a.f32("alpha")? })?),
        "gelu" => {
            let tanh = match a.string("approximate")? {
                "none" => false,
                "tanh" => true,
                other => {
                    return Err(Error::attribute(
                        op,
                        format!("`approximate` must be \"none\" or \"tanh\", got {other:?}"),
                    ));
                }
            };
            y(g.activation(x("x")?, Activation::Gelu { tanh })?)
        }
        "prelu" => y(g.prelu(x("x")?, x("alpha")?)?),
        "add" => y(g.add(x("a")?, x("b")?)?),
        "sub" => y(g.sub(x("a")?, x("b")?)?),
        "mul" => y(g.mul(x("a")?, x("b")?)?),
        "div" => y(g.div(x("a")?, x("b")?)?),
        "sum" => y(g.sum(x("x")?, &a.ints("axes")?, a.bool("keepdims")?)?),
        "mean" => y(g.mean(x("x")?, &a.ints("axes")?, a.bool("keepdims")?)?),
        "max" => y(g.max(x("x")?, &a.ints("axes")?, a.bool("keepdims")?)?),
        "reshape" => y(g.reshape(x("x")?, Shape::new(a.dims("shape")?))?),
        "transpose" => y(g.transpose(x("x")?, &a.dims("perm")?)?),
        "mse_loss" => loss(g.mse_loss(x("pred")?, x("target")?)?),
        "l1_loss" => loss(pointwise(g, LossKind::L1, "pred")?),
        "huber_loss" => loss(pointwise(g, LossKind::Huber { delta: a.f32("delta")? }, "pred")?),
        "cross_entropy" => loss(g.cross_entropy(x("logits")?, x("labels")?)?),
        "nll_loss" => loss(g.nll_loss(x("logp")?, x("labels")?)?),
        "bce_loss" => loss(pointwise(g, LossKind::Bce, "p")?),
        "bce_with_logits" => loss(pointwise(g, LossKind::BceWithLogits, "logits")?),
        "hinge_loss" => loss(pointwise(g, LossKind::Hinge, "pred")?),
        "kl_div" => loss(g.kl_div(x("logp")?, x("target")?)?),
        "batch_norm" => y(g.batch_norm(x("x")?, x("gamma")?, x("beta")?, a.f32("eps")?)?.0),
        "layer_norm" => y(g.layer_norm(x("x")?, x("gamma")?, x("beta")?, a.f32("eps")?)?),
        "embedding" => y(g.embedding(x("table")?, x("ids")?)?),
        "lstm_cell" => {
            let (h, c) = g.lstm_cell(x("x")?, x("h")?, x("c")?, x("w_ih")?, x("w_hh")?, x("b_ih")?, x("b_hh")?)?;
            Ok(BTreeMap::from([("h_next".to_string(), h), ("c_next".to_string(), c)]))
        }
        "gru_cell" => {
            let h = g.gru_cell(x("x")?, x("h")?, x("w_ih")?, x("w_hh")?, x("b_ih")?, x("b_hh")?)?;
            Ok(BTreeMap::from([("h_next".to_string(), h)]))
        }
        "attention" => y(g.attention(x("q")?, x("k")?, x("v")?, a.bool("causal")?)?),
        "sgd_step" => {
            let s = Sgd::new(a.f32("lr")?, a.f32("momentum")?, a.f32("weight_decay")?);
            g.sgd_step(x("param")?, x("grad")?, x("momentum_buf")?, s)?;
            updated(&[("param", x("param")?), ("momentum_buf", x("momentum_buf")?)])
        }
        "adam_step" | "adamw_step" => {
            let adam = Adam {
                lr: a.f32("lr")?,
                beta1: a.f32("beta1")?,
                beta2: a.f32("beta2")?,
                eps: a.f32("eps")?,
                weight_decay: a.f32("weight_decay")?,
                decoupled: op == "adamw_step",
                schedule: LrSchedule::Constant,
                step: a.step()?,
            };
            g.adam_step(x("param")?, x("grad")?, x("m")?, x("v")?, adam)?;
            updated(&[("param", x("param")?), ("m", x("m")?), ("v", x("v")?)])
        }
        "adagrad_step" => {
            let rule = Adagrad {
                lr: a.f32("lr")?,
                eps: a.f32("eps")?,
                weight_decay: a.f32("weight_decay")?,
                schedule: LrSchedule::Constant,
                step: 1,
            };
            g.adagrad_step(x("param")?, x("grad")?, x("sum_sq")?, rule)?;
            updated(&[("param", x("param")?), ("sum_sq", x("sum_sq")?)])
        }
        "rmsprop_step" => {
            let rule = Rmsprop {
                lr: a.f32("lr")?,
                alpha: a.f32("alpha")?,
                eps: a.f32("eps")?,
                weight_decay: a.f32("weight_decay")?,
                schedule: LrSchedule::Constant,
                step: 1,
            };
            g.rmsprop_step(x("param")?, x("grad")?, x("sq_avg")?, rule)?;
            updated(&[("param", x("param")?), ("sq_avg", x("sq_avg")?)])
        }
        other => Err(Error::Unsupported(format!("operator `{other}` is not implemented"))),
    }
}

fn updated(pairs: &[(&str, Value)]) -> Result<BTreeMap<String, Value>> {
    Ok(pairs.iter().map(|&(name, v)| (name.to_string(), v)).collect())
}
