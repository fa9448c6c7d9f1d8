//! The training loop for the image zoo: epochs on a seeded shuffle of the training images less
//! a held-out validation split, one submission per step, an evaluation per epoch (validation
//! and test loss and accuracy), checkpoints written atomically, early stopping that keeps the
//! best parameters, and `resume` continuing a run exactly where its checkpoint left it. It
//! prints nothing: a `Progress` hears of every step and epoch.
//!
//! ```no_run
//! # fn main() -> kiln_core::Result<()> {
//! use kiln_nn::{FashionMnist, Progress, TrainConfig, train};
//! let data = FashionMnist::load(std::path::Path::new(kiln_nn::DEFAULT_DIR))
//!     .map_err(|e| kiln_core::Error::data("dataset", e.to_string()))?;
//! let config = TrainConfig { steps: Some(3000), ..TrainConfig::default() };
//! struct Quiet;
//! impl<B: kiln_core::Backend> Progress<B> for Quiet {}
//! let trained = train(kiln_cpu::Cpu, &config, &data, &mut Quiet)?;
//! println!("test accuracy {:?}", trained.metrics.test_accuracy);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_core::{Adagrad, Adam, Backend, Error, HostTensor, LrSchedule, Precision, Result, Rmsprop, Sgd};
use kiln_graph::{Program, Store};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::dataset::BinaryTask;
use crate::dataset::{Dataset, FashionMnist, shuffled_indices};
use crate::dist::{Collectives, Single};
use crate::files::{Output, WriterLock, check_outputs};
use crate::layers::{BinaryLoss, Model, Task};
use crate::optim::{GradientSink, Optimizer, ParamGroup, apply_gradients, minimize_in, store_gradients};
use crate::zoo::{CLASSES, ModelSpec, build_in};

/// The optimizers a run can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    /// SGD with momentum (`momentum`, 0.9 by default).
    Momentum,
    Adagrad,
    Rmsprop,
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
}

/// How the learning rate moves over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    /// Halved every two epochs.
    Step,
    /// Cosine from `lr` down to `lr`/100 over the whole run.
    Cosine,
}

/// `Precision` as a checkpoint's settings name it.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Precision", rename_all = "lowercase")]
enum PrecisionName {
    F32,
    Mixed,
}

/// A training run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelSpec,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    /// SGD's momentum (with `OptimizerKind::Momentum`).
    pub momentum: f32,
    /// L2 decay (decoupled for AdamW).
    pub weight_decay: f32,
    /// Gradients scaled down to this global norm when longer.
    pub clip_norm: Option<f32>,
    /// Products of f32 or (mixed) binary16 operands, the loss then scaled dynamically.
    #[serde(default, with = "PrecisionName")]
    pub precision: Precision,
    pub schedule: ScheduleKind,
    pub batch: usize,
    /// Whole passes over the training images; with `steps`, the run stops at whichever
    /// comes first; with neither, one epoch.
    pub epochs: Option<usize>,
    /// Steps in all, across as many epochs as it takes.
    pub steps: Option<usize>,
    pub seed: u64,
    /// Training images held out to choose the epoch (and stop early) by.
    pub validation: usize,
    /// Stop when validation accuracy has not improved for this many epochs, keeping the
    /// best epoch's parameters.
    pub patience: Option<usize>,
    /// Random horizontal flips and shifts of up to two pixels of the training images.
    pub augment: bool,
    /// Two sets of classes to tell apart, for a model built with one output
    /// (`ModelSpec::binary`); `None`: every class.
    #[serde(default)]
    pub task: Option<BinaryTask>,
    /// Write a checkpoint after every epoch (and, with `patience`, the best one beside it).
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    /// Continue the run a checkpoint left off.
    #[serde(skip)]
    pub resume: Option<PathBuf>,
}

impl Default for TrainConfig {
    /// The MLP with SGD at 0.1, batch 100, one epoch, seed 1, 5,000 validation images.
    fn default() -> Self {
        TrainConfig {
            model: ModelSpec::named("mlp"),
            optimizer: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            clip_norm: None,
            precision: Precision::F32,
            schedule: ScheduleKind::Constant,
            batch: 100,
            epochs: None,
            steps: None,
            seed: 1,
            validation: 5000,
            patience: None,
            augment: false,
            task: None,
            checkpoint: None,
            resume: None,
        }
    }
}

impl TrainConfig {
    /// Refuses settings that make no sense, naming the setting.
    pub fn check(&self) -> Result<()> {
        self.model.check()?;
        let positive = |option: &str, v: Option<usize>| match v {
            Some(0) => Err(Error::data(option, "must be at least 1")),
            _ => Ok(()),
        };
        positive("--batch", Some(self.batch))?;
        positive("--epochs", self.epochs)?;
        positive("--steps", self.steps)?;
        positive("--patience", self.patience)?;
        let finite = |option: &str, v: f32, low: f32, what: &str| {
            if v.is_finite() && v >= low && (option != "--lr" || v > 0.0) {
                Ok(())
            } else {
                Err(Error::data(option, format!("{v} is not {what}")))
            }
        };
        finite("--lr", self.lr, 0.0, "a learning rate: give a finite number above 0")?;
        finite("--momentum", self.momentum, 0.0, "a momentum: give a finite number from 0")?;
        finite("--weight-decay", self.weight_decay, 0.0, "a decay: give a finite number from 0")?;
        if let Some(norm) = self.clip_norm {
            finite("--clip-norm", norm, f32::MIN_POSITIVE, "a norm: give a finite number above 0")?;
        }
        if self.model.binary != self.task.is_some() {
            let why = if self.model.binary {
                "is built with one output but has no"
            } else {
                "has an output per class, not one for a"
            };
            return Err(Error::data("--task", format!("model `{}` {why} binary task", self.model.name)));
        }
        Ok(())
    }

