//! `kiln train`: the command line over `kiln_nn::train` — its options, a progress bar per
//! epoch, a summary row per epoch, the pictures of `--plots`, and `--metrics-json`.

use std::path::PathBuf;

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_core::{Backend, Error, Precision, Result};
use kiln_nn::files::{Output, check_outputs, write_atomically};
use kiln_nn::gan::{GanConfig, GanEpochRow, GanMetrics, GanProgress, GanRun, GanStepReport};
use kiln_nn::language::{LmConfig, LmMetrics, LmProgress, LmRow};
use kiln_nn::{
    BinaryTask, EpochRow, FashionMnist, HiddenActivation, Init, Metrics, ModelSpec, OptimizerKind, Progress, Run,
    ScheduleKind, StepReport, TrainConfig,
};
use serde::de::DeserializeOwned;

/// Where a run computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Gpu,
    Cpu,
}

/// A value of one of the library's named settings, by the name it serialises to.
fn named<T: DeserializeOwned + Clone + Send + Sync + 'static>(
    names: &'static [&'static str],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(names)
        .try_map(|name| serde_json::from_value(serde_json::Value::String(name)).map_err(|e| e.to_string()))
}

/// A precision by name: `f32` or `mixed`.
pub fn precision() -> impl TypedValueParser<Value = Precision> {
    PossibleValuesParser::new(["f32", "mixed"])
        .try_map(|name: String| name.parse::<Precision>().map_err(|e| e.to_string()))
}

/// A count of at least 1.
pub fn positive(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// A learning rate, norm or the like: a finite number above 0.
pub fn above_zero(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a finite number above 0 (such as 1e-3)")),
    }
}

/// A momentum or a decay: a finite number from 0.
pub fn from_zero(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a finite number from 0")),
    }
}

/// A binary task, `binary:A,B`.
fn binary_task(text: &str) -> std::result::Result<BinaryTask, String> {
    match text.strip_prefix("binary:") {
        Some(sides) => BinaryTask::parse(sides).map_err(|e| e.to_string()),
        None => Err(format!("`{text}` is no task: give binary:A,B, or leave --task out to tell every class apart")),
    }
}

/// The kinds of model `kiln train` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Classifier,
    Gan,
    Language,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Classifier => "the classifiers",
            Family::Gan => "the GANs",
            Family::Language => "the language models",
        }
    }
}

