//! Golden cases (`../shared/golden/FORMAT.md`): one safetensors file per call of one op, with
//! inputs, expected outputs, cotangents and expected input gradients. `check_case` builds the
//! op as a graph, differentiates it, runs it on a backend and compares every tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::{Backend, DType, Error, HostTensor, Result, Shape};
use kiln_graph::{Executor, Graph, Value, grad_with};
use safetensors::SafeTensors;
use serde_json::Value as Json;

use crate::ops::build_op;

/// Pass threshold of FORMAT.md: `‖got - want‖₂ / max(‖want‖₂, 1e-6)`.
pub const TOLERANCE: f64 = 1e-4;

pub struct Case {
    pub path: PathBuf,
    pub op: String,
    pub name: String,
    pub attrs: Json,
    pub grad: bool,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// One failing tensor of a case.
#[derive(Debug)]
pub struct Mismatch {
    pub tensor: String,
    pub problem: String,
}

impl Case {
    pub fn load(path: &Path) -> Result<Case> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { context: path.display().to_string(), source })?;
        Self::from_bytes(path, &bytes)
    }

    /// The case in `bytes`, a safetensors file's, from `path` (named in errors; a URL in a
    /// browser).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Case> {
        let what = path.display().to_string();
        let bad = |m: String| Error::data(&what, m);
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |k: &str| meta.get(k).cloned().ok_or_else(|| bad(format!("metadata has no `{k}`")));
        let attrs = serde_json::from_str(&field("attrs")?).map_err(|e| bad(format!("attrs: {e}")))?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::I32 => DType::I32,
                other => return Err(bad(format!("tensor `{name}` has unsupported dtype {other:?}"))),
            };
            tensors.insert(name, HostTensor::from_bytes(Shape::new(view.shape()), dtype, view.data())?);
        }
        Ok(Case {
            path: path.into(),
            op: field("op")?,
            name: field("case")?,
            attrs,
            grad: field("grad")? == "1",
            tensors,
        })
    }

    /// Tensors under `prefix.` by their short names.
    fn group(&self, prefix: &str) -> impl Iterator<Item = (&str, &HostTensor)> {
        let prefix = format!("{prefix}.");
        self.tensors.iter().filter_map(move |(k, t)| k.strip_prefix(&prefix).map(|name| (name, t)))
    }
}

/// The `*.safetensors` files of `dir`, sorted by name.
pub fn case_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let context = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { context, source })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Every case of `dir`; the first unreadable file is an error.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>> {
    case_paths(dir)?.iter().map(|p| Case::load(p)).collect()
}

/// A case built as a graph: the op, its gradients, and the tensors to compare by name.
pub struct CaseGraph {
    pub graph: Graph,
    /// Index of the first node autodiff added (the graph's forward part ends there).
    pub backward_from: usize,
    pub wanted: Vec<(String, Value)>,
}

/// Builds `case`'s op and, where the case has gradients, their vector-Jacobian products.
pub fn build_case(case: &Case) -> Result<CaseGraph> {
    let mut g = Graph::new();
    let optimizer = case.op.ends_with("_step");
    let inputs: BTreeMap<String, Value> = case
        .group("in")
        .map(|(name, t)| {
            let v =
                if optimizer { g.variable_init(name, t.clone()) } else { g.input(name, t.shape.clone(), t.dtype()) };
            (name.to_string(), v)
        })
        .collect();
    let outputs = build_op(&mut g, &case.op, &case.attrs, &inputs)?;
    let backward_from = g.nodes().len();
    let grads = if case.grad { differentiate(&mut g, case, &outputs, &inputs)? } else { BTreeMap::new() };
    let wanted: Vec<(String, Value)> = outputs
        .iter()
        .map(|(k, &v)| (format!("out.{k}"), v))
        .chain(grads.iter().map(|(k, &v)| (format!("grad_in.{k}"), v)))
        .collect();
    Ok(CaseGraph { graph: g, backward_from, wanted })
}

/// Runs `case` on `backend`; an empty list means it passed.
pub fn check_case<B: Backend>(backend: B, case: &Case) -> Result<Vec<Mismatch>> {
    let (mut exec, wanted, values) = ready_case(backend, case)?;
    let got = exec.run(&values)?;
    Ok(mismatches(case, &wanted, &got))
}