    /// The path of the best epoch's checkpoint beside `checkpoint`: `run.best.st` for `run.st`.
    pub fn best_checkpoint(checkpoint: &Path) -> PathBuf {
        let stem = checkpoint.file_stem().map_or_else(|| "checkpoint".into(), |s| s.to_string_lossy().into_owned());
        let name = match checkpoint.extension() {
            Some(ext) => format!("{stem}.best.{}", ext.to_string_lossy()),
            None => format!("{stem}.best"),
        };
        checkpoint.with_file_name(name)
    }

    /// The optimizer, its schedule spread over the planned steps.
    pub fn optimizer(&self, steps_per_epoch: usize, planned_steps: usize) -> Optimizer {
        let (lr, wd) = (self.lr, self.weight_decay);
        let schedule = match self.schedule {
            ScheduleKind::Constant => LrSchedule::Constant,
            ScheduleKind::Step => LrSchedule::Step { every: (2 * steps_per_epoch) as u32, gamma: 0.5 },
            ScheduleKind::Cosine => LrSchedule::Cosine { warmup: 0, total: planned_steps as u32, min_lr: lr / 100.0 },
        };
        match self.optimizer {
            OptimizerKind::Sgd => Optimizer::Sgd(Sgd { schedule, ..Sgd::new(lr, 0.0, wd) }),
            OptimizerKind::Momentum => Optimizer::Sgd(Sgd { schedule, ..Sgd::new(lr, self.momentum, wd) }),
            OptimizerKind::Adagrad => {
                Optimizer::Adagrad(Adagrad { lr, eps: 1e-10, weight_decay: wd, schedule, step: 1 })
            }
            OptimizerKind::Rmsprop => {
                Optimizer::Rmsprop(Rmsprop { lr, alpha: 0.99, eps: 1e-8, weight_decay: wd, schedule, step: 1 })
            }
            OptimizerKind::Adam => Optimizer::Adam(Adam { schedule, weight_decay: wd, ..Adam::new(lr) }),
            OptimizerKind::Adamw => {
                Optimizer::Adam(Adam { schedule, weight_decay: wd, decoupled: true, ..Adam::new(lr) })
            }
        }
    }
}

/// One epoch's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub steps: usize,
    pub train_loss: f64,
    /// Classifiers: accuracies and losses (validation ones only with a validation split).
    pub train_accuracy: Option<f64>,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    /// The autoencoder: mean squared error per pixel on the test images.
    pub test_mse: Option<f64>,
    /// Binary tasks, on the test images: precision and recall of the positive side, and the
    /// confusion matrix `[[true negatives, false positives], [false negatives, true positives]]`.
    #[serde(default)]
    pub test_precision: Option<f64>,
    #[serde(default)]
    pub test_recall: Option<f64>,
    #[serde(default)]
    pub test_confusion: Option<[[usize; 2]; 2]>,
    pub seconds: f64,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    /// It ran the epochs asked for.
    Epochs,
    /// It ran the steps asked for.
    Steps,
    /// Validation accuracy stopped improving.
    Patience,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub model: String,
    pub adapter: String,
    /// The last epoch's, or with `patience` the best epoch's.
    pub test_accuracy: Option<f64>,
    pub test_mse: Option<f64>,
    /// Binary tasks: the kept epoch's precision, recall and confusion matrix (see `EpochRow`).
    pub test_precision: Option<f64>,
    pub test_recall: Option<f64>,
    pub test_confusion: Option<[[usize; 2]; 2]>,
    /// The epoch whose parameters the run ends with.
    pub kept_epoch: usize,
    /// Mean loss over the last epoch's steps.
    pub train_loss: f64,
    pub steps: usize,
    pub batch: usize,
    pub samples_per_sec: f64,
    pub train_seconds: f64,
    pub stopped_by: Stop,
    /// Data-parallel runs: the ranks, and the seconds spent exchanging gradients (reading them
    /// back, summing them across ranks, writing them again).
    pub ranks: usize,
    pub exchange_seconds: f64,
    /// Device bytes of the parameter store, of the training and evaluation programs' own
    /// buffers (inputs, step values, kernel scratch), and of what the backend shares between
    /// programs (texel textures): together, what the device allocates.
    pub store_bytes: u64,
    pub train_program_bytes: u64,
    pub eval_program_bytes: u64,
    pub shared_bytes: u64,
    pub epochs: Vec<EpochRow>,
}

/// A finished run: its measurements, and its parameters in their store.
pub struct Trained<B: Backend> {
    pub metrics: Metrics,
    pub store: Store<B>,
}

/// Steps within an epoch, as a progress display wants them.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// 0-based.
    pub epoch: usize,
    /// Steps done in this epoch, and planned.
    pub done: usize,
    pub of: usize,
    pub mean_loss: f64,
    pub accuracy: Option<f64>,
    pub samples_per_sec: f64,
}

/// What a run reports as it goes; every method does nothing unless overridden.
pub trait Progress<B: Backend> {
    /// Every few steps, and after the last of an epoch.
    fn step(&mut self, _report: &StepReport) {}
    /// After each epoch's evaluation (and checkpoint): its row, and the run, whose store and
    /// models a picture may read.
    fn epoch(&mut self, _row: &EpochRow, _run: &mut Run<'_, B>) -> Result<()> {
        Ok(())
    }
    /// A sentence about the run: resumed, stopped early, and why it ended.
    fn note(&mut self, _text: &str) {}
}

/// Images evaluated per submission (a CNN's lowered convolutions stay well inside one
/// storage binding at this size).
pub const EVAL_BATCH: usize = 250;

/// Trains `config.model` on `data` with `backend`, reporting to `progress`.
pub fn train<B: Backend>(
    backend: B,
    config: &TrainConfig,
    data: &FashionMnist,
    progress: &mut dyn Progress<B>,
) -> Result<Trained<B>> {
    train_parallel(backend, config, data, progress, &Single)
}

