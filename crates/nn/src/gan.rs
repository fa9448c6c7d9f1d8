//! Generative adversarial networks: a generator G turning noise into images and a
//! discriminator D telling real images from generated ones, trained in alternation over one
//! parameter store — a D step (D updated, G frozen) on a real batch and a generated one, then
//! a G step through D (G updated, D frozen) on the non-saturating loss `−log D(G(z))`, each
//! one submission with its own Adam. The noise is drawn on the device (`random_normal`), so
//! a step uploads only the real batch. Quality is the Fréchet distance between features of
//! real and generated images taken from a classifier Kiln trained (`quality`).
//!
//! ```no_run
//! # fn main() -> kiln_core::Result<()> {
//! use kiln_nn::gan::{GanConfig, GanProgress, train_gan};
//! let data = kiln_nn::FashionMnist::load(std::path::Path::new(kiln_nn::DEFAULT_DIR))
//!     .map_err(|e| kiln_core::Error::data("dataset", e.to_string()))?;
//! let config = GanConfig { epochs: Some(5), ..GanConfig::named("dcgan") };
//! struct Quiet;
//! impl<B: kiln_core::Backend> GanProgress<B> for Quiet {}
//! let trained = train_gan(kiln_cpu::Cpu, &config, &data, &mut Quiet)?;
//! println!("G loss {}", trained.metrics.g_loss);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_core::{Activation, Adam, Backend, DType, Error, HostTensor, Noise, Result};
use kiln_graph::{Program, Store, Value};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::dataset::{FashionMnist, shuffled_indices};
use crate::files::{Output, WriterLock, check_outputs};
use crate::init::Init;
use crate::layers::Layers;
use crate::optim::{Optimizer, ParamGroup, minimize};
use crate::quality::Quality;
use crate::trainer::{Stop, refuse_changed, to_json};

/// The GAN models: `dcgan` (convolutional) and `gan-mlp` (fully connected).
pub const GAN_MODELS: &[&str] = &["dcgan", "gan-mlp"];

/// Whether `model` names a GAN rather than a classifier of the zoo.
pub fn is_gan(model: &str) -> bool {
    GAN_MODELS.contains(&model)
}

/// The checkpoint metadata key that marks a GAN's checkpoint (its value: the model).
pub const GAN_KIND: &str = "gan";

/// Generated images per submission when sampling or scoring.
const SAMPLE_BATCH: usize = 500;

/// The seeds of the noise behind the sample grids and the quality score: fixed, so that every
/// epoch's grid shows the same points of the latent space and scores compare across epochs.
pub const GRID_SEED: u32 = 0x6e01_5e00;
const QUALITY_SEED: u32 = 0x51ed_0c0e;

/// A GAN run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GanConfig {
    /// `dcgan` or `gan-mlp`.
    pub model: String,
    /// The size of the noise vector z.
    pub latent: usize,
    /// Adam's rate and betas, for G and D alike (each its own Adam and state).
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Real images per D step (and generated ones per D and per G step).
    pub batch: usize,
    /// Whole passes over the training images; with `steps`, whichever comes first; with
    /// neither, one epoch. A step is one D step and one G step.
    pub epochs: Option<usize>,
    pub steps: Option<usize>,
    pub seed: u64,
    /// A classifier checkpoint whose features score the samples after every epoch.
    #[serde(skip)]
    pub classifier: Option<PathBuf>,
    /// Generated images the score compares with the test images.
    #[serde(skip)]
    pub quality_samples: usize,
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    #[serde(skip)]
    pub resume: Option<PathBuf>,
}

impl GanConfig {
    /// `model` with the DCGAN paper's settings: Adam at 2e-4 with betas 0.5 and 0.999, batch
    /// 64, z of 100, one epoch, seed 1, and a score over 10,000 samples.
    pub fn named(model: &str) -> Self {
        GanConfig {
            model: model.into(),
            latent: 100,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            batch: 64,
            epochs: None,
            steps: None,
            seed: 1,
            classifier: None,
            quality_samples: 10_000,
            checkpoint: None,
            resume: None,
        }
    }

