//! Checkpoints: every tensor of a parameter store (parameters, optimizer state, running
//! statistics), its step counters and the run's metadata in one safetensors file, written
//! atomically (temporary file, fsync, rename), so a killed run loses at most the epoch in
//! progress.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kiln_core::{Backend, DType, Error, HostTensor, Result, Shape};
use kiln_graph::Store;
use safetensors::tensor::TensorView;

use crate::layers::{Model, Task};
use crate::zoo::{ModelSpec, build};

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

    /// `capture` for a host where nothing may block (a browser's page).
    pub async fn capture_async<B: Backend>(store: &Store<B>, metadata: HashMap<String, String>) -> Result<Self> {
        Ok(Checkpoint { tensors: store.read_all_async().await?, counters: store.counters().clone(), metadata })
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::files::write_bytes_atomically(path, &self.to_bytes(&path.display().to_string())?)
    }

    /// The checkpoint as the bytes of a safetensors file (`what` names it in errors).
    pub fn to_bytes(&self, what: &str) -> Result<Vec<u8>> {
        let bad = |e: &dyn std::fmt::Display| Error::data(what, e.to_string());
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
                TensorView::new(*dtype, shape.clone(), data).map(|v| (name.clone(), v)).map_err(|e| bad(&e))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut metadata = self.metadata.clone();
        let counters = serde_json::to_string(&self.counters).map_err(|e| bad(&e))?;
        metadata.insert(COUNTERS.into(), counters);
        safetensors::serialize(views, Some(metadata)).map_err(|e| bad(&e))
    }

    /// Reads a checkpoint, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { context: path.display().to_string(), source })?;
        Self::from_bytes(path, &bytes)
    }

    /// The checkpoint in `bytes`, a safetensors file's, from `path` (named in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(path, e))?;
        let mut metadata = header.metadata().clone().unwrap_or_default();
        let counters = metadata.remove(COUNTERS).unwrap_or_else(|| "{}".into());
        let counters = serde_json::from_str(&counters).map_err(|e| bad(path, format!("counters: {e}")))?;
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(path, e))?;
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

    /// Writes into `store` the tensors it declares (a program compiled over it declared them)
    /// and every counter, leaving out the rest (a GAN's discriminator when only its generator
    /// samples, optimizer state when only evaluating). A declared tensor the checkpoint lacks,
    /// or one holding NaN or infinity, is an error naming it and `what` (the file).
    pub fn restore_declared<B: Backend>(&self, store: &mut Store<B>, what: &str) -> Result<()> {
        let names: Vec<String> = store.names().map(str::to_string).collect();
        for name in &names {
            let tensor = self
                .tensors
                .get(name)
                .ok_or_else(|| Error::data(what, format!("has no tensor `{name}` for this model")))?;
            if tensor.as_f32().is_ok_and(|v| v.iter().any(|x| !x.is_finite())) {
                let why = format!("tensor `{name}` holds NaN or infinity: the run that wrote it diverged");
                return Err(Error::data(what, why));
            }
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

/// A classifier's checkpoint, read: its contents and the model it holds, built in eval mode.
pub struct SavedClassifier {
    pub checkpoint: Checkpoint,
    pub model: Model,
    /// The model's name, and the pixels of its square images.
    pub name: String,
    pub pixels: usize,
    /// The two sets of classes a binary classifier tells apart.
    pub task: Option<crate::BinaryTask>,
}

impl SavedClassifier {
    /// The classifier the checkpoint at `path` holds, built for `batch` images; a checkpoint
    /// of a model that does not classify (an autoencoder, a GAN) is refused, saying what it is.
    pub fn load(path: &Path, batch: usize) -> Result<Self> {
        let checkpoint = Checkpoint::load(path)?;
        let what = path.display().to_string();
        let name = checkpoint.meta("model")?.to_string();
        if checkpoint.meta(crate::gan::GAN_KIND).is_ok() {
            return Err(Error::data(
                &what,
                format!("holds `{name}`, a GAN: it generates images (`kiln sample`), it does not classify"),
            ));
        }
        let seed = checkpoint.meta("seed")?.parse().unwrap_or(1);
        let pixels: usize = checkpoint.meta("pixels")?.parse().map_err(|e| bad(path, format!("pixels: {e}")))?;
        let side = (pixels as f64).sqrt() as usize;
        if side * side != pixels {
            return Err(bad(path, format!("says its images have {pixels} pixels, which is not a square")));
        }
        let (spec, task) = match checkpoint.metadata.get("config") {
            Some(config) => {
                let config: crate::TrainConfig =
                    serde_json::from_str(config).map_err(|e| bad(path, format!("its settings: {e}")))?;
                (config.model, config.task)
            }
            None => (ModelSpec::named(&name), None),
        };
        let model = build(&spec, batch, pixels, false, seed)?;
        if model.task == Task::Reconstruction {
            return Err(bad(path, format!("holds `{name}`, which reconstructs images: it does not classify")));
        }
        Ok(SavedClassifier { checkpoint, model, name, pixels, task })
    }
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::data(path.display().to_string(), e.to_string())
}
