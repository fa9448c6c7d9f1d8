//! `kiln train`: trains a classifier on Fashion-MNIST, one submission per step, epoch by
//! epoch: a seeded shuffle of the training images less a held-out validation split, a progress
//! bar, a summary row per epoch (train loss and accuracy, validation and test accuracy, time),
//! a checkpoint written atomically after every epoch, early stopping on validation accuracy,
//! and `--resume` continuing a run exactly where its checkpoint left it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kiln_core::{Adam, Backend, Error, HostTensor, LrSchedule, Result, Sgd};
use kiln_graph::{Program, Store};
use kiln_nn::{Dataset, FashionMnist, shuffled_indices};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::files::{Output, WriterLock, check_outputs};
use crate::models::{CLASSES, Classifier, MODELS, Optimizer, Task, add_training, build};

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

/// How the learning rate moves over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    Constant,
    /// Halved every two epochs.
    Step,
    /// Cosine from `--lr` down to `--lr`/100 over the whole run.
    Cosine,
}

/// A training run's settings; the `kiln train` command line is these.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainOptions {
    /// mlp, cnn, cnn-bn, mobilenet, lstm or autoencoder.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    #[arg(long, default_value_t = 0.1, value_parser = learning_rate, allow_negative_numbers = true)]
    pub lr: f32,
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: ScheduleKind,
    #[arg(long, default_value_t = 100, value_parser = positive, allow_negative_numbers = true)]
    pub batch: usize,
    #[arg(long, default_value_t = 1, value_parser = positive, allow_negative_numbers = true)]
    pub epochs: usize,
    /// Stop after this many steps in all (a short run); `None`: whole epochs.
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder with the IDX files (raw or .gz).
    #[arg(long, default_value = kiln_nn::DEFAULT_DIR)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "gpu")]
    pub device: Device,
    /// Show a progress bar (the command line always does).
    #[arg(skip = true)]
    pub progress: bool,
    /// Training images held out to choose the epoch (and stop early) by.
    #[arg(long, default_value_t = 5000)]
    pub validation: usize,
    /// Stop when validation accuracy has not improved for this many epochs.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Write a checkpoint (safetensors, atomically) after every epoch.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue the run a checkpoint left off.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// A folder for PNG pictures: loss and accuracy per epoch, the first layer's filters and
    /// feature maps, an autoencoder's reconstructions.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Random horizontal flips and shifts of up to two pixels of the training images.
    #[arg(long)]
    pub augment: bool,
    /// Write the run's figures as a JSON object, with a row per epoch.
    #[arg(long)]
    pub metrics_json: Option<PathBuf>,
}

/// One epoch's summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub steps: usize,
    pub train_loss: f64,
    /// Classifiers: accuracies (validation only with a validation split).
    pub train_accuracy: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub test_accuracy: Option<f64>,
    /// The autoencoder: mean squared error per pixel on the test images.
    pub test_mse: Option<f64>,
    pub seconds: f64,
}

/// What `--metrics-json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub model: String,
    pub device: Device,
    pub adapter: String,
    pub test_accuracy: Option<f64>,
    pub test_mse: Option<f64>,
    /// Mean loss over the last epoch's steps.
    pub train_loss: f64,
    pub steps: usize,
    pub batch: usize,
    pub samples_per_sec: f64,
    pub train_seconds: f64,
    /// Device bytes of the parameter store, of the training and evaluation programs' own
    /// buffers (inputs, step values, kernel scratch), and of what the backend shares between
    /// programs (texel textures): together, what the device allocates.
    pub store_bytes: u64,
    pub train_program_bytes: u64,
    pub eval_program_bytes: u64,
    pub shared_bytes: u64,
    pub epochs: Vec<EpochRow>,
}

/// Images evaluated per submission (a CNN's lowered convolutions stay well inside one
/// storage binding at this size).
const EVAL_BATCH: usize = 250;

/// The classifier `model` names in training mode, for images of `pixels` square pixels.
pub fn classifier(model: &str, batch: usize, pixels: usize, seed: u64) -> Result<Classifier> {
    build(model, batch, pixels, true, seed)
}

/// A count of at least 1.
pub fn positive(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// A learning rate: a finite number above 0.
pub fn learning_rate(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(lr) if lr.is_finite() && lr > 0.0 => Ok(lr),
        _ => Err(format!("`{text}` is not a learning rate: give a finite number above 0, such as 1e-3")),
    }
}