    /// Refuses settings that make no sense, naming the setting.
    pub fn check(&self) -> Result<()> {
        if !is_gan(&self.model) {
            return Err(Error::Unsupported(format!(
                "model `{}` is no GAN: the GAN models are {}",
                self.model,
                GAN_MODELS.join(", ")
            )));
        }
        for (option, value) in [("--batch", Some(self.batch)), ("--epochs", self.epochs), ("--steps", self.steps)] {
            if value == Some(0) {
                return Err(Error::data(option, "must be at least 1"));
            }
        }
        if !(1..=4096).contains(&self.latent) {
            return Err(Error::data("--latent", format!("{} must lie in 1..=4096", self.latent)));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::data(
                "--lr",
                format!("{} is not a learning rate: give a finite number above 0", self.lr),
            ));
        }
        for (option, beta) in [("--beta1", self.beta1), ("--beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::data(option, format!("{beta} must lie in [0, 1)")));
            }
        }
        if self.classifier.is_some() && !(2..=1_000_000).contains(&self.quality_samples) {
            return Err(Error::data("--quality-samples", format!("{} must lie in 2..=1000000", self.quality_samples)));
        }
        Ok(())
    }

    fn adam(&self) -> Optimizer {
        Optimizer::Adam(Adam { beta1: self.beta1, beta2: self.beta2, ..Adam::new(self.lr) })
    }

    /// The seeds of the D step's and the G step's noise.
    fn noise_seeds(&self) -> [u32; 2] {
        let base = kiln_core::mix32(self.seed as u32 ^ (self.seed >> 32) as u32);
        [kiln_core::mix32(base ^ 0xd00d), kiln_core::mix32(base ^ 0x6e6e)]
    }
}

/// Appends G to `l`: noise `z [N, latent]` → images `[N, side²]` in [-1, 1].
fn generator(l: &mut Layers, model: &str, z: Value, side: usize) -> Result<Value> {
    let n = l.g.shape(z).dims()[0];
    let leaky = Activation::LeakyRelu { negative_slope: 0.2 };
    let x = match model {
        "dcgan" => {
            // linear → 128 planes of (side/4)² → transposed convolutions to 64 planes, then one.
            let base = side / 4;
            let x = l.linear("g.fc", z, 128 * base * base)?;
            let x = l.g.reshape(x, vec![n, 128, base, base])?;
            let x = l.batch_norm("g.bn0", x)?;
            let x = l.relu(x)?;
            let x = l.conv_transpose("g.deconv0", x, 64, 4, 2)?;
            let x = l.batch_norm("g.bn1", x)?;
            let x = l.relu(x)?;
            l.conv_transpose("g.deconv1", x, 1, 4, 2)?
        }
        "gan-mlp" => {
            let x = l.linear("g.fc0", z, 256)?;
            let x = l.activation(x, leaky)?;
            let x = l.linear("g.fc1", x, 512)?;
            let x = l.activation(x, leaky)?;
            l.linear("g.fc2", x, side * side)?
        }
        other => {
            return Err(Error::Unsupported(format!("model `{other}`: the GAN models are {}", GAN_MODELS.join(", "))));
        }
    };
    let x = l.g.tanh(x)?;
    l.g.reshape(x, vec![n, side * side])
}

