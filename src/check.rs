//! `kiln check DIR`: runs every golden case of a folder on the chosen devices.

use std::path::Path;

use kiln_core::{Backend, Error, Result};
use kiln_cpu::Cpu;
use kiln_gpu::Gpu;
use kiln_kernels::GpuBackend;

use crate::golden::{Case, case_paths, check_case};
use crate::ops::SUPPORTED_OPS;

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
/// a case counts as one failure, and so does an op of `ops` with no case in `dir`; a folder
/// without cases, or an op name Kiln does not know, is an error: a check of nothing never passes.
pub fn check_dir(dir: &Path, devices: Devices, ops: Option<&[String]>) -> Result<Report> {
    if let Some(unknown) = ops.into_iter().flatten().find(|op| !SUPPORTED_OPS.contains(&op.as_str())) {
        return Err(Error::data(
            format!("--ops {unknown}"),
            format!("is not an operator of the golden format; the operators are {}", SUPPORTED_OPS.join(", ")),
        ));
    }
    let paths = case_paths(dir)?;
    if paths.is_empty() {
        return Err(Error::data(dir.display().to_string(), no_cases_hint(dir)));
    }
    let mut report = Report::default();
    let mut cases = Vec::new();
    for path in paths {
        match Case::load(&path) {
            Ok(case) => cases.push(case),
            Err(e) => {
                report.failed += 1;
                report.lines.push(format!("FAIL {}: {e}", path.display()));
            }
        }
    }
    cases.retain(|c| ops.is_none_or(|ops| ops.contains(&c.op)));
    for op in ops.into_iter().flatten().filter(|op| !cases.iter().any(|c| &c.op == *op)) {
        report.failed += 1;
        report.lines.push(format!("FAIL {op}: no case of this operator in {}", dir.display()));
    }
    if devices != Devices::Gpu {
        run_all(&mut report, "cpu", || Ok(Cpu), &cases);
    }
    if devices != Devices::Cpu {
        let gpu = Gpu::new_blocking()?;
        run_all(&mut report, "gpu", || Ok(GpuBackend::new(gpu.clone())), &cases);
    }
    Ok(report)
}

/// Why `dir` has no cases, and where some are.
fn no_cases_hint(dir: &Path) -> String {
    let with_cases: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && case_paths(p).is_ok_and(|cases| !cases.is_empty()))
        .map(|p| p.display().to_string())
        .collect();
    match with_cases.as_slice() {
        [] => "holds no golden cases (*.safetensors files): nothing to check".into(),
        folders => format!("holds no golden cases itself; these folders in it do: {}", folders.join(", ")),
    }
}

fn run_all<B: Backend>(report: &mut Report, device: &str, backend: impl Fn() -> Result<B>, cases: &[Case]) {
    for case in cases {
        let outcome = backend().and_then(|b| check_case(b, case));
        report.record(device, case, outcome);
    }
}
