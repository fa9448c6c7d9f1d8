//! The public golden cases (copied from ../shared/golden/cases into tests/golden) and the
//! awkward-shape cases made by the same JAX generator (tests/golden_awkward) pass on the CPU
//! reference path and on the GPU, forward outputs and gradients.

mod common;

use std::path::Path;

use kiln::golden::{check_case, load_dir};
use kiln::ops::SUPPORTED_OPS;

fn cases() -> Vec<kiln::golden::Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut all = load_dir(&root.join("golden")).expect("public golden cases load");
    all.extend(load_dir(&root.join("golden_awkward")).expect("awkward golden cases load"));
    let cases: Vec<_> = all.into_iter().filter(|c| SUPPORTED_OPS.contains(&c.op.as_str())).collect();
    assert!(cases.len() >= 150, "expected the public and awkward cases of every supported op, found {}", cases.len());
    cases
}

fn failures<B: kiln::core::Backend>(backend: impl Fn() -> B) -> Vec<String> {
    let mut failed = Vec::new();
    for case in cases() {
        match check_case(backend(), &case) {
            Ok(m) if m.is_empty() => {}
            Ok(m) => failed.push(format!("{} {}: {m:?}", case.op, case.name)),
            Err(e) => failed.push(format!("{} {}: {e}", case.op, case.name)),
        }
    }
    failed
}

#[test]
fn golden_cases_pass_on_cpu() {
    let failed = failures(|| kiln::cpu::Cpu);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn golden_cases_pass_on_gpu() {
    let gpu = common::gpu();
    let failed = failures(|| gpu.clone());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_supported_op_has_public_cases() {
    let cases = cases();
    for op in SUPPORTED_OPS {
        assert!(cases.iter().any(|c| c.op == *op), "no golden case for `{op}`");
    }
}

#[test]
fn a_case_with_a_wrong_expectation_fails() {
    let mut case = cases().into_iter().find(|c| c.op == "matmul").expect("a matmul case");
    let want = case.tensors.get_mut("out.y").expect("out.y");
    if let kiln::core::TensorData::F32(v) = &mut want.data {
        v[0] += 1.0;
    }
    let mismatches = check_case(kiln::cpu::Cpu, &case).expect("runs");
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert_eq!(mismatches[0].tensor, "out.y");
}