pub fn train(opts: &TrainOptions) -> Result<Metrics> {
    if !MODELS.contains(&opts.model.as_str()) {
        return Err(Error::Unsupported(format!("model `{}`: the models are {}", opts.model, MODELS.join(", "))));
    }
    if opts.batch == 0 || opts.epochs == 0 || opts.steps == Some(0) {
        return Err(Error::attribute("train", "--batch, --epochs and --steps must be positive"));
    }
    learning_rate(&opts.lr.to_string()).map_err(|e| Error::attribute("--lr", e))?;
    let data = FashionMnist::load(&opts.data).map_err(|e| Error::data("dataset", e.to_string()))?;
    check_outputs(&outputs(opts))?;
    // Held for the whole run: a second run writing this checkpoint is refused.
    let _lock = opts.checkpoint.as_deref().map(WriterLock::acquire).transpose()?;
    match opts.device {
        Device::Gpu => run(kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?), opts, &data),
        Device::Cpu => run(kiln_cpu::Cpu, opts, &data),
    }
}

/// Every file a run writes, by the option that names it.
fn outputs(opts: &TrainOptions) -> Vec<Output<'_>> {
    let pictures = ["history", "filters", "feature-maps", "reconstructions"];
    let names = pictures.iter().map(|p| format!("{}-{p}.png", opts.model)).collect();
    let checkpoint = opts.checkpoint.as_deref().map(|path| Output::File { option: "--checkpoint", path });
    let metrics = opts.metrics_json.as_deref().map(|path| Output::File { option: "--metrics-json", path });
    [checkpoint, metrics]
        .into_iter()
        .flatten()
        .chain(opts.plots.as_deref().map(|path| Output::Folder { option: "--plots", path, names }))
        .collect()
}

/// The optimizer, its schedule spread over the planned epochs (not cut short by `--steps`, so
/// that a run stopped early and resumed follows the same schedule).
fn optimizer(opts: &TrainOptions, steps_per_epoch: usize) -> Optimizer {
    let planned_steps = opts.epochs * steps_per_epoch;
    let schedule = match opts.schedule {
        ScheduleKind::Constant => LrSchedule::Constant,
        ScheduleKind::Step => LrSchedule::Step { every: (2 * steps_per_epoch) as u32, gamma: 0.5 },
        ScheduleKind::Cosine => LrSchedule::Cosine { total: planned_steps as u32, min_lr: opts.lr / 100.0 },
    };
    match opts.optimizer {
        OptimizerKind::Sgd => Optimizer::Sgd(Sgd { schedule, ..Sgd::new(opts.lr, 0.0, 0.0) }),
        OptimizerKind::Adam => Optimizer::Adam(Adam { schedule, ..Adam::new(opts.lr) }),
    }
}

/// The training and validation images: a fixed permutation of the training set, the last
/// `validation` of them held out.
fn split(set: &Dataset, validation: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    if validation >= set.len() {
        return Err(Error::attribute(
            "train",
            format!("--validation {validation} leaves no training images of {}", set.len()),
        ));
    }
    let mut order = shuffled_indices(set.len(), 0x5eed);
    let held = order.split_off(set.len() - validation);
    Ok((order, held))
}

/// A run in progress: the parameter store, the training and evaluation programs over it, the
/// data, and the history.
struct Run<'a, B: Backend> {
    opts: &'a TrainOptions,
    data: &'a FashionMnist,
    model: Classifier,
    store: Store<B>,
    train: Program<B>,
    eval_model: Classifier,
    eval: Program<B>,
    train_indices: Vec<usize>,
    validation_indices: Vec<usize>,
    steps_per_epoch: usize,
    total_steps: usize,
    history: Vec<EpochRow>,
}

fn run<B: Backend + Clone>(backend: B, opts: &TrainOptions, data: &FashionMnist) -> Result<Metrics> {
    let pixels = data.train.image_size();
    let (train_indices, validation_indices) = split(&data.train, opts.validation)?;
    let steps_per_epoch = train_indices.len() / opts.batch;
    if steps_per_epoch == 0 {
        return Err(Error::attribute(
            "train",
            format!("--batch {} exceeds the {} training images", opts.batch, train_indices.len()),
        ));
    }
    let total_steps = opts.steps.unwrap_or(opts.epochs * steps_per_epoch);
    let mut model = build(&opts.model, opts.batch, pixels, true, opts.seed)?;
    add_training(&mut model, optimizer(opts, steps_per_epoch))?;

    let mut store = Store::new(backend.clone());
    let train = Program::compile(&mut store, &model.graph, &[model.loss, model.logits])?;
    let eval_model = build(&opts.model, EVAL_BATCH, pixels, false, opts.seed)?;
    let eval = Program::compile(&mut store, &eval_model.graph, &[eval_model.logits])?;
    log::info!(
        "training {} on {}: {} graph nodes per step; device memory: {} KiB of parameters and state, \
         {} KiB for the training program, {} KiB for evaluation, {} KiB shared by kernels",
        opts.model,
        backend.name(),
        model.graph.nodes().len(),
        store.bytes() / 1024,
        train.plan().program_bytes / 1024,
        eval.plan().program_bytes / 1024,
        backend.shared_bytes() / 1024
    );
    let mut run = Run {
        opts,
        data,
        model,
        store,
        train,
        eval_model,
        eval,
        train_indices,
        validation_indices,
        steps_per_epoch,
        total_steps,
        history: Vec::new(),
    };
    if let Some(path) = &opts.resume {
        run.resume(path)?;
    }
    run.epochs(&backend.name())
}