/// Appends D to `l`: images `[N, side²]` → one logit per image `[N, 1]`. Applied twice in one
/// graph, it shares its weights.
fn discriminator(l: &mut Layers, model: &str, images: Value, side: usize) -> Result<Value> {
    let n = l.g.shape(images).dims()[0];
    let leaky = Activation::LeakyRelu { negative_slope: 0.2 };
    let x = match model {
        "dcgan" => {
            let x = l.g.reshape(images, vec![n, 1, side, side])?;
            let x = l.conv_strided("d.conv0", x, 64, 4, 1, 2)?;
            let x = l.activation(x, leaky)?;
            let x = l.conv_strided("d.conv1", x, 128, 4, 1, 2)?;
            let x = l.activation(x, leaky)?;
            l.flatten(x)?
        }
        "gan-mlp" => {
            let x = l.linear("d.fc0", images, 512)?;
            let x = l.activation(x, leaky)?;
            let x = l.linear("d.fc1", x, 256)?;
            l.activation(x, leaky)?
        }
        other => {
            return Err(Error::Unsupported(format!("model `{other}`: the GAN models are {}", GAN_MODELS.join(", "))));
        }
    };
    l.linear("d.fc", x, 1)
}

/// Refuses image sizes a model cannot generate.
fn check_side(model: &str, pixels: usize) -> Result<usize> {
    let side = (pixels as f64).sqrt() as usize;
    if side * side != pixels || (model == "dcgan" && (!side.is_multiple_of(4) || side < 4)) {
        let want = if model == "dcgan" { "square images whose side is a multiple of 4" } else { "square images" };
        return Err(Error::data(model, format!("generates {want}, not images of {pixels} pixels")));
    }
    Ok(side)
}

/// Layers for one of the GAN's graphs: G's parameters are made first in every graph, so
/// each graph draws the same initial values for the same names.
fn layers(config: &GanConfig, training: bool) -> Layers {
    Layers::new(training, config.seed).with_init(Init::Small)
}

/// `mean(softplus(-x))`: binary cross-entropy of logits `x` against "real".
fn real_loss(l: &mut Layers, logits: Value) -> Result<Value> {
    let negated = l.g.scale(logits, -1.0)?;
    let loss = l.g.activation(negated, Activation::Softplus)?;
    l.g.mean_all(loss)
}

/// `mean(softplus(x))`: binary cross-entropy of logits `x` against "generated".
fn fake_loss(l: &mut Layers, logits: Value) -> Result<Value> {
    let loss = l.g.activation(logits, Activation::Softplus)?;
    l.g.mean_all(loss)
}

/// The D step: real images in; D's loss and its logits on the real and the generated batch
/// out; D's parameters updated by Adam, G's untouched.
pub struct DiscriminatorStep<B: Backend> {
    pub program: Program<B>,
    pub real: Value,
    pub loss: Value,
    pub real_logits: Value,
    pub fake_logits: Value,
    /// G's parameters and D's, by value in this graph.
    pub generator_params: Vec<Value>,
    pub discriminator_params: Vec<Value>,
}

impl<B: Backend> DiscriminatorStep<B> {
    pub fn compile(store: &mut Store<B>, config: &GanConfig, pixels: usize) -> Result<Self> {
        let side = check_side(&config.model, pixels)?;
        let mut l = layers(config, true);
        let z = l.g.random_normal(vec![config.batch, config.latent], config.noise_seeds()[0])?;
        let fake = generator(&mut l, &config.model, z, side)?;
        let generator_params = l.params().to_vec();
        let real = l.g.input("images", vec![config.batch, pixels], DType::F32);
        let real_logits = discriminator(&mut l, &config.model, real, side)?;
        let fake_logits = discriminator(&mut l, &config.model, fake, side)?;
        let discriminator_params = l.params()[generator_params.len()..].to_vec();
        let (on_real, on_fake) = (real_loss(&mut l, real_logits)?, fake_loss(&mut l, fake_logits)?);
        let loss = l.g.add(on_real, on_fake)?;
        let group = ParamGroup { params: discriminator_params.clone(), optimizer: config.adam() };
        minimize(&mut l.g, loss, &[group], None)?;
        let program = Program::compile(store, &l.g, &[loss, real_logits, fake_logits])?;
        Ok(DiscriminatorStep { program, real, loss, real_logits, fake_logits, generator_params, discriminator_params })
    }
}

/// The G step: G's loss through D out; G's parameters updated by Adam, D's untouched.
pub struct GeneratorStep<B: Backend> {
    pub program: Program<B>,
    pub loss: Value,
    pub generator_params: Vec<Value>,
    pub discriminator_params: Vec<Value>,
}

