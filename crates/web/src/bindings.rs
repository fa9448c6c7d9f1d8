//! What the page's JavaScript sees: `Session.create` opens the browser's adapter and builds the
//! trainer; each method returns a promise. One call runs at a time: the trainer is lent to
//! the call in flight, and a call made meanwhile is refused rather than queued.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use js_sys::Promise;
use kiln_golden::golden::{Case, check_case_async};
use kiln_gpu::{AdapterChoice, Gpu};
use kiln_kernels::GpuBackend;
use kiln_nn::{Dataset, ModelSpec, OptimizerKind, TrainConfig, decode_idx};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{Trainer, first};

/// A training session on the page's GPU.
#[wasm_bindgen]
pub struct Session {
    trainer: Rc<RefCell<Option<Trainer<GpuBackend>>>>,
    adapter: String,
    parameters: usize,
}

/// The settings a page chooses.
#[wasm_bindgen]
#[derive(Clone, Debug)]
pub struct Settings {
    /// `mlp` or `cnn`.
    #[wasm_bindgen(getter_with_clone)]
    pub model: String,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
    /// The first this many training and test images are used.
    pub train_images: usize,
    pub test_images: usize,
}

#[wasm_bindgen]
impl Settings {
    /// The page's defaults: the MLP, Adam at 1e-3 on batches of 100.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Settings {
        Settings { model: "mlp".into(), batch: 100, lr: 1e-3, seed: 1, train_images: 60_000, test_images: 10_000 }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl Session {
    /// Opens the browser's adapter (with its own limits) and builds `settings`' model over the
    /// four Fashion-MNIST files' bytes (IDX, gzip-compressed or not), each named by its URL.
    pub async fn create(
        settings: Settings,
        files: Vec<String>,
        contents: Vec<js_sys::Uint8Array>,
    ) -> Result<Session, JsError> {
        let [train_images, train_labels, test_images, test_labels] = &files[..] else {
            return Err(JsError::new("expected four files: training images and labels, test images and labels"));
        };
        if contents.len() != 4 {
            return Err(JsError::new("expected the bytes of four files"));
        }
        let read = |url: &str, i: usize| decode_idx(Path::new(url), &contents[i].to_vec()).map_err(js);
        let train = Dataset::from_idx(
            (Path::new(train_images), read(train_images, 0)?),
            (Path::new(train_labels), read(train_labels, 1)?),
        )
        .map_err(js)?;
        let test = Dataset::from_idx(
            (Path::new(test_images), read(test_images, 2)?),
            (Path::new(test_labels), read(test_labels, 3)?),
        )
        .map_err(js)?;
        let config = TrainConfig {
            model: ModelSpec::named(&settings.model),
            optimizer: OptimizerKind::Adam,
            lr: settings.lr,
            batch: settings.batch,
            seed: settings.seed,
            validation: 0,
            ..TrainConfig::default()
        };
        let gpu = Gpu::open(&AdapterChoice::default()).await.map_err(js)?;
        let adapter = gpu.description();
        let trainer = Trainer::new(
            GpuBackend::new(gpu),
            config,
            first(&train, settings.train_images),
            first(&test, settings.test_images),
        )
        .map_err(js)?;
        let parameters = trainer.parameters();
        Ok(Session { trainer: Rc::new(RefCell::new(Some(trainer))), adapter, parameters })
    }

    /// The adapter the session runs on, as Kiln describes it.
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// The pixels of test image `index` (in `[0, 1]`), or nothing past the last.
    #[wasm_bindgen(js_name = testImage)]
    pub fn test_image(&self, index: usize) -> Option<Vec<f32>> {
        self.trainer.borrow().as_ref().and_then(|t| t.test_image(index).map(<[f32]>::to_vec))
    }

    /// One training step: resolves to `[loss, accuracy of the batch]`.
    pub fn step(&self) -> Promise {
        self.call(async |trainer| {
            let figures = trainer.step().await?;
            Ok(js_sys::Float64Array::from(&[figures.loss as f64, figures.accuracy as f64][..]).into())
        })
    }

    /// Resolves to `[mean loss, accuracy]` on the test images.
    pub fn evaluate(&self) -> Promise {
        self.call(async |trainer| {
            let e = trainer.evaluate().await?;
            Ok(js_sys::Float64Array::from(&[e.loss, e.accuracy][..]).into())
        })
    }

    /// Resolves to each class's probability for one 28×28 image, pixels in `[0, 1]`.
    pub fn predict(&self, pixels: Vec<f32>) -> Promise {
        self.call(async move |trainer| Ok(js_sys::Float32Array::from(&trainer.predict(&pixels).await?[..]).into()))
    }

    /// Resolves to the bytes of a safetensors checkpoint that `kiln predict` reads.
    pub fn save(&self) -> Promise {
        self.call(async |trainer| {
            let bytes = trainer.checkpoint().await?.to_bytes("the page's weights")?;
            Ok(js_sys::Uint8Array::from(&bytes[..]).into())
        })
    }
}

impl Session {
    /// Lends the trainer to `work` until its future ends, as a promise of what it gives.
    fn call<F>(&self, work: F) -> Promise
    where
        F: AsyncFnOnce(&mut Trainer<GpuBackend>) -> kiln_core::Result<JsValue> + 'static,
    {
        let slot = Rc::clone(&self.trainer);
        future_to_promise(async move {
            let lent = slot.borrow_mut().take();
            let mut trainer = lent.ok_or_else(|| JsError::new("busy: the previous call has not finished yet"))?;
            let result = work(&mut trainer).await;
            *slot.borrow_mut() = Some(trainer);
            result.map_err(|e| js(e).into())
        })
    }
}

/// Runs golden cases (`../shared/golden/FORMAT.md`) on the page's GPU, each file's bytes named
/// by its URL: resolves to a JSON list of `{case, op, problems}`, where an empty `problems`
/// means the case passed.
#[wasm_bindgen(js_name = checkGolden)]
pub async fn check_golden(urls: Vec<String>, contents: Vec<js_sys::Uint8Array>) -> Result<String, JsError> {
    if urls.len() != contents.len() {
        return Err(JsError::new("expected one URL per file"));
    }
    let backend = GpuBackend::new(Gpu::open(&AdapterChoice::default()).await.map_err(js)?);
    let mut report = Vec::with_capacity(urls.len());
    for (url, bytes) in urls.iter().zip(&contents) {
        let (op, problems) = match Case::from_bytes(Path::new(url), &bytes.to_vec()) {
            Ok(case) => match check_case_async(backend.clone(), &case).await {
                Ok(mismatches) => {
                    (case.op, mismatches.iter().map(|m| format!("{}: {}", m.tensor, m.problem)).collect())
                }
                Err(e) => (case.op, vec![e.to_string()]),
            },
            Err(e) => (String::new(), vec![e.to_string()]),
        };
        report.push(serde_json::json!({ "case": url, "op": op, "problems": problems }));
    }
    Ok(serde_json::Value::Array(report).to_string())
}

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}
