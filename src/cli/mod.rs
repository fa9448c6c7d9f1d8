//! The `kiln` command line, a thin layer over the library: check golden cases, train models,
//! classify images, benchmark and profile, inspect the adapter. It owns the terminal (progress
//! bars, tables) and the pictures; the library it drives prints nothing.

pub mod plot;
pub mod predict;
pub mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_core::Backend;

use crate::check::{Devices, check_dir};
use train::{TrainArgs, positive};

#[derive(Parser)]
#[command(name = "kiln", version, about = "A deep-learning compute engine on WebGPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every golden case of a folder (FORMAT.md) and report failures; or, with --graph,
    /// run a model's training step on the device and on the f64 CPU reference side by side
    /// and report the first node that differs.
    Check {
        #[arg(required_unless_present = "graph")]
        dir: Option<PathBuf>,
        /// A sample model (mlp, cnn) to compare node by node instead of a folder of cases.
        #[arg(long, conflicts_with = "dir")]
        graph: Option<String>,
        /// Relative error above which a node counts as diverging (--graph).
        #[arg(long, default_value_t = 1e-4, value_parser = tolerance, allow_negative_numbers = true)]
        tolerance: f64,
        #[arg(long, value_enum, default_value = "both")]
        device: Devices,
        /// Only these ops, comma-separated.
        #[arg(long, value_delimiter = ',')]
        ops: Option<Vec<String>>,
    },
    /// Train a model on Fashion-MNIST, epoch by epoch, and print its test accuracy.
    Train {
        #[command(flatten)]
        args: Box<TrainArgs>,
    },
    /// Write text with a trained language model, streaming it as it is drawn.
    Generate {
        #[arg(long)]
        checkpoint: PathBuf,
        /// The text to continue.
        #[arg(long, default_value = "\n")]
        prompt: String,
        /// How many tokens (bytes) to draw.
        #[arg(long, default_value_t = 300, value_parser = positive, allow_negative_numbers = true)]
        tokens: usize,
        /// Softmax temperature (0: always the likeliest token).
        #[arg(long, default_value_t = 0.8, value_parser = train::from_zero, allow_negative_numbers = true)]
        temperature: f32,
        /// Draw among the k likeliest tokens only (0: all).
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// gpt: read the whole window again for every token instead of keeping a key/value cache.
        #[arg(long)]
        no_cache: bool,
        #[arg(long, value_enum, default_value = "gpu")]
        device: train::Device,
    },
    /// Draw images from a trained GAN's generator into a PNG grid.
    Sample {
        #[arg(long)]
        checkpoint: PathBuf,
        /// How many images (up to 10,000).
        #[arg(long, default_value_t = 64, value_parser = positive, allow_negative_numbers = true)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        /// The noise's seed: the same seed draws the same images.
        #[arg(long, default_value_t = 1)]
        seed: u32,
        #[arg(long, value_enum, default_value = "gpu")]
        device: train::Device,
    },
    /// Classify images (PNG, JPEG) with a trained checkpoint: the top 3 classes of each.
    Predict {
        #[arg(long)]
        checkpoint: PathBuf,
        /// Turn images light-on-dark, as Fashion-MNIST draws them: where the border is light
        /// (auto), always or never.
        #[arg(long, value_enum, default_value = "auto")]
        invert: predict::Invert,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Time the reference workloads W1–W5 (../shared/bench/WORKLOADS.md).
    Bench {
        /// Only these workloads, comma-separated (W1,W2,…).
        #[arg(long, value_delimiter = ',', default_value = "W1,W2,W3,W4,W5")]
        workloads: Vec<String>,
        /// Write the figures in WORKLOADS.md's JSON schema.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Folder with the Fashion-MNIST IDX files (W5).
        #[arg(long, default_value = kiln_nn::DEFAULT_DIR)]
        data: PathBuf,
    },
    /// Time every dispatch of a model's training step: a table per kernel, and a Chrome trace.
    Profile {
        #[arg(long, default_value = "cnn")]
        model: String,
        #[arg(long, default_value_t = 64, value_parser = positive, allow_negative_numbers = true)]
        batch: usize,
        /// Profiled steps (after one warm-up step).
        #[arg(long, default_value_t = 3, value_parser = positive, allow_negative_numbers = true)]
        steps: usize,
        /// Write a Chrome/Perfetto trace JSON.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// f32, or mixed: products of binary16-rounded operands and a dynamically scaled loss.
        #[arg(long, default_value = "f32", value_parser = train::precision())]
        precision: kiln_core::Precision,
    },
    /// Print the operator support matrix (op × GPU/CPU × forward/backward), found by running
    /// one golden case of every operator on both backends.
    Ops {
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))]
        cases: PathBuf,
    },
    /// Print the adapter Kiln would use.
    Info,
}