/// The `kiln train` command line.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    /// mlp, cnn, cnn-bn, mobilenet, lstm, autoencoder, logistic, perceptron; the GANs dcgan
    /// and gan-mlp; the language models gpt, gru, rnn, and lstm with --text.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// sgd for the classifiers; the GANs train with adam only.
    #[arg(long, value_parser = named::<OptimizerKind>(&["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"]))]
    pub optimizer: Option<OptimizerKind>,
    /// 0.1 for the classifiers, 2e-4 for the GANs.
    #[arg(long, value_parser = above_zero, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// SGD's momentum (--optimizer momentum).
    #[arg(long, default_value_t = 0.9, value_parser = from_zero, allow_negative_numbers = true)]
    pub momentum: f32,
    /// L2 weight decay (decoupled with adamw).
    #[arg(long, default_value_t = 0.0, value_parser = from_zero, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// Scale the gradients down to this global norm where longer.
    #[arg(long, value_parser = above_zero, allow_negative_numbers = true)]
    pub clip_norm: Option<f32>,
    /// f32, or mixed: products take operands rounded to binary16 and sum in f32, parameters and
    /// optimizer state stay f32, and the loss is scaled dynamically.
    #[arg(long, default_value = "f32", value_parser = precision())]
    pub precision: Precision,
    #[arg(long, default_value = "constant", value_parser = named::<ScheduleKind>(&["constant", "step", "cosine"]))]
    pub schedule: ScheduleKind,
    /// 100 for the classifiers, 64 for the GANs.
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Whole passes over the training images (1 unless --steps is given).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Steps in all, across as many epochs as it takes; with --epochs, whichever ends first.
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder with the IDX files (raw or .gz).
    #[arg(long, default_value = kiln_nn::DEFAULT_DIR)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "gpu")]
    pub device: Device,
    /// Training images held out to choose the epoch (and stop early) by (5000; classifiers).
    #[arg(long)]
    pub validation: Option<usize>,
    /// Stop when validation accuracy has not improved for this many epochs, keeping the best.
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
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
    /// One rank of a data-parallel job under mpirun: each --batch is split among the ranks
    /// (built with `--features mpi`).
    #[arg(long)]
    pub data_parallel: bool,
    /// The mlp's hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100", value_parser = positive)]
    pub hidden: Vec<usize>,
    /// The mlp's activation.
    #[arg(long, default_value = "relu", value_parser = named::<HiddenActivation>(&["relu", "leaky-relu", "gelu", "tanh", "sigmoid"]))]
    pub activation: HiddenActivation,
    /// The mlp's dropout after each hidden layer.
    #[arg(long, default_value_t = 0.0, value_parser = from_zero, allow_negative_numbers = true)]
    pub dropout: f32,
    /// The mlp's initialisation.
    #[arg(long, default_value = "pytorch", value_parser = named::<Init>(&["pytorch", "xavier", "he"]))]
    pub init: Init,
    /// binary:A,B tells two sets of classes apart with one output (numbers or names joined
    /// by +; B may be `rest`), as binary:t-shirt,shirt or binary:sandal+sneaker+ankle-boot,rest;
    /// left out, every class is told apart.
    #[arg(long, value_parser = binary_task)]
    pub task: Option<BinaryTask>,
    /// Adam's β1 for the GANs (0.5); the classifiers' Adam keeps 0.9.
    #[arg(long, value_parser = from_zero, allow_negative_numbers = true)]
    pub beta1: Option<f32>,
    /// Adam's β2 for the GANs (0.999).
    #[arg(long, value_parser = from_zero, allow_negative_numbers = true)]
    pub beta2: Option<f32>,
    /// The GANs' noise size (100).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub latent: Option<usize>,
    /// The GANs' score: a classifier checkpoint (`kiln train --model cnn --checkpoint FILE`)
    /// whose penultimate features give the Fréchet distance of samples to the test images.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Generated images the GANs' score reads (10000).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub quality_samples: Option<usize>,
    /// The language models' text: a file, or a folder of text files (default: Debian's
    /// fortunes for gpt, gru and rnn; `lstm` is the image classifier unless this is given).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// The language models' window (64 tokens).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub context: Option<usize>,
    /// gpt's width (128), or a recurrent model's hidden size (rnn 832, gru 448, lstm 384).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub width: Option<usize>,
    /// gpt's transformer blocks (4) and attention heads (4).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub layers: Option<usize>,
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub heads: Option<usize>,
    /// The language models' steps between evaluations, samples and checkpoints (250).
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub eval_every: Option<usize>,
}

/// `kiln train`'s options on their own, to parse them with no subcommand around them.
#[derive(clap::Parser)]
struct TrainCommand {
    #[command(flatten)]
    args: TrainArgs,
}

impl TrainArgs {
    /// Every option at its default.
    pub fn defaults() -> Self {
        TrainCommand::parse_from(["train"]).args
    }