impl<B: Backend + Clone> Run<'_, B> {
    fn steps_done(&self) -> usize {
        self.history.iter().map(|e| e.steps).sum()
    }

    fn epochs(mut self, adapter: &str) -> Result<Metrics> {
        let start = Instant::now();
        let (mut seconds, mut samples) = (0.0, 0usize);
        while self.steps_done() < self.total_steps && self.history.len() < self.opts.epochs {
            let row = self.epoch()?;
            seconds += row.seconds;
            samples += row.steps * self.opts.batch;
            println!("{}", summary(&row));
            self.history.push(row);
            if let Some(path) = &self.opts.checkpoint {
                self.save(path)?;
            }
            if let Some(dir) = &self.opts.plots {
                self.pictures(dir)?;
            }
            if self.stop_early() {
                println!(
                    "validation accuracy has not improved for {} epochs: stopping",
                    self.opts.patience.unwrap_or(0)
                );
                break;
            }
        }
        log::debug!("trained in {:.1} s", start.elapsed().as_secs_f64());
        let last = self.history.last().ok_or_else(|| Error::attribute("train", "no epoch ran"))?;
        Ok(Metrics {
            model: self.opts.model.clone(),
            device: self.opts.device,
            adapter: adapter.into(),
            test_accuracy: last.test_accuracy,
            test_mse: last.test_mse,
            train_loss: last.train_loss,
            steps: self.steps_done(),
            batch: self.opts.batch,
            samples_per_sec: samples as f64 / seconds.max(1e-9),
            train_seconds: seconds,
            store_bytes: self.store.bytes(),
            train_program_bytes: self.train.plan().program_bytes,
            eval_program_bytes: self.eval.plan().program_bytes,
            shared_bytes: self.store.backend().shared_bytes(),
            epochs: self.history.clone(),
        })
    }

    /// One epoch (or what is left of `--steps`), then its evaluation.
    fn epoch(&mut self) -> Result<EpochRow> {
        let epoch = self.history.len();
        let steps = self.steps_per_epoch.min(self.total_steps - self.steps_done());
        let order = shuffled_indices(self.train_indices.len(), self.opts.seed.wrapping_add(epoch as u64));
        let bar = progress_bar(self.opts, epoch, steps);
        let start = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let classes = self.model.task == Task::Classes;
        for step in 0..steps {
            let indices: Vec<usize> = order[step * self.opts.batch..(step + 1) * self.opts.batch]
                .iter()
                .map(|&i| self.train_indices[i])
                .collect();
            let (mut images, labels) = to_tensors(&self.data.train, &indices)?;
            if self.opts.augment {
                let seed = self.opts.seed ^ ((epoch as u64) << 32) ^ step as u64;
                images = augment(&images, self.data.train.cols, seed)?;
            }
            self.train.set(self.model.images, &images)?;
            self.train.set(self.model.labels, &labels)?;
            let out = self.train.run(&mut self.store, &[self.model.loss, self.model.logits])?;
            let loss = out[0].as_f32()?[0];
            if !loss.is_finite() {
                let first = self.diagnose(&images, &labels)?;
                return Err(Error::data(
                    "train",
                    format!("loss became {loss} in epoch {}, step {}; {first}: lower --lr", epoch + 1, step + 1),
                ));
            }
            loss_sum += loss as f64;
            if classes {
                correct += count_correct(&out[1], labels.as_i32()?)?;
            }
            if step % 10 == 0 || step + 1 == steps {
                let seen = (step + 1) * self.opts.batch;
                let rate = seen as f64 / start.elapsed().as_secs_f64();
                let accuracy = correct as f64 / seen as f64;
                bar.set_message(format!(
                    "loss {:.4}  accuracy {accuracy:.4}  {rate:.0} samples/s",
                    loss_sum / (step + 1) as f64
                ));
                bar.set_position(step as u64 + 1);
            }
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let validation_accuracy = if self.validation_indices.is_empty() || !classes {
            None
        } else {
            Some(self.evaluate(&self.data.train, &self.validation_indices.clone())?)
        };
        let test: Vec<usize> = (0..self.data.test.len()).collect();
        let test_score = self.evaluate(&self.data.test, &test)?;
        Ok(EpochRow {
            epoch: epoch + 1,
            steps,
            train_loss: loss_sum / steps.max(1) as f64,
            train_accuracy: classes.then(|| correct as f64 / (steps * self.opts.batch).max(1) as f64),
            validation_accuracy,
            test_accuracy: classes.then_some(test_score),
            test_mse: (!classes).then_some(test_score),
            seconds,
        })
    }

    /// The eval graph's outputs for `indices` of `set`, `EVAL_BATCH` images at a time, each
    /// chunk with its images and labels (the last padded with its own first image; only its
    /// real rows are passed on).
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
            self.eval.set(self.eval_model.labels, &labels)?;
            let outputs = self.eval.run(&mut self.store, &[self.eval_model.logits])?.remove(0);
            let width = outputs.shape.numel() / EVAL_BATCH;
            let (out, pixels) = (&outputs.as_f32()?[..chunk.len() * width], set.image_size());
            each(out, &images.as_f32()?[..chunk.len() * pixels], &labels.as_i32()?[..chunk.len()])?;
        }
        Ok(())
    }

    /// The accuracy on `indices` of `set` (classifiers), or the mean squared error per pixel
    /// of their reconstructions (the autoencoder).
    fn evaluate(&mut self, set: &Dataset, indices: &[usize]) -> Result<f64> {
        let task = self.model.task;
        let mut total = 0.0f64;
        self.eval_chunks(set, indices, |out, images, labels| {
            total += match task {
                Task::Classes => {
                    let rows = HostTensor::f32(vec![labels.len(), CLASSES], out.to_vec())?;
                    count_correct(&rows, labels)? as f64
                }
                Task::Reconstruction => {
                    out.iter().zip(images).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>()
                }
            };
            Ok(())
        })?;
        let per = if task == Task::Classes { 1 } else { set.image_size() };
        Ok(total / (indices.len() * per).max(1) as f64)
    }

    fn stop_early(&self) -> bool {
        let Some(patience) = self.opts.patience else { return false };
        let scores: Vec<f64> = self.history.iter().filter_map(|e| e.validation_accuracy).collect();
        let best = scores.iter().copied().enumerate().fold((0, f64::MIN), |b, (i, s)| if s > b.1 { (i, s) } else { b });
        scores.len() > best.0 + patience
    }

    /// `<model>-history.png`; `<model>-filters.png` where the first layer is a one-channel
    /// convolution; `<model>-reconstructions.png` (eight test images over their
    /// reconstructions) for the autoencoder.
    fn pictures(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { context: dir.display().to_string(), source })?;
        crate::plot::plot_history(&self.history, &dir.join(format!("{}-history.png", self.opts.model)))?;
        let graph = &self.model.graph;
        let first_conv = self.model.params.iter().find(|&&v| matches!(graph.shape(v).dims(), &[_, 1, _, _]));
        if let Some(&v) = first_conv {
            let weights = self.store.read(&[&graph.node(v).name])?.remove(0);
            crate::plot::plot_grid(&weights, 8, &dir.join(format!("{}-filters.png", self.opts.model)))?;
            let maps = self.feature_maps()?;
            crate::plot::plot_grid(&maps, 3, &dir.join(format!("{}-feature-maps.png", self.opts.model)))?;
        }
        if self.model.task == Task::Reconstruction {
            let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
            self.eval_chunks(&self.data.test, &(0..8).collect::<Vec<_>>(), |out, images, _| {
                outputs.extend_from_slice(out);
                inputs.extend_from_slice(images);
                Ok(())
            })?;
            let path = dir.join(format!("{}-reconstructions.png", self.opts.model));
            crate::plot::plot_reconstructions(&inputs, &outputs, self.data.test.cols, &path)?;
        }
        Ok(())
    }

    /// Where a step went non-finite: the same batch's forward and backward pass run once more
    /// over the parameters now in the store, every value read, the first non-finite one named.
    fn diagnose(&mut self, images: &HostTensor, labels: &HostTensor) -> Result<String> {
        let pixels = self.data.train.image_size();
        let mut model = build(&self.opts.model, self.opts.batch, pixels, true, self.opts.seed)?;
        kiln_graph::grad(&mut model.graph, model.loss, &model.params)?;
        let inputs = [(model.images, images), (model.labels, labels)];
        Ok(match crate::diverge::first_non_finite(&mut self.store, &model.graph, &inputs)? {
            Some(node) => format!("the first non-finite value of that batch's forward and backward pass is {node}"),
            None => "the same batch now computes finite values throughout".into(),
        })
    }

    /// The first convolution's output for the first test image, as `[C, 1, H, W]` planes.
    fn feature_maps(&mut self) -> Result<HostTensor> {
        let pixels = self.data.test.image_size();
        let model = build(&self.opts.model, 1, pixels, false, self.opts.seed)?;
        let conv = (0..model.graph.nodes().len())
            .map(kiln_graph::Value)
            .find(|&v| matches!(model.graph.node(v).op, kiln_core::Op::Conv2d(_)))
            .ok_or_else(|| Error::attribute("plots", "the model has no convolution"))?;
        let program = Program::compile(&mut self.store, &model.graph, &[conv])?;
        let (images, labels) = to_tensors(&self.data.test, &[0])?;
        program.set(model.images, &images)?;
        program.set(model.labels, &labels)?;
        let maps = program.run(&mut self.store, &[conv])?.remove(0);
        let d = maps.shape.dims().to_vec();
        HostTensor::f32(vec![d[1], 1, d[2], d[3]], maps.as_f32()?.to_vec())
    }

    /// Parameters, optimizer state, running statistics and the history, atomically.
    fn save(&self, path: &Path) -> Result<()> {
        let history = serde_json::to_string(&self.history).map_err(|e| Error::data("checkpoint", e.to_string()))?;
        let metadata = HashMap::from([
            ("model".to_string(), self.opts.model.clone()),
            ("history".to_string(), history),
            ("seed".to_string(), self.opts.seed.to_string()),
            ("batch".to_string(), self.opts.batch.to_string()),
            ("pixels".to_string(), self.data.train.image_size().to_string()),
        ]);
        Checkpoint::capture(&self.store, metadata)?.save(path)
    }

    /// Continues the run a checkpoint of the same model and batch describes.
    fn resume(&mut self, path: &Path) -> Result<()> {
        let checkpoint = Checkpoint::load(path)?;
        for (key, want) in [("model", self.opts.model.clone()), ("batch", self.opts.batch.to_string())] {
            if checkpoint.meta(key)? != want {
                let got = checkpoint.meta(key)?;
                return Err(Error::data(
                    path.display().to_string(),
                    format!("was written with {key} {got}, not {want}"),
                ));
            }
        }
        checkpoint.restore(&mut self.store)?;
        self.history = serde_json::from_str(checkpoint.meta("history")?)
            .map_err(|e| Error::data("checkpoint", format!("history: {e}")))?;
        println!("resumed from {} after epoch {}", path.display(), self.history.len());
        Ok(())
    }
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