impl<B: Backend> GeneratorStep<B> {
    pub fn compile(store: &mut Store<B>, config: &GanConfig, pixels: usize) -> Result<Self> {
        let side = check_side(&config.model, pixels)?;
        let mut l = layers(config, true);
        let z = l.g.random_normal(vec![config.batch, config.latent], config.noise_seeds()[1])?;
        let fake = generator(&mut l, &config.model, z, side)?;
        let generator_params = l.params().to_vec();
        let logits = discriminator(&mut l, &config.model, fake, side)?;
        let discriminator_params = l.params()[generator_params.len()..].to_vec();
        let loss = real_loss(&mut l, logits)?;
        let group = ParamGroup { params: generator_params.clone(), optimizer: config.adam() };
        minimize(&mut l.g, loss, &[group], None)?;
        let program = Program::compile(store, &l.g, &[loss])?;
        Ok(GeneratorStep { program, loss, generator_params, discriminator_params })
    }
}

/// G in eval mode (running statistics), `SAMPLE_BATCH` noise vectors in, images in [0, 1] out.
pub struct Generator<B: Backend> {
    program: Program<B>,
    z: Value,
    images: Value,
    latent: usize,
}

impl<B: Backend> Generator<B> {
    pub fn compile(store: &mut Store<B>, config: &GanConfig, pixels: usize) -> Result<Self> {
        let side = check_side(&config.model, pixels)?;
        let mut l = layers(config, false);
        let z = l.g.input("z", vec![SAMPLE_BATCH, config.latent], DType::F32);
        let images = generator(&mut l, &config.model, z, side)?;
        let program = Program::compile(store, &l.g, &[images])?;
        Ok(Generator { program, z, images, latent: config.latent })
    }

    /// `count` images from the noise `Noise { seed, step: 0 }` (element i of the noise is
    /// element i of z, row by row), with pixels in [0, 1], one after another.
    pub fn sample(&self, store: &mut Store<B>, count: usize, seed: u32) -> Result<Vec<f32>> {
        let noise = Noise { seed, step: 0 };
        let mut images = Vec::new();
        for start in (0..count).step_by(SAMPLE_BATCH) {
            let rows = SAMPLE_BATCH.min(count - start);
            let first = start * self.latent;
            let z: Vec<f32> = (0..SAMPLE_BATCH * self.latent)
                .map(|i| if i < rows * self.latent { noise.normal((first + i) as u32) as f32 } else { 0.0 })
                .collect();
            self.program.set(self.z, &HostTensor::f32(vec![SAMPLE_BATCH, self.latent], z)?)?;
            let out = self.program.run(store, &[self.images])?.remove(0);
            let pixels = out.shape.numel() / SAMPLE_BATCH;
            images.extend(out.as_f32()?[..rows * pixels].iter().map(|&v| (v + 1.0) / 2.0));
        }
        Ok(images)
    }
}

/// One epoch of a GAN run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GanEpochRow {
    pub epoch: usize,
    pub steps: usize,
    /// Means over the epoch's steps: D's loss (real and generated batches together) and G's.
    pub d_loss: f64,
    pub g_loss: f64,
    /// The share of real images D called real, and of generated images it called generated.
    pub d_real_accuracy: f64,
    pub d_fake_accuracy: f64,
    /// With a classifier: the Fréchet distance on its features, and the classes it sees in
    /// the generated images (a count per class).
    pub fid: Option<f64>,
    pub classes: Option<Vec<usize>>,
    pub seconds: f64,
}