/// `check_case` for a host where nothing may block (a browser's page).
pub async fn check_case_async<B: Backend>(backend: B, case: &Case) -> Result<Vec<Mismatch>> {
    let (mut exec, wanted, values) = ready_case(backend, case)?;
    let got = exec.run_async(&values).await?;
    Ok(mismatches(case, &wanted, &got))
}

/// `case` compiled on `backend` and fed: the executor, the tensors to compare and their values.
type ReadyCase<B> = (Executor<B>, Vec<(String, Value)>, Vec<Value>);

fn ready_case<B: Backend>(backend: B, case: &Case) -> Result<ReadyCase<B>> {
    let CaseGraph { graph: g, wanted, .. } = build_case(case)?;
    let values: Vec<Value> = wanted.iter().map(|(_, v)| *v).collect();
    let exec = Executor::compile(backend, &g, &values)?;
    feed(&exec, &g, case)?;
    Ok((exec, wanted, values))
}

fn mismatches(case: &Case, wanted: &[(String, Value)], got: &[HostTensor]) -> Vec<Mismatch> {
    wanted.iter().zip(got).filter_map(|((name, _), got)| compare(name, case.tensors.get(name), got)).collect()
}

/// Writes the case's inputs and cotangents into the graph's input nodes (variables already
/// hold their initial values).
fn feed<B: Backend>(exec: &Executor<B>, g: &Graph, case: &Case) -> Result<()> {
    for (i, node) in g.nodes().iter().enumerate() {
        if node.op == kiln_core::Op::Input {
            let tensor = case.tensors.get(&node.name).or_else(|| case.tensors.get(&format!("in.{}", node.name)));
            let tensor =
                tensor.ok_or_else(|| Error::data(&case.name, format!("no tensor for input `{}`", node.name)))?;
            exec.set(Value(i), tensor)?;
        }
    }
    Ok(())
}

/// Adds the vector-Jacobian product of the case's cotangents w.r.t. each input with a `grad_in`.
fn differentiate(
    g: &mut Graph,
    case: &Case,
    outputs: &BTreeMap<String, Value>,
    inputs: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>> {
    let mut cotangents = Vec::new();
    for (name, t) in case.group("grad_out") {
        let out = outputs
            .get(name)
            .ok_or_else(|| Error::data(&case.name, format!("cotangent for unknown output `{name}`")))?;
        cotangents.push((*out, g.input(&format!("grad_out.{name}"), t.shape.clone(), t.dtype())));
    }
    let names: Vec<&str> = case.group("grad_in").map(|(n, _)| n).collect();
    let wrt = names
        .iter()
        .map(|n| {
            inputs.get(*n).copied().ok_or_else(|| Error::data(&case.name, format!("gradient for unknown input `{n}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let grads = grad_with(g, &cotangents, &wrt)?;
    Ok(names.into_iter().map(String::from).zip(grads).collect())
}

/// `None` when `got` matches `want` within the tolerance, else what is wrong.
pub fn compare(name: &str, want: Option<&HostTensor>, got: &HostTensor) -> Option<Mismatch> {
    let problem = |p: String| Some(Mismatch { tensor: name.into(), problem: p });
    let Some(want) = want else { return problem("missing from the case".into()) };
    if want.shape != got.shape {
        return problem(format!("shape {} != expected {}", got.shape, want.shape));
    }
    let as_f64 = |t: &HostTensor| -> Vec<f64> {
        match &t.data {
            kiln_core::TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            kiln_core::TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    };
    let (w, g) = (as_f64(want), as_f64(got));
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return problem(format!("the case expects the non-finite value {} at {i}: the case is corrupt", w[i]));
    }
    if let Some(i) = g.iter().position(|v| !v.is_finite()) {
        return problem(format!("non-finite value {} at {i} (expected {})", g[i], w[i]));
    }
    let diff: f64 = w.iter().zip(&g).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = w.iter().map(|a| a * a).sum::<f64>().sqrt();
    let error = diff / norm.max(1e-6);
    (error.is_nan() || error > TOLERANCE)
        .then(|| Mismatch { tensor: name.into(), problem: format!("relative error {error:.3e}") })
}