/// `train` as one rank of a data-parallel job: each global batch is cut into one shard per
/// rank, every rank computes its shard's gradients, the gradients are summed across ranks (one
/// all-reduce of one flat buffer per step) and averaged, and every rank applies the same
/// update, so the parameters stay identical (checked, bit for bit, when the run ends). Rank 0
/// alone evaluates, reports and writes checkpoints; it sends the others its parameters at the
/// start (and on resume) and its decision to stop early.
pub fn train_parallel<B: Backend>(
    backend: B,
    config: &TrainConfig,
    data: &FashionMnist,
    progress: &mut dyn Progress<B>,
    collectives: &dyn Collectives,
) -> Result<Trained<B>> {
    config.check()?;
    let ranks = collectives.size();
    if !config.batch.is_multiple_of(ranks) {
        return Err(Error::data("--batch", format!("{} is not a multiple of the {ranks} ranks", config.batch)));
    }
    let best = config.patience.and(config.checkpoint.as_deref()).map(TrainConfig::best_checkpoint);
    let paths: Vec<&Path> = config.checkpoint.as_deref().into_iter().chain(best.as_deref()).collect();
    check_outputs(&paths.iter().map(|path| Output::File { option: "--checkpoint", path }).collect::<Vec<_>>())?;
    // Held for the whole run: a second run writing this checkpoint is refused.
    let writes = collectives.rank() == 0;
    let _lock = config.checkpoint.as_deref().filter(|_| writes).map(WriterLock::acquire).transpose()?;
    let mut run = Run::new(backend, config, data, collectives)?;
    if let Some(path) = config.resume.as_deref().filter(|_| writes) {
        run.resume(path)?;
        progress.note(&format!("resumed from {} after epoch {}", path.display(), run.history.len()));
    }
    if ranks > 1 {
        run.adopt_rank_zero_state()?;
    }
    run.epochs(progress)
}

/// A run in progress: the parameter store, the training and evaluation programs over it, the
/// data and its split, and the history.
pub struct Run<'a, B: Backend> {
    config: &'a TrainConfig,
    /// The data, or for a binary task the images of its two sides, labelled 0 and 1.
    data: Cow<'a, FashionMnist>,
    collectives: &'a dyn Collectives,
    model: Model,
    store: Store<B>,
    step: Step<B>,
    exchange_seconds: f64,
    eval_model: Model,
    eval: Program<B>,
    train_indices: Vec<usize>,
    validation_indices: Vec<usize>,
    steps_per_epoch: usize,
    planned_steps: usize,
    history: Vec<EpochRow>,
    /// With `patience`: the best epoch so far (by validation accuracy) and its state.
    best: Option<(usize, Checkpoint)>,
}

impl<'a, B: Backend> Run<'a, B> {
    fn new(
        backend: B,
        config: &'a TrainConfig,
        data: &'a FashionMnist,
        collectives: &'a dyn Collectives,
    ) -> Result<Self> {
        let data = match &config.task {
            Some(task) => Cow::Owned(FashionMnist { train: task.select(&data.train), test: task.select(&data.test) }),
            None => Cow::Borrowed(data),
        };
        let pixels = data.train.image_size();
        let (train_indices, validation_indices) = split(&data.train, config.validation)?;
        let steps_per_epoch = train_indices.len() / config.batch;
        if steps_per_epoch == 0 {
            return Err(Error::data(
                "--batch",
                format!("{} exceeds the {} training images", config.batch, train_indices.len()),
            ));
        }
        let by_epochs = config.epochs.map(|e| e.saturating_mul(steps_per_epoch));
        let planned_steps = match (by_epochs, config.steps) {
            (Some(e), Some(s)) => e.min(s),
            (Some(e), None) => e,
            (None, Some(s)) => s,
            (None, None) => steps_per_epoch,
        };
        let shard = config.batch / collectives.size();
        let mut model = build_in(&config.model, shard, pixels, true, config.seed, config.precision)?;
        let group =
            ParamGroup { params: model.params.clone(), optimizer: config.optimizer(steps_per_epoch, planned_steps) };
        let mut store = Store::new(backend);
        let groups = std::slice::from_ref(&group);
        let step = if collectives.size() == 1 {
            minimize_in(&mut model.graph, model.loss, groups, config.clip_norm, config.precision)?;
            Step::Fused(Program::compile(&mut store, &model.graph, &[model.loss, model.logits])?)
        } else if config.precision == Precision::Mixed {
            return Err(Error::data(
                "--precision",
                "mixed precision trains on one process: its loss scale is not yet shared across ranks; \
                 give --precision f32 to train data-parallel",
            ));
        } else {
            let update = apply_gradients(&model.graph, groups, config.clip_norm)?;
            let grads = store_gradients(&mut model.graph, model.loss, &model.params.clone(), GradientSink::Assign)?;
            let names = grads.iter().map(|&g| model.graph.node(g).name.clone()).collect();
            let gradients = Program::compile(&mut store, &model.graph, &[model.loss, model.logits])?;
            Step::Split { gradients, update: Box::new(Program::compile(&mut store, &update, &[])?), grads: names }
        };
        let eval_model = build_in(&config.model, EVAL_BATCH, pixels, false, config.seed, config.precision)?;
        let eval = Program::compile(&mut store, &eval_model.graph, &[eval_model.logits])?;
        log::info!(
            "training {} on {}: {} graph nodes per step; device memory: {} KiB of parameters and state, \
             {} KiB for evaluation, {} KiB shared by kernels",
            config.model.name,
            store.backend().name(),
            model.graph.nodes().len(),
            store.bytes() / 1024,
            eval.plan().program_bytes / 1024,
            store.backend().shared_bytes() / 1024
        );
        Ok(Run {
            config,
            data,
            collectives,
            model,
            store,
            step,
            exchange_seconds: 0.0,
            eval_model,
            eval,
            train_indices,
            validation_indices,
            steps_per_epoch,
            planned_steps,
            history: Vec::new(),
            best: None,
        })
    }

    /// The parameter store: parameters, optimizer state, running statistics.
    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// The training model (its graph includes the backward pass and the updates).
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn config(&self) -> &TrainConfig {
        self.config
    }

    pub fn data(&self) -> &FashionMnist {
        &self.data
    }

    pub fn history(&self) -> &[EpochRow] {
        &self.history
    }

