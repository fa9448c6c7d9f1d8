//! The `kiln` command line: check golden cases, train models, inspect the adapter.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln::check::{Devices, check_dir};

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
    /// Print the adapter Kiln would use.
    Info,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("kiln=info,kiln_gpu=info,wgpu=error"))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { dir, device, ops } => check(&dir, device, ops.as_deref()),
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

fn info() -> kiln_core::Result<ExitCode> {
    let gpu = kiln_gpu::Gpu::new_blocking()?;
    println!("{}", gpu.description());
    Ok(ExitCode::SUCCESS)
}
