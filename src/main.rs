//! The `kiln` command line: check golden cases, train models, inspect the adapter.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln::check::{Devices, check_dir};
use kiln::train::{Device, OptimizerKind, TrainOptions, train, write_metrics};

#[derive(Parser)]
#[command(name = "kiln", version, about = "A deep-learning compute engine on WebGPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every golden case of a folder (FORMAT.md) and report failures.
    Check {
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "both")]
        device: Devices,
        /// Only these ops, comma-separated.
        #[arg(long, value_delimiter = ',')]
        ops: Option<Vec<String>>,
    },
    /// Train a classifier on Fashion-MNIST and print its test accuracy.
    Train {
        #[arg(long, default_value = "mlp")]
        model: String,
        #[arg(long, value_enum, default_value = "sgd")]
        optimizer: OptimizerKind,
        #[arg(long, default_value_t = 0.1)]
        lr: f32,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 3000)]
        steps: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Folder with the IDX files (raw or .gz).
        #[arg(long, default_value = kiln::nn::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long, value_enum, default_value = "gpu")]
        device: Device,
        /// Write the run's figures as a JSON object.
        #[arg(long)]
        metrics_json: Option<PathBuf>,
    },
    /// Print the adapter Kiln would use.
    Info,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("kiln=info,kiln_gpu=info,wgpu_core=error,wgpu_hal=off"),
    )
    .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { dir, device, ops } => check(&dir, device, ops.as_deref()),
        Command::Train { model, optimizer, lr, batch, steps, seed, data, device, metrics_json } => {
            let opts = TrainOptions { model, optimizer, lr, batch, steps, seed, data, device, progress: true };
            run_training(&opts, metrics_json.as_deref())
        }
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

fn run_training(opts: &TrainOptions, metrics_json: Option<&std::path::Path>) -> kiln_core::Result<ExitCode> {
    let metrics = train(opts)?;
    println!(
        "{} on {}: test accuracy {:.4}, train loss {:.4}, {:.0} samples/s over {} steps ({:.1} s)",
        metrics.model,
        metrics.adapter,
        metrics.test_accuracy,
        metrics.train_loss,
        metrics.samples_per_sec,
        metrics.steps,
        metrics.train_seconds
    );
    if let Some(path) = metrics_json {
        write_metrics(path, &metrics)?;
        println!("metrics written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn info() -> kiln_core::Result<ExitCode> {
    let gpu = kiln_gpu::Gpu::new_blocking()?;
    println!("{}", gpu.description());
    Ok(ExitCode::SUCCESS)
}
