//! Checkpoints: every tensor of a parameter store (parameters, optimizer state, running
//! statistics), its step counters and the run's metadata in one safetensors file, written
//! atomically (temporary file, fsync, rename), so a killed run loses at most the epoch in
//! progress.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kiln_core::{Backend, DType, Error, HostTensor, Result, Shape};
use kiln_graph::Store;
use safetensors::tensor::TensorView;

/// The metadata key holding the store's counters, as JSON.
const COUNTERS: &str = "counters";

/// A checkpoint's contents: tensors and counters by name, and metadata strings.
pub struct Checkpoint {
    pub tensors: BTreeMap<String, HostTensor>,
    pub counters: BTreeMap<String, u32>,
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Reads every tensor and counter of `store` into a checkpoint with `metadata`.
    pub fn capture<B: Backend>(store: &Store<B>, metadata: HashMap<String, String>) -> Result<Self> {
        Ok(Checkpoint { tensors: store.read_all()?, counters: store.counters().clone(), metadata })
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
        let mut metadata = self.metadata.clone();
        let counters = serde_json::to_string(&self.counters).map_err(|e| bad(path, e))?;
        metadata.insert(COUNTERS.into(), counters);
        let file = safetensors::serialize(views, Some(metadata)).map_err(|e| bad(path, e))?;
        crate::files::write_bytes_atomically(path, &file)
    }

    /// Reads a checkpoint, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { context: path.display().to_string(), source })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e))?;
        let mut metadata = header.metadata().clone().unwrap_or_default();
        let counters = metadata.remove(COUNTERS).unwrap_or_else(|| "{}".into());
        let counters = serde_json::from_str(&counters).map_err(|e| bad(path, format!("counters: {e}")))?;
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
        Ok(Checkpoint { tensors, counters, metadata })
    }

    /// Writes every tensor and counter into `store`, creating the entries it lacks; a tensor
    /// the store holds with another shape, or one of the store's that the checkpoint lacks, is
    /// an error naming it.
    pub fn restore<B: Backend>(&self, store: &mut Store<B>) -> Result<()> {
        if let Some(missing) = store.names().find(|name| !self.tensors.contains_key(*name)) {
            return Err(Error::data("checkpoint", format!("has no tensor `{missing}` for this model")));
        }
        for (name, tensor) in &self.tensors {
            store.insert(name, tensor)?;
        }
        for (name, &runs) in &self.counters {
            store.set_counter(name, runs);
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