    fn steps_done(&self) -> usize {
        self.history.iter().map(|e| e.steps).sum()
    }

    fn epochs(mut self, progress: &mut dyn Progress<B>) -> Result<Trained<B>> {
        let (mut seconds, mut samples) = (0.0, 0usize);
        let stopped_by = loop {
            if let Some(stop) = self.finished()? {
                break stop;
            }
            let row = self.epoch(progress)?;
            seconds += row.seconds;
            samples += row.steps * self.config.batch;
            self.history.push(row.clone());
            if self.config.precision == Precision::Mixed {
                let read = self.store.read(&[crate::optim::LOSS_SCALE, crate::optim::LOSS_SCALE_GOOD_STEPS])?;
                let (scale, count) = (read[0].as_f32()?[0], read[1].as_f32()?[0]);
                log::info!("epoch {}: loss scale {scale}, {count} finite steps since it last changed", row.epoch);
            }
            if self.collectives.rank() == 0 {
                self.keep_if_best()?;
                if let Some(path) = &self.config.checkpoint {
                    self.save(path)?;
                }
                progress.epoch(&row, &mut self)?;
            }
        };
        progress.note(&match stopped_by {
            Stop::Epochs => format!("stopped after {} epochs (--epochs)", self.history.len()),
            Stop::Steps => format!("stopped after {} steps (--steps)", self.steps_done()),
            Stop::Patience => format!(
                "validation accuracy has not improved for {} epochs: stopped, keeping epoch {}",
                self.config.patience.unwrap_or(0),
                self.best.as_ref().map_or(0, |(epoch, _)| *epoch)
            ),
        });
        let kept = match self.best.take() {
            Some((epoch, state)) => {
                state.restore(&mut self.store)?;
                epoch
            }
            None => self.history.len(),
        };
        if self.collectives.size() > 1 {
            // Rank 0 kept the best epoch's parameters: every rank ends with them.
            self.adopt_rank_zero_state()?;
            self.check_identical()?;
        }
        let kept_row =
            self.history.get(kept.saturating_sub(1)).ok_or_else(|| Error::attribute("train", "no epoch ran"))?;
        let last = self.history.last().ok_or_else(|| Error::attribute("train", "no epoch ran"))?;
        let backend = self.store.backend();
        let metrics = Metrics {
            model: self.config.model.name.clone(),
            adapter: backend.name(),
            test_accuracy: kept_row.test_accuracy,
            test_mse: kept_row.test_mse,
            test_precision: kept_row.test_precision,
            test_recall: kept_row.test_recall,
            test_confusion: kept_row.test_confusion,
            kept_epoch: kept,
            train_loss: last.train_loss,
            steps: self.steps_done(),
            batch: self.config.batch,
            samples_per_sec: samples as f64 / seconds.max(1e-9),
            train_seconds: seconds,
            stopped_by,
            ranks: self.collectives.size(),
            exchange_seconds: self.exchange_seconds,
            store_bytes: self.store.bytes(),
            train_program_bytes: self.step.program_bytes(),
            eval_program_bytes: self.eval.plan().program_bytes,
            shared_bytes: backend.shared_bytes(),
            epochs: self.history.clone(),
        };
        Ok(Trained { metrics, store: self.store })
    }

    /// Why the run should stop now, if it should: rank 0's decision (only it evaluates), sent
    /// to every rank.
    fn finished(&self) -> Result<Option<Stop>> {
        let mut decision = [match self.stop_here() {
            None => 0.0,
            Some(Stop::Steps) => 1.0,
            Some(Stop::Epochs) => 2.0,
            Some(Stop::Patience) => 3.0,
        }];
        self.collectives.broadcast(&mut decision)?;
        Ok([None, Some(Stop::Steps), Some(Stop::Epochs), Some(Stop::Patience)][decision[0] as usize])
    }

    fn stop_here(&self) -> Option<Stop> {
        let by_steps = self.config.steps.is_some_and(|s| self.steps_done() >= s);
        let by_epochs = self.history.len()
            >= self.config.epochs.unwrap_or(if self.config.steps.is_some() { usize::MAX } else { 1 });
        let patience = self
            .config
            .patience
            .is_some_and(|p| self.best.as_ref().is_some_and(|(best, _)| self.history.len() >= best + p));
        if by_steps {
            Some(Stop::Steps)
        } else if by_epochs {
            Some(Stop::Epochs)
        } else if patience {
            Some(Stop::Patience)
        } else {
            None
        }
    }

    /// With `patience`, keeps the state of the epoch just finished if its validation accuracy
    /// is the best so far, and writes it beside the checkpoint.
    fn keep_if_best(&mut self) -> Result<()> {
        if self.config.patience.is_none() {
            return Ok(());
        }
        let epoch = self.history.len();
        // Higher is better: validation accuracy, or a reconstruction's validation error negated.
        let score = |row: &EpochRow| row.validation_accuracy.or(row.validation_loss.map(|m| -m)).unwrap_or(f64::MIN);
        let improved =
            self.best.as_ref().is_none_or(|(best, _)| score(&self.history[epoch - 1]) > score(&self.history[best - 1]));
        if improved {
            let state = Checkpoint::capture(&self.store, self.metadata()?)?;
            if let Some(path) = &self.config.checkpoint {
                state.save(&TrainConfig::best_checkpoint(path))?;
            }
            self.best = Some((epoch, state));
        }
        Ok(())
    }