    /// The library's settings these options describe.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            model: ModelSpec {
                name: self.model.clone(),
                hidden: self.hidden.clone(),
                activation: self.activation,
                dropout: self.dropout,
                init: self.init,
                binary: self.task.is_some(),
            },
            optimizer: self.optimizer.unwrap_or(OptimizerKind::Sgd),
            lr: self.lr.unwrap_or(0.1),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
            precision: self.precision,
            schedule: self.schedule,
            batch: self.batch.unwrap_or(100),
            epochs: self.epochs,
            steps: self.steps,
            seed: self.seed,
            validation: self.validation.unwrap_or(5000),
            patience: self.patience,
            augment: self.augment,
            task: self.task.clone(),
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
        }
    }

    /// Which family the model belongs to; an option that shapes another family only is
    /// refused by name.
    pub fn family(&self) -> Result<Family> {
        use Family::{Classifier, Gan, Language};
        let family = if kiln_nn::gan::is_gan(&self.model) {
            Gan
        } else if kiln_nn::language::is_language_model(&self.model)
            && (self.text.is_some() || !kiln_nn::MODELS.contains(&self.model.as_str()))
        {
            // `lstm` also names the classifier that reads image rows: text makes it the
            // language model.
            Language
        } else {
            Classifier
        };
        let defaults = TrainArgs::defaults();
        let optimizer = match (family, self.optimizer) {
            (Gan, Some(kind)) => kind != OptimizerKind::Adam,
            (Language, Some(kind)) => kind != OptimizerKind::Adamw,
            _ => false,
        };
        let options: [(&str, bool, &[Family]); 25] = [
            ("--optimizer", optimizer, &[Classifier]),
            ("--momentum", self.momentum != defaults.momentum, &[Classifier]),
            ("--weight-decay", self.weight_decay != defaults.weight_decay, &[Classifier, Language]),
            ("--clip-norm", self.clip_norm.is_some(), &[Classifier, Language]),
            ("--precision", self.precision != Precision::F32, &[Classifier]),
            ("--schedule", self.schedule != defaults.schedule, &[Classifier]),
            ("--validation", self.validation.is_some(), &[Classifier]),
            ("--patience", self.patience.is_some(), &[Classifier]),
            ("--augment", self.augment, &[Classifier]),
            ("--data-parallel", self.data_parallel, &[Classifier]),
            ("--hidden", self.hidden != defaults.hidden, &[Classifier]),
            ("--activation", self.activation != defaults.activation, &[Classifier]),
            ("--dropout", self.dropout != defaults.dropout, &[Classifier]),
            ("--init", self.init != defaults.init, &[Classifier]),
            ("--task", self.task.is_some(), &[Classifier]),
            ("--epochs", self.epochs.is_some(), &[Classifier, Gan]),
            ("--plots", self.plots.is_some(), &[Classifier, Gan]),
            ("--beta1", self.beta1.is_some(), &[Gan]),
            ("--beta2", self.beta2.is_some(), &[Gan]),
            ("--latent", self.latent.is_some(), &[Gan]),
            ("--classifier", self.classifier.is_some(), &[Gan]),
            ("--quality-samples", self.quality_samples.is_some(), &[Gan]),
            ("--text", self.text.is_some(), &[Language]),
            ("--eval-every", self.eval_every.is_some(), &[Language]),
            (
                "--context, --width, --layers and --heads",
                self.context.is_some() || self.width.is_some() || self.layers.is_some() || self.heads.is_some(),
                &[Language],
            ),
        ];
        match options.iter().find(|(_, given, families)| *given && !families.contains(&family)) {
            Some((option, _, families)) => {
                let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
                Err(Error::data(*option, format!("shapes {}, not `{}`", names.join(" and "), self.model)))
            }
            None => Ok(family),
        }
    }

    /// The GAN settings these options describe.
    pub fn gan_config(&self) -> GanConfig {
        let base = GanConfig::named(&self.model);
        GanConfig {
            latent: self.latent.unwrap_or(base.latent),
            lr: self.lr.unwrap_or(base.lr),
            beta1: self.beta1.unwrap_or(base.beta1),
            beta2: self.beta2.unwrap_or(base.beta2),
            batch: self.batch.unwrap_or(base.batch),
            epochs: self.epochs,
            steps: self.steps,
            seed: self.seed,
            classifier: self.classifier.clone(),
            quality_samples: self.quality_samples.unwrap_or(base.quality_samples),
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
            ..base
        }
    }

    /// The language model settings these options describe.
    pub fn language_config(&self) -> LmConfig {
        let base = LmConfig::named(&self.model);
        LmConfig {
            context: self.context.unwrap_or(base.context),
            width: self.width.unwrap_or(base.width),
            layers: self.layers.unwrap_or(base.layers),
            heads: self.heads.unwrap_or(base.heads),
            batch: self.batch.unwrap_or(base.batch),
            lr: self.lr.unwrap_or(base.lr),
            weight_decay: if self.weight_decay != 0.0 { self.weight_decay } else { base.weight_decay },
            clip_norm: self.clip_norm.unwrap_or(base.clip_norm),
            steps: self.steps.unwrap_or(base.steps),
            eval_every: self.eval_every.unwrap_or(base.eval_every),
            seed: self.seed,
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
            ..base
        }
    }

    /// Every file the run writes, with the option that names it, and the pictures' names.
    fn outputs(&self) -> (Vec<(&'static str, PathBuf)>, Vec<String>) {
        let best = self.patience.and(self.checkpoint.as_deref()).map(TrainConfig::best_checkpoint);
        let checkpoints = self.checkpoint.iter().cloned().chain(best).map(|path| ("--checkpoint", path));
        let files = checkpoints.chain(self.metrics_json.iter().map(|path| ("--metrics-json", path.clone()))).collect();
        let pictures = ["history", "filters", "feature-maps", "reconstructions"];
        (files, pictures.iter().map(|p| format!("{}-{p}.png", self.model)).collect())
    }
}

