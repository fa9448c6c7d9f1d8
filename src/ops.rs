//! Builds one operator of the golden format (`../shared/golden/FORMAT.md`) as graph nodes,
//! from named inputs and JSON attributes. Composite ops (linear, losses) are built from
//! primitive nodes, so their gradients come from autodiff like any model's.

use std::collections::BTreeMap;

use kiln_core::{Adam, Error, Result, Sgd, Shape};
use kiln_graph::{Graph, Value};
use serde_json::Value as Json;

/// The operators `build_op` knows, in FORMAT.md's names.
pub const SUPPORTED_OPS: &[&str] = &[
    "matmul",
    "linear",
    "add",
    "sub",
    "mul",
    "div",
    "sum",
    "mean",
    "reshape",
    "transpose",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "mse_loss",
    "sgd_step",
    "adam_step",
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
    match op {
        "matmul" => y(g.matmul(x("a")?, x("b")?)?),
        "linear" => y(g.linear(x("x")?, x("w")?, x("b")?)?),
        "add" => y(g.add(x("a")?, x("b")?)?),
        "sub" => y(g.sub(x("a")?, x("b")?)?),
        "mul" => y(g.mul(x("a")?, x("b")?)?),
        "div" => y(g.div(x("a")?, x("b")?)?),
        "sum" => y(g.sum(x("x")?, &a.ints("axes")?, a.bool("keepdims")?)?),
        "mean" => y(g.mean(x("x")?, &a.ints("axes")?, a.bool("keepdims")?)?),
        "reshape" => y(g.reshape(x("x")?, Shape::new(a.dims("shape")?))?),
        "transpose" => y(g.transpose(x("x")?, &a.dims("perm")?)?),
        "relu" => y(g.relu(x("x")?)?),
        "sigmoid" => y(g.sigmoid(x("x")?)?),
        "tanh" => y(g.tanh(x("x")?)?),
        "softmax" => y(g.softmax(x("x")?, a.int("axis")?)?),
        "log_softmax" => y(g.log_softmax(x("x")?, a.int("axis")?)?),
        "cross_entropy" => loss(g.cross_entropy(x("logits")?, x("labels")?)?),
        "mse_loss" => loss(g.mse_loss(x("pred")?, x("target")?)?),
        "sgd_step" => {
            let s = Sgd { lr: a.f32("lr")?, momentum: a.f32("momentum")?, weight_decay: a.f32("weight_decay")? };
            g.sgd_step(x("param")?, x("grad")?, x("momentum_buf")?, s)?;
            Ok(BTreeMap::from([("param".into(), x("param")?), ("momentum_buf".into(), x("momentum_buf")?)]))
        }
        "adam_step" => {
            let step = u32::try_from(a.int("step")?)
                .map_err(|_| Error::attribute(op, "`step` must be a positive 32-bit integer"))?;
            let adam = Adam {
                lr: a.f32("lr")?,
                beta1: a.f32("beta1")?,
                beta2: a.f32("beta2")?,
                eps: a.f32("eps")?,
                weight_decay: a.f32("weight_decay")?,
                step,
            };
            g.adam_step(x("param")?, x("grad")?, x("m")?, x("v")?, adam)?;
            Ok(BTreeMap::from([("param".into(), x("param")?), ("m".into(), x("m")?), ("v".into(), x("v")?)]))
        }
        other => Err(Error::Unsupported(format!("operator `{other}` is not implemented"))),
    }
}