    /// One epoch (or what is left of the steps), then its evaluation.
    fn epoch(&mut self, progress: &mut dyn Progress<B>) -> Result<EpochRow> {
        let epoch = self.history.len();
        let batch = self.config.batch;
        let steps = self.steps_per_epoch.min(self.planned_steps.max(self.steps_done() + 1) - self.steps_done());
        let order = shuffled_indices(self.train_indices.len(), self.config.seed.wrapping_add(epoch as u64));
        let start = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let classes = self.model.task != Task::Reconstruction;
        for step in 0..steps {
            let indices: Vec<usize> =
                order[step * batch..(step + 1) * batch].iter().map(|&i| self.train_indices[i]).collect();
            let (mut images, labels) = to_tensors(&self.data.train, &indices)?;
            if self.config.augment {
                let seed = self.config.seed ^ ((epoch as u64) << 32) ^ step as u64;
                images = augment(&images, self.data.train.cols, seed)?;
            }
            let (loss, right) = self.train_step(&images, &labels)?;
            if !loss.is_finite() {
                let first = self.diagnose(&images, &labels)?;
                return Err(Error::data(
                    "train",
                    format!("loss became {loss} in epoch {}, step {}; {first}: lower --lr", epoch + 1, step + 1),
                ));
            }
            loss_sum += loss as f64;
            correct += right;
            if step % 10 == 0 || step + 1 == steps {
                let seen = (step + 1) * batch;
                progress.step(&StepReport {
                    epoch,
                    done: step + 1,
                    of: steps,
                    mean_loss: loss_sum / (step + 1) as f64,
                    accuracy: classes.then(|| correct as f64 / seen as f64),
                    samples_per_sec: seen as f64 / start.elapsed().as_secs_f64(),
                });
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        // Rank 0 alone evaluates; the others go on to the next step and wait for it there.
        let evaluates = self.collectives.rank() == 0;
        let data = self.data.clone();
        let validation = if self.validation_indices.is_empty() || !evaluates {
            None
        } else {
            Some(self.evaluate(&data.train, &self.validation_indices.clone())?)
        };
        let test: Vec<usize> = (0..data.test.len()).collect();
        let test = if evaluates { Some(self.evaluate(&data.test, &test)?) } else { None };
        let confusion = test.and_then(|t| t.confusion);
        let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
        Ok(EpochRow {
            epoch: epoch + 1,
            steps,
            train_loss: loss_sum / steps.max(1) as f64,
            train_accuracy: classes.then(|| correct as f64 / (steps * batch).max(1) as f64),
            validation_loss: validation.map(|v| v.loss),
            validation_accuracy: validation.filter(|_| classes).map(|v| v.score),
            test_loss: test.filter(|_| classes).map(|t| t.loss),
            test_accuracy: test.filter(|_| classes).map(|t| t.score),
            test_mse: test.filter(|_| !classes).map(|t| t.score),
            test_precision: confusion.and_then(|[[_, fp], [_, tp]]| share(tp, tp + fp)),
            test_recall: confusion.and_then(|[_, [fn_, tp]]| share(tp, tp + fn_)),
            test_confusion: confusion,
            seconds,
        })
    }

    /// One step on a global batch: the loss (averaged over every rank's shard) and the images
    /// classified right (all ranks').
    fn train_step(&mut self, images: &HostTensor, labels: &HostTensor) -> Result<(f32, usize)> {
        let task = self.model.task;
        let (rank, ranks) = (self.collectives.rank(), self.collectives.size());
        let (images, labels) = (shard(images, rank, ranks)?, shard(labels, rank, ranks)?);
        let program = match &self.step {
            Step::Fused(program) | Step::Split { gradients: program, .. } => program,
        };
        program.set(self.model.images, &images)?;
        program.set(self.model.labels, &fed_labels(task, &labels)?)?;
        let out = program.run(&mut self.store, &[self.model.loss, self.model.logits])?;
        let loss = out[0].as_f32()?[0];
        let correct = count_correct(task, &out[1], labels.as_i32()?)?.unwrap_or(0);
        let Step::Split { update, grads, .. } = &self.step else { return Ok((loss, correct)) };
        let exchange = Instant::now();
        let names: Vec<&str> = grads.iter().map(String::as_str).collect();
        let tensors = self.store.read(&names)?;
        let mut flat: Vec<f32> = Vec::with_capacity(tensors.iter().map(|t| t.shape.numel()).sum::<usize>() + 2);
        for tensor in &tensors {
            flat.extend_from_slice(tensor.as_f32()?);
        }
        flat.extend([loss, correct as f32]);
        self.collectives.all_reduce_sum(&mut flat)?;
        let scale = 1.0 / ranks as f32;
        let mut offset = 0;
        for (name, tensor) in names.iter().zip(&tensors) {
            let n = tensor.shape.numel();
            let mean = flat[offset..offset + n].iter().map(|v| v * scale).collect();
            self.store.write(name, &HostTensor::f32(tensor.shape.clone(), mean)?)?;
            offset += n;
        }
        self.exchange_seconds += exchange.elapsed().as_secs_f64();
        update.run(&mut self.store, &[])?;
        Ok((flat[offset] * scale, flat[offset + 1] as usize))
    }

    /// Makes every rank's store rank 0's: its tensors in one broadcast, then its counters
    /// and history.
    fn adopt_rank_zero_state(&mut self) -> Result<()> {
        let tensors = self.store.read_all()?;
        let mut flat: Vec<f32> = Vec::new();
        for tensor in tensors.values() {
            flat.extend(tensor.as_f32().map(<[f32]>::to_vec).unwrap_or_default());
        }
        self.collectives.broadcast(&mut flat)?;
        let mut offset = 0;
        for (name, tensor) in &tensors {
            let Ok(values) = tensor.as_f32() else { continue };
            let received = flat[offset..offset + values.len()].to_vec();
            self.store.write(name, &HostTensor::f32(tensor.shape.clone(), received)?)?;
            offset += values.len();
        }
        let mut state = to_json(&(self.store.counters(), &self.history))?.into_bytes();
        self.collectives.broadcast_bytes(&mut state)?;
        let (counters, history): (std::collections::BTreeMap<String, u32>, Vec<EpochRow>) =
            serde_json::from_slice(&state).map_err(|e| Error::data("rank 0's state", e.to_string()))?;
        for (name, runs) in counters {
            self.store.set_counter(&name, runs);
        }
        self.history = history;
        Ok(())
    }

    /// Refuses a data-parallel run whose ranks ended with parameters that differ in any bit.
    fn check_identical(&self) -> Result<()> {
        let names: Vec<&str> = self.model.params.iter().map(|&p| self.model.graph.node(p).name.as_str()).collect();
        let mine: Vec<f32> =
            self.store.read(&names)?.iter().flat_map(|t| t.as_f32().map(<[f32]>::to_vec).unwrap_or_default()).collect();
        let mut zeros = mine.clone();
        self.collectives.broadcast(&mut zeros)?;
        match mine.iter().zip(&zeros).position(|(a, b)| a.to_bits() != b.to_bits()) {
            None => Ok(()),
            Some(at) => Err(Error::data(
                "data-parallel training",
                format!("rank {}'s parameters differ from rank 0's (at element {at})", self.collectives.rank()),
            )),
        }
    }

    /// The evaluation program's outputs for `indices` of `set`, `EVAL_BATCH` images at a time,
    /// each chunk with its images and labels (the last padded with its own first image; only
    /// its real rows are passed on).
    fn eval_chunks(
        &mut self,
        set: &Dataset,
        indices: &[usize],
        mut each: impl FnMut(&[f32], &[f32], &[i32]) -> Result<()>,
    ) -> Result<()> {
        for chunk in indices.chunks(EVAL_BATCH) {
            let padded: Vec<usize> = (0..EVAL_BATCH).map(|i| chunk[i.min(chunk.len() - 1)]).collect();
            let (images, labels) = to_tensors(set, &padded)?;
            self.eval.set(self.eval_model.images, &images)?;
            self.eval.set(self.eval_model.labels, &fed_labels(self.eval_model.task, &labels)?)?;
            let outputs = self.eval.run(&mut self.store, &[self.eval_model.logits])?.remove(0);
            let width = outputs.shape.numel() / EVAL_BATCH;
            let (out, pixels) = (&outputs.as_f32()?[..chunk.len() * width], set.image_size());
            each(out, &images.as_f32()?[..chunk.len() * pixels], &labels.as_i32()?[..chunk.len()])?;
        }
        Ok(())
    }

    /// On `indices` of `set`: a classifier's mean loss (cross-entropy, or its binary
    /// criterion) and accuracy, with a binary task's confusion matrix; or the mean squared
    /// error per pixel of the autoencoder's reconstructions, twice.
    fn evaluate(&mut self, set: &Dataset, indices: &[usize]) -> Result<Evaluation> {
        let task = self.model.task;
        let (mut loss, mut score, mut confusion) = (0.0f64, 0.0f64, [[0usize; 2]; 2]);
        self.eval_chunks(set, indices, |out, images, labels| {
            match task {
                Task::Classes => {
                    for (row, &label) in out.chunks(CLASSES).zip(labels) {
                        loss += cross_entropy(row, label as usize);
                    }
                    let rows = HostTensor::f32(vec![labels.len(), CLASSES], out.to_vec())?;
                    score += count_correct(task, &rows, labels)?.unwrap_or(0) as f64;
                }
                Task::Binary(criterion) => {
                    for (&logit, &label) in out.iter().zip(labels) {
                        loss += binary_loss(criterion, logit as f64, label == 1);
                        confusion[usize::from(label == 1)][usize::from(logit > 0.0)] += 1;
                    }
                }
                Task::Reconstruction => {
                    let squares: f64 = out.iter().zip(images).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
                    loss += squares;
                    score += squares;
                }
            }
            Ok(())
        })?;
        let images = indices.len().max(1) as f64;
        Ok(match task {
            Task::Classes => Evaluation { loss: loss / images, score: score / images, confusion: None },
            Task::Binary(_) => {
                let right = confusion[0][0] + confusion[1][1];
                Evaluation { loss: loss / images, score: right as f64 / images, confusion: Some(confusion) }
            }
            Task::Reconstruction => {
                let pixels = (indices.len() * set.image_size()).max(1) as f64;
                Evaluation { loss: loss / pixels, score: score / pixels, confusion: None }
            }
        })
    }

    /// The evaluation program's outputs (logits, or reconstructions) for the first `count` test
    /// images, and those images.
    pub fn test_outputs(&mut self, count: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut outputs, mut inputs) = (Vec::new(), Vec::new());
        let indices: Vec<usize> = (0..count.min(self.data.test.len())).collect();
        let data = self.data.clone();
        self.eval_chunks(&data.test, &indices, |out, images, _| {
            outputs.extend_from_slice(out);
            inputs.extend_from_slice(images);
            Ok(())
        })?;
        Ok((outputs, inputs))
    }

    /// The first layer's filters, where it is a one-channel convolution (`[O, 1, kH, kW]`).
    pub fn first_filters(&self) -> Result<Option<HostTensor>> {
        let graph = &self.model.graph;
        let first = self.model.params.iter().find(|&&v| matches!(graph.shape(v).dims(), &[_, 1, _, _]));
        first.map(|&v| self.store.read(&[&graph.node(v).name]).map(|mut t| t.remove(0))).transpose()
    }

    /// The first convolution's output for the first test image, as `[C, 1, H, W]` planes.
    pub fn feature_maps(&mut self) -> Result<Option<HostTensor>> {
        let pixels = self.data.test.image_size();
        let model = build_in(&self.config.model, 1, pixels, false, self.config.seed, self.config.precision)?;
        let Some(conv) = (0..model.graph.nodes().len())
            .map(kiln_graph::Value)
            .find(|&v| matches!(model.graph.node(v).op, kiln_core::Op::Conv2d(_)))
        else {
            return Ok(None);
        };
        let program = Program::compile(&mut self.store, &model.graph, &[conv])?;
        let (images, labels) = to_tensors(&self.data.test, &[0])?;
        program.set(model.images, &images)?;
        program.set(model.labels, &fed_labels(model.task, &labels)?)?;
        let maps = program.run(&mut self.store, &[conv])?.remove(0);
        let d = maps.shape.dims().to_vec();
        HostTensor::f32(vec![d[1], 1, d[2], d[3]], maps.as_f32()?.to_vec()).map(Some)
    }

    /// Where a step went non-finite: the same batch's forward and backward pass run once more
    /// over the parameters now in the store, every value read, the first non-finite one named.
    fn diagnose(&mut self, images: &HostTensor, labels: &HostTensor) -> Result<String> {
        let pixels = self.data.train.image_size();
        let mut model =
            build_in(&self.config.model, self.config.batch, pixels, true, self.config.seed, self.config.precision)?;
        kiln_graph::grad(&mut model.graph, model.loss, &model.params)?;
        let labels = fed_labels(model.task, labels)?;
        let inputs = [(model.images, images), (model.labels, &labels)];
        Ok(match first_non_finite(&mut self.store, &model.graph, &inputs)? {
            Some(node) => format!("the first non-finite value of that batch's forward and backward pass is {node}"),
            None => "the same batch now computes finite values throughout".into(),
        })
    }

    /// The run's settings and history, for a checkpoint.
    fn metadata(&self) -> Result<HashMap<String, String>> {
        classifier_metadata(self.config, &self.history, self.data.train.image_size())
    }

    /// Parameters, optimizer state, running statistics, counters and the history, atomically.
    fn save(&self, path: &Path) -> Result<()> {
        Checkpoint::capture(&self.store, self.metadata()?)?.save(path)
    }

    /// Continues the run a checkpoint of the same settings describes; a setting that differs
    /// is refused by name.
    fn resume(&mut self, path: &Path) -> Result<()> {
        let checkpoint = Checkpoint::load(path)?;
        let what = path.display().to_string();
        let saved: TrainConfig = serde_json::from_str(checkpoint.meta("config")?)
            .map_err(|e| Error::data(&what, format!("its settings: {e}")))?;
        refuse_changed(&what, &settings(&saved, self.config))?;
        checkpoint.restore(&mut self.store)?;
        self.history = serde_json::from_str(checkpoint.meta("history")?)
            .map_err(|e| Error::data(&what, format!("its history: {e}")))?;
        // The best epoch so far, from the file written beside the checkpoint being resumed.
        let best_path = TrainConfig::best_checkpoint(path);
        if self.config.patience.is_some() && best_path.exists() {
            let best = Checkpoint::load(&best_path)?;
            let rows: Vec<EpochRow> = serde_json::from_str(best.meta("history")?)
                .map_err(|e| Error::data(best_path.display().to_string(), format!("its history: {e}")))?;
            self.best = Some((rows.len(), best));
        }
        Ok(())
    }
}

/// What a classifier's checkpoint says of its run (what `SavedClassifier` and a resumed run
/// read): the settings, the epochs so far and the images' pixels.
pub fn classifier_metadata(
    config: &TrainConfig,
    history: &[EpochRow],
    pixels: usize,
) -> Result<HashMap<String, String>> {
    Ok(HashMap::from([
        ("model".to_string(), config.model.name.clone()),
        ("config".to_string(), to_json(config)?),
        ("history".to_string(), to_json(&history)?),
        ("seed".to_string(), config.seed.to_string()),
        ("batch".to_string(), config.batch.to_string()),
        ("pixels".to_string(), pixels.to_string()),
    ]))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::data("checkpoint", e.to_string()))
}