/// What a GAN run measured.
#[derive(Clone, Debug, Serialize)]
pub struct GanMetrics {
    pub model: String,
    pub adapter: String,
    pub d_loss: f64,
    pub g_loss: f64,
    pub steps: usize,
    pub batch: usize,
    /// Real images per second of training (each also generating as many, twice).
    pub samples_per_sec: f64,
    pub train_seconds: f64,
    pub stopped_by: Stop,
    /// The classifier whose features score the samples, and the scores: the last epoch's, of
    /// real training images (the floor) and of the untrained generator (the ceiling).
    pub classifier: Option<String>,
    pub fid: Option<f64>,
    pub fid_floor: Option<f64>,
    pub fid_ceiling: Option<f64>,
    pub classes: Option<Vec<usize>>,
    pub store_bytes: u64,
    pub program_bytes: u64,
    pub shared_bytes: u64,
    pub epochs: Vec<GanEpochRow>,
}

/// Steps within an epoch, as a progress display wants them.
#[derive(Clone, Copy, Debug)]
pub struct GanStepReport {
    pub epoch: usize,
    pub done: usize,
    pub of: usize,
    pub d_loss: f64,
    pub g_loss: f64,
    pub samples_per_sec: f64,
}

/// What a GAN run reports as it goes; every method does nothing unless overridden.
pub trait GanProgress<B: Backend> {
    fn step(&mut self, _report: &GanStepReport) {}
    /// After each epoch (and its checkpoint): its row, and the run, to draw samples from.
    fn epoch(&mut self, _row: &GanEpochRow, _run: &mut GanRun<'_, B>) -> Result<()> {
        Ok(())
    }
    fn note(&mut self, _text: &str) {}
}

/// A finished GAN run: its measurements and its store.
pub struct TrainedGan<B: Backend> {
    pub metrics: GanMetrics,
    pub store: Store<B>,
}

/// The scores of a run that stay fixed: real training images against the test images, and
/// the generator before any step.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Bounds {
    floor: Option<f64>,
    ceiling: Option<f64>,
}

/// Trains the GAN `config` names on the training images of `data`, reporting to `progress`.
pub fn train_gan<B: Backend>(
    backend: B,
    config: &GanConfig,
    data: &FashionMnist,
    progress: &mut dyn GanProgress<B>,
) -> Result<TrainedGan<B>> {
    config.check()?;
    let paths: Vec<&Path> = config.checkpoint.as_deref().into_iter().collect();
    check_outputs(&paths.iter().map(|path| Output::File { option: "--checkpoint", path }).collect::<Vec<_>>())?;
    let _lock = config.checkpoint.as_deref().map(WriterLock::acquire).transpose()?;
    let mut run = GanRun::new(backend, config, data)?;
    if let Some(path) = config.resume.as_deref() {
        run.resume(path)?;
        progress.note(&format!("resumed from {} after epoch {}", path.display(), run.history.len()));
    }
    if let Some(quality) = run.quality.as_mut() {
        if run.bounds.floor.is_none() {
            let count = config.quality_samples.min(data.train.len());
            let order = shuffled_indices(data.train.len(), config.seed);
            let (images, _) = data.train.batch(&order[..count]);
            run.bounds.floor = Some(quality.score(&images)?.0);
        }
        if run.history.is_empty() {
            let images = run.generator.sample(&mut run.store, config.quality_samples, QUALITY_SEED)?;
            run.bounds.ceiling = Some(quality.score(&images)?.0);
        }
        progress.note(&format!(
            "quality: Fréchet distance on {} features of {} images; real training images score {}, the untrained \
             generator {}",
            quality.path().display(),
            config.quality_samples,
            show(run.bounds.floor),
            show(run.bounds.ceiling)
        ));
    }
    run.epochs(progress)
}

fn show(score: Option<f64>) -> String {
    score.map_or_else(|| "unknown (not in the checkpoint resumed)".into(), |s| format!("{s:.2}"))
}

/// A GAN run in progress: the store, the two steps and the generator over it, the scorer.
pub struct GanRun<'a, B: Backend> {
    config: &'a GanConfig,
    data: &'a FashionMnist,
    store: Store<B>,
    d_step: DiscriminatorStep<B>,
    g_step: GeneratorStep<B>,
    generator: Generator<B>,
    quality: Option<Quality<B>>,
    bounds: Bounds,
    steps_per_epoch: usize,
    planned_steps: usize,
    history: Vec<GanEpochRow>,
}