/// Trains as `args` say on the device they name; returns the run's figures (`None` in the
/// ranks of a data-parallel job but rank 0, which alone reports).
pub fn train(args: &TrainArgs, progress: bool) -> Result<Option<Metrics>> {
    if args.family()? != Family::Classifier {
        return Err(Error::Unsupported(format!("`{}` is no classifier", args.model)));
    }
    let config = args.config();
    config.check()?;
    let (files, pictures) = args.outputs();
    let mut outputs: Vec<Output<'_>> = files.iter().map(|(option, path)| Output::File { option, path }).collect();
    if let Some(dir) = &args.plots {
        outputs.push(Output::Folder { option: "--plots", path: dir, names: pictures });
    }
    check_outputs(&outputs)?;
    let data = FashionMnist::load(&args.data).map_err(|e| Error::data("dataset", e.to_string()))?;
    let mut report = Report { bar: None, progress, plots: args.plots.clone() };
    let metrics = if args.data_parallel {
        let Some(metrics) = data_parallel(args, &config, &data, &mut report)? else { return Ok(None) };
        metrics
    } else {
        match args.device {
            Device::Gpu => {
                let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
                kiln_nn::train(gpu, &config, &data, &mut report)?.metrics
            }
            Device::Cpu => kiln_nn::train(kiln_cpu::Cpu, &config, &data, &mut report)?.metrics,
        }
    };
    write_metrics(args.metrics_json.as_deref(), &metrics)?;
    Ok(Some(metrics))
}

/// This process as one rank of the job `mpirun` started: rank 0 reports and writes, the others
/// train quietly; a failure in any rank ends the whole job.
#[cfg(feature = "mpi")]
fn data_parallel(
    args: &TrainArgs,
    config: &TrainConfig,
    data: &FashionMnist,
    report: &mut Report,
) -> Result<Option<Metrics>> {
    let job = kiln_nn::dist::Mpi::start()?;
    let rank = kiln_nn::Collectives::rank(&job);
    let mut choice = kiln_gpu::AdapterChoice::from_env();
    if choice.name.is_none() {
        choice.ordinal = Some(job.local_rank());
    }
    let trained = (|| -> Result<Metrics> {
        let quiet = &mut Silent;
        let progress: &mut dyn Progress<_> = if rank == 0 { report } else { quiet };
        match args.device {
            Device::Gpu => {
                let gpu = kiln_kernels::GpuBackend::new(pollster::block_on(kiln_gpu::Gpu::open(&choice))?);
                Ok(kiln_nn::train_parallel(gpu, config, data, progress, &job)?.metrics)
            }
            Device::Cpu => {
                let cpu: &mut dyn Progress<kiln_cpu::Cpu> = if rank == 0 { report } else { quiet };
                Ok(kiln_nn::train_parallel(kiln_cpu::Cpu, config, data, cpu, &job)?.metrics)
            }
        }
    })();
    match trained {
        Ok(metrics) => Ok((rank == 0).then_some(metrics)),
        Err(e) => {
            eprintln!("error in rank {rank}: {e}");
            job.abort(1)
        }
    }
}

#[cfg(not(feature = "mpi"))]
fn data_parallel(_: &TrainArgs, _: &TrainConfig, _: &FashionMnist, _: &mut Report) -> Result<Option<Metrics>> {
    Err(Error::Unsupported(
        "--data-parallel needs MPI: build with `cargo build --release --features mpi` (OpenMPI's libopenmpi-dev, \
         openmpi-bin and libclang) and start the ranks with mpirun"
            .into(),
    ))
}