/// Refuses to resume the checkpoint `what` where one of `settings` (name, as saved, as now)
/// differs, naming the first.
pub(crate) fn refuse_changed(what: &str, settings: &[(&str, String, String)]) -> Result<()> {
    match settings.iter().find(|(_, saved, now)| saved != now) {
        Some((setting, saved, now)) => Err(Error::data(
            what,
            format!(
                "was written with {setting} {saved}, not {now}; a resumed run must keep every setting that shapes \
                 it (model, batch, seed, optimizer, learning rate, schedule, epochs, steps…): resume with those, or \
                 start afresh without --resume"
            ),
        )),
        None => Ok(()),
    }
}

/// The settings that shape a run (and so must not change on resume): name, as saved, as now.
fn settings(saved: &TrainConfig, now: &TrainConfig) -> [(&'static str, String, String); 15] {
    [
        ("--model", saved.model.name.clone(), now.model.name.clone()),
        ("the mlp's shape", format!("{:?}", saved.model), format!("{:?}", now.model)),
        ("--optimizer", format!("{:?}", saved.optimizer), format!("{:?}", now.optimizer)),
        ("--lr", saved.lr.to_string(), now.lr.to_string()),
        ("--momentum", saved.momentum.to_string(), now.momentum.to_string()),
        ("--weight-decay", saved.weight_decay.to_string(), now.weight_decay.to_string()),
        ("--clip-norm", format!("{:?}", saved.clip_norm), format!("{:?}", now.clip_norm)),
        ("--precision", saved.precision.name().into(), now.precision.name().into()),
        ("--schedule", format!("{:?}", saved.schedule), format!("{:?}", now.schedule)),
        ("--batch", saved.batch.to_string(), now.batch.to_string()),
        ("--epochs", format!("{:?}", saved.epochs), format!("{:?}", now.epochs)),
        ("--steps", format!("{:?}", saved.steps), format!("{:?}", now.steps)),
        ("--seed", saved.seed.to_string(), now.seed.to_string()),
        ("--task", format!("{:?}", saved.task), format!("{:?}", now.task)),
        (
            "--validation and --augment",
            format!("{} {}", saved.validation, saved.augment),
            format!("{} {}", now.validation, now.augment),
        ),
    ]
}

/// The training and validation images: a fixed permutation of the training set, the last
/// `validation` of them held out.
fn split(set: &Dataset, validation: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    if validation >= set.len() {
        return Err(Error::data("--validation", format!("{validation} leaves no training images of {}", set.len())));
    }
    let mut order = shuffled_indices(set.len(), 0x5eed);
    let held = order.split_off(set.len() - validation);
    Ok((order, held))
}

/// Each image of `batch` flipped left to right with probability ½ and shifted by up to two
/// pixels each way (zero fill), from a generator seeded by `seed` (so a resumed run draws the
/// same).
fn augment(batch: &HostTensor, side: usize, seed: u64) -> Result<HostTensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(batch.shape.numel());
    for image in batch.as_f32()?.chunks(side * side) {
        let flip = rng.random_bool(0.5);
        let (dy, dx) = (rng.random_range(-2i64..=2), rng.random_range(-2i64..=2));
        for r in 0..side as i64 {
            for c in 0..side as i64 {
                let (sr, shifted) = (r - dy, c - dx);
                let sc = if flip { side as i64 - 1 - shifted } else { shifted };
                let inside = (0..side as i64).contains(&sr) && (0..side as i64).contains(&sc);
                out.push(if inside { image[(sr * side as i64 + sc) as usize] } else { 0.0 });
            }
        }
    }
    HostTensor::f32(batch.shape.clone(), out)
}