impl<'a, B: Backend> GanRun<'a, B> {
    fn new(backend: B, config: &'a GanConfig, data: &'a FashionMnist) -> Result<Self> {
        let pixels = data.train.image_size();
        let steps_per_epoch = data.train.len() / config.batch;
        if steps_per_epoch == 0 {
            return Err(Error::data(
                "--batch",
                format!("{} exceeds the {} training images", config.batch, data.train.len()),
            ));
        }
        let planned_steps = match (config.epochs.map(|e| e.saturating_mul(steps_per_epoch)), config.steps) {
            (Some(e), Some(s)) => e.min(s),
            (Some(e), None) => e,
            (None, Some(s)) => s,
            (None, None) => steps_per_epoch,
        };
        let quality = match &config.classifier {
            Some(path) => Some(Quality::load(backend.clone(), path, data, config.quality_samples)?),
            None => None,
        };
        let mut store = Store::new(backend);
        let d_step = DiscriminatorStep::compile(&mut store, config, pixels)?;
        let g_step = GeneratorStep::compile(&mut store, config, pixels)?;
        let generator = Generator::compile(&mut store, config, pixels)?;
        log::info!(
            "training {} on {}: D step {} graph nodes, G step {}; device memory: {} KiB of parameters and state, {} \
             KiB of programs, {} KiB shared by kernels",
            config.model,
            store.backend().name(),
            d_step.program.graph().nodes().len(),
            g_step.program.graph().nodes().len(),
            store.bytes() / 1024,
            (d_step.program.plan().program_bytes
                + g_step.program.plan().program_bytes
                + generator.program.plan().program_bytes)
                / 1024,
            store.backend().shared_bytes() / 1024
        );
        Ok(GanRun {
            config,
            data,
            store,
            d_step,
            g_step,
            generator,
            quality,
            bounds: Bounds::default(),
            steps_per_epoch,
            planned_steps,
            history: Vec::new(),
        })
    }

    pub fn config(&self) -> &GanConfig {
        self.config
    }

    pub fn history(&self) -> &[GanEpochRow] {
        &self.history
    }

    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// `count` images (pixels in [0, 1]) generated from the noise seeded by `seed`.
    pub fn sample(&mut self, count: usize, seed: u32) -> Result<Vec<f32>> {
        self.generator.sample(&mut self.store, count, seed)
    }

    fn steps_done(&self) -> usize {
        self.history.iter().map(|e| e.steps).sum()
    }

    fn stop_here(&self) -> Option<Stop> {
        if self.config.steps.is_some_and(|s| self.steps_done() >= s) {
            Some(Stop::Steps)
        } else if self.history.len()
            >= self.config.epochs.unwrap_or(if self.config.steps.is_some() { usize::MAX } else { 1 })
        {
            Some(Stop::Epochs)
        } else {
            None
        }
    }