fn summary(row: &EpochRow) -> String {
    let show = |label: &str, v: Option<f64>| v.map_or(String::new(), |v| format!("  {label} {v:.4}"));
    format!(
        "epoch {:>3}  train loss {:.4}{}{}{}{}  {:.1} s",
        row.epoch,
        row.train_loss,
        show("train accuracy", row.train_accuracy),
        show("validation accuracy", row.validation_accuracy),
        show("test accuracy", row.test_accuracy),
        show("test mse", row.test_mse),
        row.seconds
    )
}

fn progress_bar(opts: &TrainOptions, epoch: usize, steps: usize) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    let template =
        format!("epoch {} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {{msg}} (eta {{eta}})", epoch + 1);
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar
}

/// Rows of `logits` whose largest entry is their label.
fn count_correct(logits: &HostTensor, labels: &[i32]) -> Result<usize> {
    let rows = logits.as_f32()?.chunks(CLASSES);
    Ok(rows.zip(labels).filter(|(row, label)| argmax(row) == **label as usize).count())
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

fn to_tensors(set: &Dataset, indices: &[usize]) -> Result<(HostTensor, HostTensor)> {
    let (images, labels) = set.batch(indices);
    let images = HostTensor::f32([indices.len(), set.image_size()].to_vec(), images)?;
    Ok((images, HostTensor::i32([indices.len()].to_vec(), labels)?))
}

/// Writes `metrics` as JSON, atomically.
pub fn write_metrics(path: &Path, metrics: &Metrics) -> Result<()> {
    let json = serde_json::to_string_pretty(metrics).map_err(|e| Error::data("metrics", e.to_string()))?;
    crate::files::write_atomically(path, &json)
}
