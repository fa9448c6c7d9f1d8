//! Checkpoints: every named variable of a training graph (parameters, optimizer state,
//! running statistics) and the run's metadata in one safetensors file, written atomically
//! (temporary file, fsync, rename), so a killed run loses at most the epoch in progress.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kiln_core::{Backend, DType, Error, HostTensor, Result, Shape};
use kiln_graph::{Executor, Graph, Value};
use safetensors::tensor::TensorView;

/// The named variables of `graph` (sources that persist across runs).
pub fn variables(graph: &Graph) -> BTreeMap<String, Value> {
    graph
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op == kiln_core::Op::Variable && !n.name.is_empty())
        .map(|(i, n)| (n.name.clone(), Value(i)))
        .collect()
}

/// Copies every variable `to` shares by name with `from` (a training graph's state into its
/// eval graph, say).
pub fn copy_state<A: Backend, B: Backend>(from: &Executor<A>, to: &Executor<B>) -> Result<()> {
    let (source, target) = (variables(from.graph()), variables(to.graph()));
    let shared: Vec<(&String, Value)> =
        target.iter().filter_map(|(name, &v)| source.get(name).map(|_| (name, v))).collect();
    let values = from.read(&shared.iter().map(|(name, _)| source[*name]).collect::<Vec<_>>())?;
    for ((_, v), tensor) in shared.iter().zip(&values) {
        to.set(*v, tensor)?;
    }
    Ok(())
}

/// A checkpoint's contents: tensors by name, and metadata strings.
pub struct Checkpoint {
    pub tensors: BTreeMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Reads every variable of `exec` into a checkpoint with `metadata`.
    pub fn capture<B: Backend>(exec: &Executor<B>, metadata: HashMap<String, String>) -> Result<Self> {
        let named = variables(exec.graph());
        let values = exec.read(&named.values().copied().collect::<Vec<_>>())?;
        Ok(Checkpoint { tensors: named.into_keys().zip(values).collect(), metadata })
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let dtype = if t.dtype() == DType::F32 { safetensors::Dtype::F32 } else { safetensors::Dtype::I32 };
                (name.clone(), t.to_bytes(), t.shape.dims().to_vec(), dtype)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, data, shape, dtype)| {
                TensorView::new(*dtype, shape.clone(), data).map(|v| (name.clone(), v)).map_err(|e| bad(path, e))
            })
            .collect::<Result<Vec<_>>>()?;
        let file = safetensors::serialize(views, Some(self.metadata.clone())).map_err(|e| bad(path, e))?;
        crate::train::write_bytes_atomically(path, &file)
    }

    /// Reads a checkpoint, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { context: path.display().to_string(), source })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(path, e))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::I32 => DType::I32,
                other => return Err(bad(path, format!("tensor `{name}` has unsupported dtype {other:?}"))),
            };
            tensors.insert(name, HostTensor::from_bytes(Shape::new(view.shape()), dtype, view.data())?);
        }
        Ok(Checkpoint { tensors, metadata })
    }

    /// Sets every variable of `exec` from the checkpoint; a variable the checkpoint lacks, or
    /// holds with another shape, is an error naming it.
    pub fn restore<B: Backend>(&self, exec: &Executor<B>) -> Result<()> {
        for (name, v) in variables(exec.graph()) {
            let tensor = self
                .tensors
                .get(&name)
                .ok_or_else(|| Error::data("checkpoint", format!("has no tensor `{name}` for this model")))?;
            exec.set(v, tensor)?;
        }
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::data("checkpoint", format!("metadata has no `{key}`")))
    }
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::data(path.display().to_string(), e.to_string())
}