    fn epochs(mut self, progress: &mut dyn GanProgress<B>) -> Result<TrainedGan<B>> {
        let (mut seconds, mut samples) = (0.0, 0usize);
        let stopped_by = loop {
            if let Some(stop) = self.stop_here() {
                break stop;
            }
            let row = self.epoch(progress)?;
            seconds += row.seconds;
            samples += row.steps * self.config.batch;
            self.history.push(row.clone());
            if let Some(path) = &self.config.checkpoint {
                self.save(path)?;
            }
            progress.epoch(&row, &mut self)?;
        };
        progress.note(&match stopped_by {
            Stop::Steps => format!("stopped after {} steps (--steps)", self.steps_done()),
            Stop::Epochs | Stop::Patience => format!("stopped after {} epochs (--epochs)", self.history.len()),
        });
        let last = self.history.last().ok_or_else(|| Error::attribute("train", "no epoch ran"))?.clone();
        let backend = self.store.backend();
        let metrics = GanMetrics {
            model: self.config.model.clone(),
            adapter: backend.name(),
            d_loss: last.d_loss,
            g_loss: last.g_loss,
            steps: self.steps_done(),
            batch: self.config.batch,
            samples_per_sec: samples as f64 / seconds.max(1e-9),
            train_seconds: seconds,
            stopped_by,
            classifier: self.quality.as_ref().map(|q| q.path().display().to_string()),
            fid: last.fid,
            fid_floor: self.bounds.floor,
            fid_ceiling: self.bounds.ceiling,
            classes: last.classes.clone(),
            store_bytes: self.store.bytes(),
            program_bytes: self.d_step.program.plan().program_bytes
                + self.g_step.program.plan().program_bytes
                + self.generator.program.plan().program_bytes,
            shared_bytes: backend.shared_bytes(),
            epochs: self.history.clone(),
        };
        Ok(TrainedGan { metrics, store: self.store })
    }

