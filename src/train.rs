//! `kiln train`: trains a classifier on Fashion-MNIST, one submission per step, and reports
//! the test accuracy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kiln_core::{Adam, Backend, Error, HostTensor, Result, Sgd};
use kiln_graph::Executor;
use kiln_nn::{Dataset, FashionMnist};
use serde::Serialize;

use crate::models::{Classifier, Optimizer, add_training, cnn, mlp};

/// Where a run computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Gpu,
    Cpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub model: String,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub batch: usize,
    pub steps: usize,
    pub seed: u64,
    pub data: PathBuf,
    pub device: Device,
    pub progress: bool,
}

/// What `--metrics-json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub model: String,
    pub device: Device,
    pub adapter: String,
    pub test_accuracy: f64,
    /// Mean loss over the last 100 steps.
    pub train_loss: f64,
    pub steps: usize,
    pub batch: usize,
    pub samples_per_sec: f64,
    pub train_seconds: f64,
    pub planned_step_bytes: u64,
}

/// Images evaluated per submission (a CNN's lowered convolutions stay well inside one
/// storage binding at this size).
const EVAL_BATCH: usize = 250;

const CLASSES: usize = 10;

/// The models `--model` names.
pub const MODELS: &[&str] = &["mlp", "cnn"];

fn unknown_model(model: &str) -> Error {
    Error::Unsupported(format!("model `{model}`: the models are {}", MODELS.join(", ")))
}

/// The classifier `model` names, for images of `pixels` square pixels.
pub fn classifier(model: &str, batch: usize, pixels: usize, seed: u64) -> Result<Classifier> {
    match model {
        "mlp" => mlp(batch, &[pixels, 100, CLASSES], seed),
        "cnn" => cnn(batch, (pixels as f64).sqrt() as usize, CLASSES, seed),
        other => Err(unknown_model(other)),
    }
}

pub fn train(opts: &TrainOptions) -> Result<Metrics> {
    if !MODELS.contains(&opts.model.as_str()) {
        return Err(unknown_model(&opts.model));
    }
    if opts.batch == 0 || opts.steps == 0 {
        return Err(Error::attribute("train", "--batch and --steps must be positive"));
    }
    let data = FashionMnist::load(&opts.data).map_err(|e| Error::data("dataset", e.to_string()))?;
    match opts.device {
        Device::Gpu => run(kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?), opts, &data),
        Device::Cpu => run(kiln_cpu::Cpu, opts, &data),
    }
}

fn optimizer(opts: &TrainOptions) -> Optimizer {
    match opts.optimizer {
        OptimizerKind::Sgd => Optimizer::Sgd(Sgd::new(opts.lr, 0.0, 0.0)),
        OptimizerKind::Adam => Optimizer::Adam(Adam::new(opts.lr)),
    }
}

