//! `kiln check DIR`: runs every golden case of a folder on the chosen devices.

use std::path::Path;

use kiln_core::{Backend, Result};
use kiln_cpu::Cpu;
use kiln_gpu::Gpu;
use kiln_kernels::GpuBackend;

use crate::golden::{Case, case_paths, check_case};

/// Where cases run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Devices {
    Gpu,
    Cpu,
    Both,
}

/// Totals of a check run, and one line per failure.
#[derive(Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub lines: Vec<String>,
}

impl Report {
    fn record(&mut self, device: &str, case: &Case, outcome: Result<Vec<crate::golden::Mismatch>>) {
        let problems: Vec<String> = match outcome {
            Ok(m) => m.into_iter().map(|m| format!("{}: {}", m.tensor, m.problem)).collect(),
            Err(e) => vec![format!("error: {e}")],
        };
        if problems.is_empty() {
            self.passed += 1;
            return;
        }
        self.failed += 1;
        for p in problems {
            self.lines.push(format!("FAIL [{device}] {} {}: {p}", case.op, case.name));
        }
    }
}

/// Runs the cases of `dir` (only `ops` when given) on `devices`. A file that cannot be read as
/// a case counts as one failure.
pub fn check_dir(dir: &Path, devices: Devices, ops: Option<&[String]>) -> Result<Report> {
    let mut report = Report::default();
    let mut cases = Vec::new();
    for path in case_paths(dir)? {
        match Case::load(&path) {
            Ok(case) => cases.push(case),
            Err(e) => {
                report.failed += 1;
                report.lines.push(format!("FAIL {}: {e}", path.display()));
            }
        }
    }
    cases.retain(|c| ops.is_none_or(|ops| ops.contains(&c.op)));
    if devices != Devices::Gpu {
        run_all(&mut report, "cpu", || Ok(Cpu), &cases);
    }
    if devices != Devices::Cpu {
        let gpu = Gpu::new_blocking()?;
        run_all(&mut report, "gpu", || Ok(GpuBackend::new(gpu.clone())), &cases);
    }
    Ok(report)
}

fn run_all<B: Backend>(report: &mut Report, device: &str, backend: impl Fn() -> Result<B>, cases: &[Case]) {
    for case in cases {
        let outcome = backend().and_then(|b| check_case(b, case));
        report.record(device, case, outcome);
    }
}