/// Trains the GAN `args` name; returns the run's figures.
pub fn train_gan(args: &TrainArgs, progress: bool) -> Result<GanMetrics> {
    if args.family()? != Family::Gan {
        return Err(Error::Unsupported(format!("`{}` is no GAN", args.model)));
    }
    let config = args.gan_config();
    config.check()?;
    let mut files: Vec<(&'static str, PathBuf)> =
        config.checkpoint.iter().map(|p| ("--checkpoint", p.clone())).collect();
    files.extend(args.metrics_json.iter().map(|p| ("--metrics-json", p.clone())));
    let mut outputs: Vec<Output<'_>> = files.iter().map(|(option, path)| Output::File { option, path }).collect();
    if let Some(dir) = &args.plots {
        outputs.push(Output::Folder { option: "--plots", path: dir, names: gan_pictures(&config.model, args.epochs) });
    }
    check_outputs(&outputs)?;
    let data = FashionMnist::load(&args.data).map_err(|e| Error::data("dataset", e.to_string()))?;
    let mut report = Report { bar: None, progress, plots: args.plots.clone() };
    let metrics = match args.device {
        Device::Gpu => {
            let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
            kiln_nn::gan::train_gan(gpu, &config, &data, &mut report)?.metrics
        }
        Device::Cpu => kiln_nn::gan::train_gan(kiln_cpu::Cpu, &config, &data, &mut report)?.metrics,
    };
    write_metrics(args.metrics_json.as_deref(), &metrics)?;
    Ok(metrics)
}

/// Trains the language model `args` name on its text; returns the run's figures.
pub fn train_language(args: &TrainArgs, progress: bool) -> Result<LmMetrics> {
    if args.family()? != Family::Language {
        return Err(Error::Unsupported(format!("`{}` is no language model", args.model)));
    }
    let config = args.language_config();
    config.check()?;
    let files: Vec<(&'static str, PathBuf)> = config
        .checkpoint
        .iter()
        .map(|p| ("--checkpoint", p.clone()))
        .chain(args.metrics_json.iter().map(|p| ("--metrics-json", p.clone())))
        .collect();
    check_outputs(&files.iter().map(|(option, path)| Output::File { option, path }).collect::<Vec<_>>())?;
    let text = args.text.clone().unwrap_or_else(|| PathBuf::from(kiln_nn::text::DEFAULT_TEXT));
    let corpus = kiln_nn::text::Corpus::load(&text)?;
    let mut report = Report { bar: None, progress, plots: None };
    let metrics = match args.device {
        Device::Gpu => {
            let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
            kiln_nn::language::train_language_model(gpu, &config, &corpus, &mut report)?.metrics
        }
        Device::Cpu => kiln_nn::language::train_language_model(kiln_cpu::Cpu, &config, &corpus, &mut report)?.metrics,
    };
    write_metrics(args.metrics_json.as_deref(), &metrics)?;
    Ok(metrics)
}

/// The pictures a GAN run draws: its losses, and a grid of samples after each epoch.
pub fn gan_pictures(model: &str, epochs: Option<usize>) -> Vec<String> {
    let grids = (1..=epochs.unwrap_or(1).min(1000)).map(|epoch| format!("{model}-samples-epoch{epoch:02}.png"));
    std::iter::once(format!("{model}-losses.png")).chain(grids).collect()
}

/// The other ranks of a data-parallel job: rank 0 speaks for them.
#[cfg(feature = "mpi")]
struct Silent;

#[cfg(feature = "mpi")]
impl<B: Backend> Progress<B> for Silent {}

/// The terminal's view of a run: a progress bar per epoch, a row per epoch, notes, pictures.
struct Report {
    bar: Option<(usize, ProgressBar)>,
    progress: bool,
    plots: Option<PathBuf>,
}

impl<B: Backend> Progress<B> for Report {
    fn step(&mut self, report: &StepReport) {
        if !self.progress {
            return;
        }
        let fresh = self.bar.as_ref().is_none_or(|(epoch, _)| *epoch != report.epoch);
        if fresh {
            self.bar = Some((report.epoch, progress_bar(&format!("epoch {}", report.epoch + 1), report.of)));
        }
        if let Some((_, bar)) = &self.bar {
            let accuracy = report.accuracy.map_or(String::new(), |a| format!("  accuracy {a:.4}"));
            bar.set_message(format!("loss {:.4}{accuracy}  {:.0} samples/s", report.mean_loss, report.samples_per_sec));
            bar.set_position(report.done as u64);
        }
    }

    fn epoch(&mut self, row: &EpochRow, run: &mut Run<'_, B>) -> Result<()> {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("{}", summary(row));
        if let Some(dir) = &self.plots {
            crate::cli::plot::pictures(dir, run)?;
        }
        Ok(())
    }

    fn note(&mut self, text: &str) {
        println!("{text}");
    }
}

impl<B: Backend> GanProgress<B> for Report {
    fn step(&mut self, report: &GanStepReport) {
        if !self.progress {
            return;
        }
        if self.bar.as_ref().is_none_or(|(epoch, _)| *epoch != report.epoch) {
            self.bar = Some((report.epoch, progress_bar(&format!("epoch {}", report.epoch + 1), report.of)));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_message(format!(
                "D loss {:.4}  G loss {:.4}  {:.0} images/s",
                report.d_loss, report.g_loss, report.samples_per_sec
            ));
            bar.set_position(report.done as u64);
        }
    }

    fn epoch(&mut self, row: &GanEpochRow, run: &mut GanRun<'_, B>) -> Result<()> {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("{}", gan_summary(row));
        if let Some(dir) = &self.plots {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { context: dir.display().to_string(), source })?;
            let model = run.config().model.clone();
            crate::cli::plot::plot_gan_history(run.history(), &model, &dir.join(format!("{model}-losses.png")))?;
            let images = run.sample(64, kiln_nn::gan::GRID_SEED)?;
            let side = ((images.len() / 64) as f64).sqrt() as usize;
            let caption = format!("{model} after epoch {}: 64 samples from fixed noise", row.epoch);
            let path = dir.join(format!("{model}-samples-epoch{:02}.png", row.epoch));
            crate::cli::plot::plot_samples(&images, side, 8, &caption, &path)?;
        }
        Ok(())
    }

    fn note(&mut self, text: &str) {
        println!("{text}");
    }
}

impl<B: Backend> LmProgress<B> for Report {
    fn step(&mut self, done: usize, of: usize, loss: f64) {
        if !self.progress {
            return;
        }
        if self.bar.is_none() {
            self.bar = Some((0, progress_bar("steps", of).with_position(done as u64)));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_message(format!("loss {loss:.4} ({:.3} bits per character)", loss / std::f64::consts::LN_2));
            bar.set_position(done as u64);
        }
    }

    fn row(&mut self, row: &LmRow) -> Result<()> {
        if let Some((_, bar)) = &self.bar {
            bar.suspend(|| println!("{}", language_summary(row)));
        } else {
            println!("{}", language_summary(row));
        }
        Ok(())
    }

    fn note(&mut self, text: &str) {
        println!("{text}");
    }
}

/// A language model's evaluation as the terminal shows it: losses in nats and bits per
/// character, speed, and the sample (its line breaks shown as ⏎).
pub fn language_summary(row: &LmRow) -> String {
    format!(
        "step {:>6}  train loss {:.4} ({:.3} bpc)  validation loss {:.4} ({:.3} bpc)  {:.0} tokens/s  {:.1} s\n  \
         sample: {}",
        row.step,
        row.train_loss,
        row.train_bpc,
        row.validation_loss,
        row.validation_bpc,
        row.tokens_per_sec,
        row.seconds,
        row.sample.replace('\n', "⏎")
    )
}

/// A GAN epoch's row as the terminal shows it.
pub fn gan_summary(row: &GanEpochRow) -> String {
    let quality = match (&row.fid, &row.classes) {
        (Some(fid), Some(classes)) => {
            let total = classes.iter().sum::<usize>().max(1) as f64;
            let shares: Vec<String> = classes.iter().map(|&c| format!("{:.0}", 100.0 * c as f64 / total)).collect();
            format!("  FID (Kiln-CNN) {fid:.2}  classes % [{}]", shares.join(" "))
        }
        _ => String::new(),
    };
    format!(
        "epoch {:>3}  D loss {:.4}  G loss {:.4}  D right on real {:.3}, on generated {:.3}{quality}  {:.1} s",
        row.epoch, row.d_loss, row.g_loss, row.d_real_accuracy, row.d_fake_accuracy, row.seconds
    )
}

/// A bar over `steps` steps, headed by `label`.
fn progress_bar(label: &str, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let template = format!("{label} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {{msg}} (eta {{eta}})");
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar
}

/// An epoch's row as the terminal shows it.
pub fn summary(row: &EpochRow) -> String {
    let show = |label: &str, v: Option<f64>| v.map_or(String::new(), |v| format!("  {label} {v:.4}"));
    let confusion = row
        .test_confusion
        .map_or(String::new(), |[[tn, fp], [fn_, tp]]| format!("  confusion [[{tn} {fp}] [{fn_} {tp}]]"));
    format!(
        "epoch {:>3}  train loss {:.4}{}{}{}{}{}{}{}{}{confusion}  {:.1} s",
        row.epoch,
        row.train_loss,
        show("accuracy", row.train_accuracy),
        show("validation loss", row.validation_loss),
        show("accuracy", row.validation_accuracy),
        show("test loss", row.test_loss),
        show("accuracy", row.test_accuracy),
        show("precision", row.test_precision),
        show("recall", row.test_recall),
        show("test mse", row.test_mse),
        row.seconds
    )
}

/// Writes a run's figures as JSON to `--metrics-json`, where given, atomically.
fn write_metrics(path: Option<&std::path::Path>, metrics: &impl serde::Serialize) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let json = serde_json::to_string_pretty(metrics).map_err(|e| Error::data("metrics", e.to_string()))?;
    write_atomically(path, &json)
}