fn run<B: Backend + Clone>(backend: B, opts: &TrainOptions, data: &FashionMnist) -> Result<Metrics> {
    let pixels = data.train.image_size();
    let mut model = classifier(&opts.model, opts.batch, pixels, opts.seed)?;
    add_training(&mut model, optimizer(opts))?;
    let mut exec = Executor::compile(backend.clone(), &model.graph, &[model.loss])?;
    let adapter = backend.name();
    let plan = exec.plan();
    log::info!(
        "training {} on {adapter}: {} graph nodes per step, {} KiB of parameters and state, {} KiB peak per step",
        opts.model,
        model.graph.nodes().len(),
        plan.persistent_bytes / 1024,
        plan.peak_step_bytes / 1024
    );
    let bar = progress_bar(opts);
    let mut batches = Batches::new(&data.train, opts.batch, opts.seed);
    let mut recent = Vec::with_capacity(opts.steps);
    let start = Instant::now();
    for step in 0..opts.steps {
        let (images, labels) = batches.next()?;
        exec.set(model.images, &images)?;
        exec.set(model.labels, &labels)?;
        let loss = exec.run(&[model.loss])?[0].as_f32()?[0];
        if !loss.is_finite() {
            return Err(Error::data("train", format!("loss became {loss} at step {step}: lower --lr")));
        }
        recent.push(loss as f64);
        if step % 10 == 0 || step + 1 == opts.steps {
            let rate = ((step + 1) * opts.batch) as f64 / start.elapsed().as_secs_f64();
            bar.set_message(format!("loss {loss:.4}  {rate:.0} samples/s"));
            bar.set_position(step as u64 + 1);
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    bar.finish();
    let params = exec.read(&model.params)?;
    let test_accuracy = evaluate(backend, &opts.model, opts.seed, &params, &data.test)?;
    let tail = &recent[recent.len().saturating_sub(100)..];
    Ok(Metrics {
        model: opts.model.clone(),
        device: opts.device,
        adapter,
        test_accuracy,
        train_loss: tail.iter().sum::<f64>() / tail.len() as f64,
        steps: opts.steps,
        batch: opts.batch,
        samples_per_sec: (opts.steps * opts.batch) as f64 / train_seconds,
        train_seconds,
        planned_step_bytes: exec.plan().peak_step_bytes,
    })
}

fn progress_bar(opts: &TrainOptions) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(opts.steps as u64);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len} {msg} (eta {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar
}

/// Fraction of `test` classified correctly by an MLP with `params`.
fn evaluate<B: Backend>(backend: B, model: &str, seed: u64, params: &[HostTensor], test: &Dataset) -> Result<f64> {
    let model: Classifier = classifier(model, EVAL_BATCH, test.image_size(), seed)?;
    let exec = Executor::compile(backend, &model.graph, &[model.logits])?;
    for (&v, tensor) in model.params.iter().zip(params) {
        exec.set(v, tensor)?;
    }
    let mut exec = exec;
    let mut correct = 0usize;
    for start in (0..test.len()).step_by(EVAL_BATCH) {
        let indices: Vec<usize> = (start..start + EVAL_BATCH).map(|i| i.min(test.len() - 1)).collect();
        let (images, labels) = to_tensors(test, &indices)?;
        exec.set(model.images, &images)?;
        exec.set(model.labels, &labels)?;
        let logits = exec.run(&[model.logits])?.remove(0);
        let classes = CLASSES;
        let valid = (test.len() - start).min(EVAL_BATCH);
        let rows = logits.as_f32()?.chunks(classes).take(valid);
        correct += rows.zip(labels.as_i32()?).filter(|(row, label)| argmax(row) == **label as usize).count();
    }
    Ok(correct as f64 / test.len() as f64)
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

fn to_tensors(set: &Dataset, indices: &[usize]) -> Result<(HostTensor, HostTensor)> {
    let (images, labels) = set.batch(indices);
    let images = HostTensor::f32([indices.len(), set.image_size()].to_vec(), images)?;
    Ok((images, HostTensor::i32([indices.len()].to_vec(), labels)?))
}

/// Seeded shuffled mini-batches, reshuffled every epoch.
struct Batches<'a> {
    set: &'a Dataset,
    batch: usize,
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
    at: usize,
}

impl<'a> Batches<'a> {
    fn new(set: &'a Dataset, batch: usize, seed: u64) -> Self {
        Batches { set, batch, seed, epoch: 0, order: Vec::new(), at: usize::MAX }
    }

    fn next(&mut self) -> Result<(HostTensor, HostTensor)> {
        if self.batch > self.set.len() {
            return Err(Error::attribute(
                "train",
                format!("--batch {} exceeds the {} training images", self.batch, self.set.len()),
            ));
        }
        if self.at.saturating_add(self.batch) > self.order.len() {
            self.order = kiln_nn::shuffled_indices(self.set.len(), self.seed.wrapping_add(self.epoch));
            self.epoch += 1;
            self.at = 0;
        }
        self.at += self.batch;
        to_tensors(self.set, &self.order[self.at - self.batch..self.at])
    }
}

/// Writes `metrics` as JSON through a temporary file and a rename, so a reader never sees half.
pub fn write_metrics(path: &Path, metrics: &Metrics) -> Result<()> {
    let json = serde_json::to_string_pretty(metrics).map_err(|e| Error::data("metrics", e.to_string()))?;
    write_atomically(path, &json)
}

/// Writes `text` (and a final newline) to `path` through a temporary file, fsync and a
/// rename, so a reader never sees half a file and a crash never leaves one.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io { context: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).and_then(|_| file.write_all(b"\n")).and_then(|_| file.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