/// A relative error bound: a finite number from 0 to 1.
fn tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a relative error from 0 to 1 (say 1e-4)")),
    }
}

/// Runs the command line; the process's exit status.
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("kiln=info,kiln_gpu=info,wgpu_core=error,wgpu_hal=off"),
    )
    .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { graph: Some(model), device, tolerance, .. } => check_graph(&model, device, tolerance),
        Command::Check { dir: Some(dir), device, ops, .. } => check(&dir, device, ops.as_deref()),
        Command::Check { .. } => Err(kiln_core::Error::attribute("check", "give a folder of cases or --graph MODEL")),
        Command::Train { args } => run_training(&args),
        Command::Sample { checkpoint, count, out, seed, device } => sample(&checkpoint, count, &out, seed, device),
        Command::Generate { checkpoint, prompt, tokens, temperature, top_k, seed, no_cache, device } => {
            let how = Writing { prompt: &prompt, tokens, temperature, top_k, seed, cached: !no_cache };
            match device {
                train::Device::Gpu => kiln_gpu::Gpu::new_blocking()
                    .and_then(|gpu| write_text(kiln_kernels::GpuBackend::new(gpu), &checkpoint, &how)),
                train::Device::Cpu => write_text(kiln_cpu::Cpu, &checkpoint, &how),
            }
        }
        Command::Predict { checkpoint, invert, images } => predict(&checkpoint, invert, &images),
        Command::Bench { workloads, json, data } => bench(&workloads, json.as_deref(), &data),
        Command::Profile { model, batch, steps, trace, precision } => {
            profile(&model, batch, steps, trace.as_deref(), precision)
        }
        Command::Ops { cases } => ops(&cases),
        Command::Info => info(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(dir: &std::path::Path, device: Devices, ops: Option<&[String]>) -> kiln_core::Result<ExitCode> {
    let report = check_dir(dir, device, ops)?;
    for line in &report.lines {
        println!("{line}");
    }
    println!("{} passed, {} failed", report.passed, report.failed);
    Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn check_graph(model: &str, device: Devices, tolerance: f64) -> kiln_core::Result<ExitCode> {
    let (graph, feeds) = crate::diverge::sample_training_graph(model, 1)?;
    let mut agree = true;
    if device != Devices::Gpu {
        let report = crate::diverge::find_divergence(kiln_cpu::Cpu, &graph, &feeds, tolerance)?;
        agree &= report_divergence("cpu", &report, tolerance);
    }
    if device != Devices::Cpu {
        let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
        let report = crate::diverge::find_divergence(gpu, &graph, &feeds, tolerance)?;
        agree &= report_divergence("gpu", &report, tolerance);
    }
    Ok(if agree { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Prints one device's comparison with the f64 reference; whether every node agreed.
fn report_divergence(device: &str, report: &crate::diverge::Divergence, tolerance: f64) -> bool {
    let worst = report.nodes.iter().filter(|n| n.error.is_finite()).max_by(|a, b| a.error.total_cmp(&b.error));
    match (report.first.map(|i| &report.nodes[i]), worst) {
        (Some(n), _) => {
            println!(
                "[{device}] first divergence: node {} `{}` {}: relative error {:.3e} (tolerance {tolerance:.0e})",
                n.node, n.op, n.shape, n.error
            );
            false
        }
        (None, Some(w)) => {
            println!(
                "[{device}] {} nodes agree within {tolerance:.0e}; the largest error is {:.3e} at node {} `{}`",
                report.nodes.len(),
                w.error,
                w.node,
                w.op
            );
            true
        }
        (None, None) => true,
    }
}

fn run_training(args: &TrainArgs) -> kiln_core::Result<ExitCode> {
    match args.family()? {
        train::Family::Gan => return run_gan_training(args),
        train::Family::Language => return run_language_training(args),
        train::Family::Classifier => {}
    }
    let Some(metrics) = train::train(args, true)? else { return Ok(ExitCode::SUCCESS) };
    let result = match (metrics.test_accuracy, metrics.test_mse) {
        (Some(accuracy), _) => match (metrics.test_precision, metrics.test_recall) {
            (Some(precision), Some(recall)) => {
                format!("test accuracy {accuracy:.4}, precision {precision:.4}, recall {recall:.4}")
            }
            _ => format!("test accuracy {accuracy:.4}"),
        },
        (None, Some(mse)) => format!("test mse {mse:.5}"),
        (None, None) => "no evaluation".into(),
    };
    let kept = if metrics.kept_epoch < metrics.epochs.len() {
        format!(" (epoch {}'s parameters, the best on validation)", metrics.kept_epoch)
    } else {
        String::new()
    };
    println!(
        "{} on {}: {result}{kept}, train loss {:.4}, {:.0} samples/s over {} steps ({:.1} s)",
        metrics.model,
        metrics.adapter,
        metrics.train_loss,
        metrics.samples_per_sec,
        metrics.steps,
        metrics.train_seconds
    );
    if let Some(path) = &args.metrics_json {
        println!("metrics written to {}", path.display());
    }
    if let Some(path) = &args.checkpoint {
        println!("checkpoint written to {}", path.display());
        if args.patience.is_some() {
            println!("best checkpoint written to {}", kiln_nn::TrainConfig::best_checkpoint(path).display());
        }
    }
    if let Some(dir) = &args.plots {
        for picture in pictures(dir, &args.model)? {
            println!("picture drawn: {}", picture.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_gan_training(args: &TrainArgs) -> kiln_core::Result<ExitCode> {
    let metrics = train::train_gan(args, true)?;
    let score = match (metrics.fid, metrics.fid_floor, metrics.fid_ceiling) {
        (Some(fid), floor, ceiling) => {
            let show = |v: Option<f64>| v.map_or("unknown".to_string(), |v| format!("{v:.2}"));
            format!(", FID on Kiln-CNN features {fid:.2} (real images {}, untrained {})", show(floor), show(ceiling))
        }
        (None, ..) => String::new(),
    };
    println!(
        "{} on {}: D loss {:.4}, G loss {:.4}{score}, {:.0} real images/s over {} steps ({:.1} s)",
        metrics.model,
        metrics.adapter,
        metrics.d_loss,
        metrics.g_loss,
        metrics.samples_per_sec,
        metrics.steps,
        metrics.train_seconds
    );
    for (what, path) in [("metrics", &args.metrics_json), ("checkpoint", &args.checkpoint)] {
        if let Some(path) = path {
            println!("{what} written to {}", path.display());
        }
    }
    if let Some(dir) = &args.plots {
        for picture in pictures(dir, &args.model)? {
            println!("picture drawn: {}", picture.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_language_training(args: &TrainArgs) -> kiln_core::Result<ExitCode> {
    let metrics = train::train_language(args, true)?;
    println!(
        "{} ({} parameters) on {}: validation {:.4} bits per character after {} steps (unigram {:.3}, bigram {:.3}), \
         {:.0} tokens/s ({:.1} s)",
        metrics.model,
        metrics.parameters,
        metrics.adapter,
        metrics.validation_bpc,
        metrics.steps,
        metrics.unigram_bpc,
        metrics.bigram_bpc,
        metrics.tokens_per_sec,
        metrics.train_seconds
    );
    for (what, path) in [("metrics", &args.metrics_json), ("checkpoint", &args.checkpoint)] {
        if let Some(path) = path {
            println!("{what} written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How `kiln generate` writes.
struct Writing<'a> {
    prompt: &'a str,
    tokens: usize,
    temperature: f32,
    top_k: usize,
    seed: u64,
    cached: bool,
}

/// Streams the prompt's continuation to stdout, byte by byte as drawn, then its speed to stderr.
fn write_text<B: Backend>(backend: B, checkpoint: &std::path::Path, how: &Writing<'_>) -> kiln_core::Result<ExitCode> {
    use std::io::Write;
    let mut writer = kiln_nn::language::Writer::load(backend, checkpoint, how.cached)?;
    let prompt =
        writer.vocab.encode(how.prompt.as_bytes()).map_err(|e| kiln_core::Error::data("--prompt", e.to_string()))?;
    if prompt.is_empty() {
        return Err(kiln_core::Error::data("--prompt", "is empty: give at least one character to continue"));
    }
    let mut sampler = kiln_nn::language::Sampler::new(how.temperature, how.top_k, how.seed)?;
    let mut out = std::io::stdout().lock();
    let io = |source| kiln_core::Error::Io { context: "stdout".into(), source };
    out.write_all(how.prompt.as_bytes()).map_err(io)?;
    let started = std::time::Instant::now();
    let vocab = writer.vocab.clone();
    kiln_nn::language::generate(
        &mut writer.generator,
        &mut writer.store,
        &prompt,
        how.tokens,
        &mut sampler,
        |token| {
            let byte = vocab.bytes[token as usize];
            out.write_all(&[byte]).and_then(|()| out.flush()).map_err(io)
        },
    )?;
    writeln!(out).map_err(io)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{} tokens in {seconds:.2} s ({:.1} tokens/s, {})",
        how.tokens,
        how.tokens as f64 / seconds,
        match (writer.config.model.as_str(), how.cached) {
            ("gpt", true) => "key/value cache",
            ("gpt", false) => "the whole window for every token",
            _ => "the recurrent state in the store",
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn sample(
    checkpoint: &std::path::Path,
    count: usize,
    out: &std::path::Path,
    seed: u32,
    device: train::Device,
) -> kiln_core::Result<ExitCode> {
    if count > 10_000 {
        return Err(kiln_core::Error::data("--count", format!("{count} is more than the 10,000 a grid may hold")));
    }
    kiln_nn::files::check_outputs(&[kiln_nn::files::Output::File { option: "--out", path: out }])?;
    let (images, side, model) = match device {
        train::Device::Gpu => {
            let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
            let mut sampler = kiln_nn::gan::Sampler::load(gpu, checkpoint)?;
            (sampler.sample(count, seed)?, sampler.side, sampler.config.model.clone())
        }
        train::Device::Cpu => {
            let mut sampler = kiln_nn::gan::Sampler::load(kiln_cpu::Cpu, checkpoint)?;
            (sampler.sample(count, seed)?, sampler.side, sampler.config.model.clone())
        }
    };
    let columns = (count as f64).sqrt().ceil() as usize;
    let caption = format!("{model}: {count} samples, seed {seed}");
    plot::plot_samples(&images, side, columns, &caption, out)?;
    println!("{count} samples drawn: {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// The PNG pictures of `model` in `dir`, by name.
fn pictures(dir: &std::path::Path, model: &str) -> kiln_core::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| kiln_core::Error::Io { context: dir.display().to_string(), source })?;
    let mut pictures: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(&format!("{model}-")) && name.ends_with(".png")
        })
        .collect();
    pictures.sort();
    Ok(pictures)
}

fn bench(workloads: &[String], json: Option<&std::path::Path>, data: &std::path::Path) -> kiln_core::Result<ExitCode> {
    let gpu = kiln_gpu::Gpu::new_blocking()?;
    let backend = kiln_kernels::GpuBackend::new(gpu.clone());
    println!("adapter: {}", gpu.description());
    let mut figures = Vec::new();
    for workload in workloads {
        let found = match workload.as_str() {
            "W1" => crate::bench::matmul(&backend)?,
            "W2" => crate::bench::conv2d(&backend)?,
            "W3" => crate::bench::depthwise(&backend)?,
            "W4" => crate::bench::train_step(&backend)?,
            "W5" => crate::bench::epoch(&backend, data)?,
            other => return Err(kiln_core::Error::attribute("bench", format!("unknown workload `{other}` (W1…W5)"))),
        };
        for f in &found {
            println!(
                "{} {:<22} median {:>10.2} {:<9} (min {:.2}, max {:.2})",
                f.workload, f.name, f.median, f.unit, f.min, f.max
            );
        }
        figures.extend(found);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&crate::bench::json(gpu.info(), &figures))
            .map_err(|e| kiln_core::Error::data("bench", e.to_string()))?;
        kiln_nn::files::write_atomically(path, &text)?;
        println!("figures written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn profile(
    model: &str,
    batch: usize,
    steps: usize,
    trace: Option<&std::path::Path>,
    precision: kiln_core::Precision,
) -> kiln_core::Result<ExitCode> {
    use kiln_nn::{Optimizer, ParamGroup, minimize_in};
    let mut classifier = kiln_nn::build_in(&kiln_nn::ModelSpec::named(model), batch, 784, true, 1, precision)?;
    let backward_from = classifier.graph.nodes().len();
    let group =
        ParamGroup { params: classifier.params.clone(), optimizer: Optimizer::Adam(kiln_core::Adam::new(1e-3)) };
    minimize_in(&mut classifier.graph, classifier.loss, &[group], None, precision)?;
    let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
    println!("adapter: {}", gpu.name());
    let mut exec = kiln_graph::Executor::compile(gpu, &classifier.graph, &[classifier.loss])?;
    let (images, labels) = crate::bench::random_batch(batch)?;
    exec.set(classifier.images, &images)?;
    exec.set(classifier.labels, &labels)?;
    let profiled = crate::profile::profile_steps(&mut exec, steps.max(1))?;
    // The compiled graph: fused nodes under their own names.
    let rows = crate::profile::table(exec.graph(), &profiled, backward_from);
    print!("{}", crate::profile::render(&rows, &profiled));
    if let Some(path) = trace {
        let text = serde_json::to_string(&crate::profile::chrome_trace(exec.graph(), &profiled))
            .map_err(|e| kiln_core::Error::data("trace", e.to_string()))?;
        kiln_nn::files::write_atomically(path, &text)?;
        println!("trace written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn ops(cases: &std::path::Path) -> kiln_core::Result<ExitCode> {
    let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
    let rows = crate::support::support_matrix(cases, gpu, kiln_cpu::Cpu)?;
    print!("{}", crate::support::render(&rows));
    Ok(ExitCode::SUCCESS)
}

fn predict(checkpoint: &std::path::Path, invert: predict::Invert, images: &[PathBuf]) -> kiln_core::Result<ExitCode> {
    let gpu = kiln_kernels::GpuBackend::new(kiln_gpu::Gpu::new_blocking()?);
    let paths: Vec<&std::path::Path> = images.iter().map(PathBuf::as_path).collect();
    for (path, prediction) in paths.iter().zip(predict::predict(gpu, checkpoint, &paths, invert)?) {
        let ranked: Vec<String> =
            prediction.top.iter().map(|(name, p)| format!("{name} {}", predict::percent(*p))).collect();
        let note = match (prediction.unsure, prediction.inverted) {
            (true, inverted) => format!(
                "  (background unclear: read as {}; --invert yes or no decides)",
                if inverted { "light, inverted" } else { "dark" }
            ),
            (false, true) => "  (light background: inverted)".into(),
            (false, false) => String::new(),
        };
        println!("{}: {}{note}", path.display(), ranked.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn info() -> kiln_core::Result<ExitCode> {
    let gpu = kiln_gpu::Gpu::new_blocking()?;
    println!("{}", gpu.description());
    let features = gpu.device().features();
    let has = |f: wgpu::Features| if features.contains(f) { "yes" } else { "no" };
    // The width decides whether the subgroup matmul kernels run (exactly 8 lanes).
    let (narrowest, widest) = (gpu.info().subgroup_min_size, gpu.info().subgroup_max_size);
    let subgroups = match features.contains(wgpu::Features::SUBGROUP) {
        false => "no".to_string(),
        true if narrowest == widest => format!("{narrowest} lanes"),
        true => format!("{narrowest} to {widest} lanes"),
    };
    println!(
        "timestamps: {}, shader-f16: {}, subgroups: {subgroups}",
        has(wgpu::Features::TIMESTAMP_QUERY),
        has(wgpu::Features::SHADER_F16),
    );
    Ok(ExitCode::SUCCESS)
}