/// `logsumexp(row) - row[label]`, in f64.
pub fn cross_entropy(row: &[f32], label: usize) -> f64 {
    let top = row.iter().map(|&v| v as f64).fold(f64::MIN, f64::max);
    let total: f64 = row.iter().map(|&v| (v as f64 - top).exp()).sum();
    top + total.ln() - row.get(label).map_or(f64::NAN, |&v| v as f64)
}

/// How many outputs name their label: rows of logits whose largest entry is their label, or
/// binary logits whose sign is (positive for label 1); `None` for a reconstruction.
pub fn count_correct(task: Task, logits: &HostTensor, labels: &[i32]) -> Result<Option<usize>> {
    let logits = logits.as_f32()?;
    Ok(match task {
        Task::Classes => {
            Some(logits.chunks(CLASSES).zip(labels).filter(|(row, label)| argmax(row) == **label as usize).count())
        }
        Task::Binary(_) => Some(logits.iter().zip(labels).filter(|(a, label)| (**a > 0.0) == (**label == 1)).count()),
        Task::Reconstruction => None,
    })
}

/// A binary criterion of logit `a` for an image of class 1 (`positive`) or 0, in f64.
fn binary_loss(criterion: BinaryLoss, a: f64, positive: bool) -> f64 {
    let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
    match criterion {
        BinaryLoss::Logistic => softplus(if positive { -a } else { a }),
        BinaryLoss::Perceptron => (f64::from(a > 0.0) - f64::from(positive)) * a,
    }
}