    /// One epoch (or what is left of the steps), then the score.
    fn epoch(&mut self, progress: &mut dyn GanProgress<B>) -> Result<GanEpochRow> {
        let epoch = self.history.len();
        let batch = self.config.batch;
        let steps = self.steps_per_epoch.min(self.planned_steps.max(self.steps_done() + 1) - self.steps_done());
        let order = shuffled_indices(self.data.train.len(), self.config.seed.wrapping_add(epoch as u64));
        let start = Instant::now();
        let (mut d_sum, mut g_sum, mut real_right, mut fake_right) = (0.0f64, 0.0f64, 0usize, 0usize);
        for step in 0..steps {
            let (images, _) = self.data.train.batch(&order[step * batch..(step + 1) * batch]);
            let scaled: Vec<f32> = images.iter().map(|&v| 2.0 * v - 1.0).collect();
            let d = &self.d_step;
            d.program.set(d.real, &HostTensor::f32(vec![batch, self.data.train.image_size()], scaled)?)?;
            let out = d.program.run(&mut self.store, &[d.loss, d.real_logits, d.fake_logits])?;
            let d_loss = out[0].as_f32()?[0];
            real_right += out[1].as_f32()?.iter().filter(|&&v| v > 0.0).count();
            fake_right += out[2].as_f32()?.iter().filter(|&&v| v < 0.0).count();
            let g_loss = self.g_step.program.run(&mut self.store, &[self.g_step.loss])?[0].as_f32()?[0];
            if !(d_loss.is_finite() && g_loss.is_finite()) {
                return Err(Error::data(
                    "train",
                    format!(
                        "D's loss became {d_loss} and G's {g_loss} in epoch {}, step {}: lower --lr",
                        epoch + 1,
                        step + 1
                    ),
                ));
            }
            d_sum += d_loss as f64;
            g_sum += g_loss as f64;
            if step % 10 == 0 || step + 1 == steps {
                progress.step(&GanStepReport {
                    epoch,
                    done: step + 1,
                    of: steps,
                    d_loss: d_sum / (step + 1) as f64,
                    g_loss: g_sum / (step + 1) as f64,
                    samples_per_sec: ((step + 1) * batch) as f64 / start.elapsed().as_secs_f64(),
                });
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let (fid, classes) = match self.quality.as_mut() {
            Some(quality) => {
                let images = self.generator.sample(&mut self.store, self.config.quality_samples, QUALITY_SEED)?;
                let (fid, classes) = quality.score(&images)?;
                (Some(fid), Some(classes))
            }
            None => (None, None),
        };
        let seen = (steps * batch).max(1) as f64;
        Ok(GanEpochRow {
            epoch: epoch + 1,
            steps,
            d_loss: d_sum / steps.max(1) as f64,
            g_loss: g_sum / steps.max(1) as f64,
            d_real_accuracy: real_right as f64 / seen,
            d_fake_accuracy: fake_right as f64 / seen,
            fid,
            classes,
            seconds,
        })
    }

    fn metadata(&self) -> Result<HashMap<String, String>> {
        Ok(HashMap::from([
            ("model".to_string(), self.config.model.clone()),
            (GAN_KIND.to_string(), self.config.model.clone()),
            ("config".to_string(), to_json(self.config)?),
            ("history".to_string(), to_json(&self.history)?),
            ("quality".to_string(), to_json(&self.bounds)?),
            ("pixels".to_string(), self.data.train.image_size().to_string()),
        ]))
    }

    fn save(&self, path: &Path) -> Result<()> {
        Checkpoint::capture(&self.store, self.metadata()?)?.save(path)
    }

    /// Continues the run a checkpoint of the same settings describes; a setting that differs
    /// is refused by name.
    fn resume(&mut self, path: &Path) -> Result<()> {
        let checkpoint = Checkpoint::load(path)?;
        let what = path.display().to_string();
        let saved: GanConfig = serde_json::from_str(checkpoint.meta("config")?)
            .map_err(|e| Error::data(&what, format!("its settings: {e}")))?;
        let settings = [
            ("--model", saved.model.clone(), self.config.model.clone()),
            ("--latent", saved.latent.to_string(), self.config.latent.to_string()),
            ("--lr", saved.lr.to_string(), self.config.lr.to_string()),
            ("--beta1", saved.beta1.to_string(), self.config.beta1.to_string()),
            ("--beta2", saved.beta2.to_string(), self.config.beta2.to_string()),
            ("--batch", saved.batch.to_string(), self.config.batch.to_string()),
            ("--epochs", format!("{:?}", saved.epochs), format!("{:?}", self.config.epochs)),
            ("--steps", format!("{:?}", saved.steps), format!("{:?}", self.config.steps)),
            ("--seed", saved.seed.to_string(), self.config.seed.to_string()),
        ];
        refuse_changed(&what, &settings)?;
        checkpoint.restore(&mut self.store)?;
        self.history = serde_json::from_str(checkpoint.meta("history")?)
            .map_err(|e| Error::data(&what, format!("its history: {e}")))?;
        self.bounds = checkpoint.meta("quality").ok().and_then(|q| serde_json::from_str(q).ok()).unwrap_or_default();
        Ok(())
    }
}

/// A trained generator loaded from a GAN checkpoint, for drawing new samples.
pub struct Sampler<B: Backend> {
    pub store: Store<B>,
    pub generator: Generator<B>,
    pub config: GanConfig,
    pub side: usize,
}

impl<B: Backend> Sampler<B> {
    /// The generator of the GAN checkpoint at `path`; any other checkpoint is refused, saying
    /// what it holds.
    pub fn load(backend: B, path: &Path) -> Result<Self> {
        let checkpoint = Checkpoint::load(path)?;
        let what = path.display().to_string();
        if checkpoint.meta(GAN_KIND).is_err() {
            let model = checkpoint.meta("model").unwrap_or("no model");
            return Err(Error::data(
                &what,
                format!(
                    "holds a `{model}`, not a GAN: samples come from a generator trained with `kiln train --model \
                     dcgan --checkpoint FILE`"
                ),
            ));
        }
        let config: GanConfig = serde_json::from_str(checkpoint.meta("config")?)
            .map_err(|e| Error::data(&what, format!("its settings: {e}")))?;
        let pixels: usize =
            checkpoint.meta("pixels")?.parse().map_err(|e| Error::data(&what, format!("its pixels: {e}")))?;
        let side = check_side(&config.model, pixels)?;
        let mut store = Store::new(backend);
        let generator = Generator::compile(&mut store, &config, pixels)?;
        checkpoint.restore_declared(&mut store, &what)?;
        Ok(Sampler { store, generator, config, side })
    }

    /// `count` images with pixels in [0, 1], from the noise seeded by `seed`.
    pub fn sample(&mut self, count: usize, seed: u32) -> Result<Vec<f32>> {
        self.generator.sample(&mut self.store, count, seed)
    }
}