/// The labels as a model's labels input takes them: i32 class indices, or for a binary task
/// f32 zeros and ones `[N, 1]`.
fn fed_labels(task: Task, labels: &HostTensor) -> Result<HostTensor> {
    match task {
        Task::Classes | Task::Reconstruction => Ok(labels.clone()),
        Task::Binary(_) => {
            let values = labels.as_i32()?;
            HostTensor::f32(vec![values.len(), 1], values.iter().map(|&l| l as f32).collect())
        }
    }
}

/// A model's figures on a set of images.
#[derive(Clone, Copy, Debug)]
struct Evaluation {
    loss: f64,
    score: f64,
    confusion: Option<[[usize; 2]; 2]>,
}

/// The index of the largest entry (the first, on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

pub fn to_tensors(set: &Dataset, indices: &[usize]) -> Result<(HostTensor, HostTensor)> {
    let (images, labels) = set.batch(indices);
    let images = HostTensor::f32([indices.len(), set.image_size()].to_vec(), images)?;
    Ok((images, HostTensor::i32([indices.len()].to_vec(), labels)?))
}

/// The first node of `graph`, in order, whose value holds NaN or infinity when `graph` runs
/// once over `store` with `inputs`, described; `None` when every value is finite.
pub fn first_non_finite<B: Backend>(
    store: &mut Store<B>,
    graph: &kiln_graph::Graph,
    inputs: &[(kiln_graph::Value, &HostTensor)],
) -> Result<Option<String>> {
    let values: Vec<kiln_graph::Value> = (0..graph.nodes().len())
        .map(kiln_graph::Value)
        .filter(|&v| graph.node(v).op.updated_inputs().is_empty())
        .collect();
    let program = Program::compile(store, graph, &values)?;
    for (v, tensor) in inputs {
        program.set(*v, tensor)?;
    }
    let got = program.run(store, &values)?;
    let found = values.iter().zip(&got).find(|(_, t)| t.as_f32().is_ok_and(|x| x.iter().any(|v| !v.is_finite())));
    Ok(found.map(|(&v, _)| {
        let node = graph.node(v);
        match node.op.role() {
            kiln_core::Role::Variable => {
                format!("variable `{}` {} itself (an update has already made it non-finite)", node.name, node.shape)
            }
            kiln_core::Role::Input | kiln_core::Role::View | kiln_core::Role::Kernel => {
                format!("node {} ({}) {}", v.0, node.op.name(), node.shape)
            }
        }
    }))
}

/// How a run steps: one fused program (one process), or split at the gradient for the
/// exchange between ranks.
enum Step<B: Backend> {
    Fused(Program<B>),
    Split { gradients: Program<B>, update: Box<Program<B>>, grads: Vec<String> },
}

impl<B: Backend> Step<B> {
    fn program_bytes(&self) -> u64 {
        match self {
            Step::Fused(program) => program.plan().program_bytes,
            Step::Split { gradients, update, .. } => gradients.plan().program_bytes + update.plan().program_bytes,
        }
    }
}

/// Rank `rank`'s share of a batch's rows, of `ranks` equal shares.
fn shard(tensor: &HostTensor, rank: usize, ranks: usize) -> Result<HostTensor> {
    if ranks == 1 {
        return Ok(tensor.clone());
    }
    let dims = tensor.shape.dims();
    let rows = dims[0] / ranks;
    let per_row: usize = dims[1..].iter().product();
    let shape = [&[rows], &dims[1..]].concat();
    let range = rank * rows * per_row..(rank + 1) * rows * per_row;
    match &tensor.data {
        kiln_core::TensorData::F32(v) => HostTensor::f32(shape, v[range].to_vec()),
        kiln_core::TensorData::I32(v) => HostTensor::i32(shape, v[range].to_vec()),
    }
}
