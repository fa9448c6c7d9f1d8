//! The `kiln` binary as a user runs it: `check`'s summary line and exit status, and the error
//! for a missing dataset.

use std::path::Path;
use std::process::Command;

fn kiln(args: &[&str]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env("XDG_RUNTIME_DIR", "/tmp").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// `kiln info` names the adapter and its optional features: lavapipe's subgroups are 8 lanes
/// wide (what the subgroup matmul kernels need), llvmpipe through OpenGL has none.
#[test]
fn info_names_the_adapter_and_its_subgroup_width() {
    let info = |backend: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("info")
            .env("XDG_RUNTIME_DIR", "/tmp")
            .env("KILN_BACKEND", backend)
            .output()
            .expect("runs");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (ok, text) = info("vulkan");
    assert!(ok, "{text}");
    let features = text.lines().find(|l| l.starts_with("timestamps: ")).unwrap_or_else(|| panic!("{text}"));
    if text.contains("(Vulkan, Cpu") {
        assert!(features.ends_with("subgroups: 8 lanes"), "{text}");
    }
    let (ok, text) = info("gl");
    if ok && text.contains("(Gl, Cpu") {
        assert!(text.contains("subgroups: no"), "{text}");
    }
}

#[test]
fn check_passes_the_public_cases_of_an_op_on_both_devices() {
    let (ok, text) = kiln(&["check", CASES, "--device", "both", "--ops", "softmax,adam_step"]);
    assert!(ok, "{text}");
    assert!(text.lines().any(|l| l == "18 passed, 0 failed"), "{text}");
}

#[test]
fn check_fails_on_unknown_ops_and_unreadable_files() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let relu = Path::new(CASES).join("relu__2d.safetensors");
    std::fs::copy(&relu, dir.join("relu__2d.safetensors")).expect("copy");
    std::fs::write(dir.join("broken.safetensors"), b"not a case").expect("write");
    // The same case, renamed to an operator Kiln does not know (same length: the header keeps
    // its size).
    let bytes = std::fs::read(&relu).expect("read");
    let at = bytes.windows(11).position(|w| w == b"\"op\":\"relu\"").expect("op in header");
    let mut unknown = bytes.clone();
    unknown[at + 6..at + 10].copy_from_slice(b"frob");
    std::fs::write(dir.join("frob__x.safetensors"), unknown).expect("write");
    let (ok, text) = kiln(&["check", dir.to_str().expect("utf-8"), "--device", "cpu"]);
    assert!(!ok, "must exit non-zero: {text}");
    assert!(text.contains("FAIL") && text.contains("broken.safetensors") && text.contains("frob"), "{text}");
    assert!(text.lines().any(|l| l == "1 passed, 2 failed"), "{text}");
}

#[test]
fn a_missing_dataset_says_how_to_get_it() {
    let (ok, text) = kiln(&["train", "--data", "/nonexistent", "--device", "cpu"]);
    assert!(!ok);
    assert!(text.contains("apt-get install dataset-fashion-mnist"), "{text}");
}

#[test]
fn check_graph_compares_a_training_step_node_by_node() {
    let (ok, text) = kiln(&["check", "--graph", "cnn", "--device", "gpu"]);
    assert!(ok, "{text}");
    assert!(text.contains("[gpu]") && text.contains("nodes agree within 1e-4"), "{text}");
    let (ok, text) = kiln(&["check", "--graph", "mlp", "--device", "both"]);
    assert!(ok && text.contains("[cpu]") && text.contains("[gpu]"), "both devices compared: {text}");
    let (ok, text) = kiln(&["check", "--graph", "resnet"]);
    assert!(!ok && text.contains("the sample models are mlp and cnn"), "{text}");
}

#[test]
fn profile_writes_a_trace_with_every_dispatch_inside_its_step() {
    let trace = std::env::temp_dir().join(format!("kiln-trace-{}.json", std::process::id()));
    let (ok, text) =
        kiln(&["profile", "--model", "cnn", "--batch", "4", "--steps", "2", "--trace", trace.to_str().expect("utf-8")]);
    assert!(ok, "{text}");
    assert!(text.contains("conv2d_backward_weight") && text.contains("GFLOP/s") && text.contains("timer:"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).expect("trace")).expect("json");
    let events = json["traceEvents"].as_array().expect("events");
    let slices = |cat: &str| events.iter().filter(|e| e["cat"] == cat).cloned().collect::<Vec<_>>();
    let (steps, dispatches) = (slices("step"), slices("dispatch"));
    assert_eq!(steps.len(), 2);
    assert_eq!(dispatches.len() % 2, 0, "each step has the same dispatches");
    let per_step = dispatches.len() / 2;
    assert!(per_step > 30, "a CNN training step has many dispatches: {per_step}");
    for (i, d) in dispatches.iter().enumerate() {
        let step = &steps[i / per_step];
        let (ts, dur) = (d["ts"].as_f64().expect("ts"), d["dur"].as_f64().expect("dur"));
        let (start, end) =
            (step["ts"].as_f64().expect("ts"), step["ts"].as_f64().expect("ts") + step["dur"].as_f64().expect("dur"));
        assert!(dur >= 0.0 && ts >= start - 1e-6 && ts + dur <= end + 1e-3, "{d} outside {step}");
        assert!(d["args"]["op"].is_string() && d["args"]["node"].is_u64(), "{d}");
    }
}

#[test]
fn ops_prints_the_support_matrix_of_every_operator() {
    let (ok, text) = kiln(&["ops"]);
    assert!(ok, "{text}");
    let rows: Vec<&str> =
        text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| op") && !l.starts_with("| ---")).collect();
    assert_eq!(rows.len(), 50, "{text}");
    assert!(rows.iter().all(|r| !r.contains('✗')), "{text}");
    assert!(text.contains("| conv2d | ✓ | ✓ | ✓ | ✓ |"), "{text}");
}

#[test]
fn dumped_shaders_carry_their_entry_point_and_constants() {
    let dir = std::env::temp_dir().join(format!("kiln-shaders-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check", "--graph", "mlp", "--device", "gpu"])
        .env("XDG_RUNTIME_DIR", "/tmp")
        .env("KILN_DUMP_SHADERS", &dir)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dumped")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    let matmul =
        names.iter().find(|n| n.starts_with("matmul.") && n.contains("TRANS_B=1")).expect("a transposed matmul");
    let text = std::fs::read_to_string(dir.join(matmul)).expect("read");
    assert!(text.starts_with("// Kiln pipeline: shaders/matmul.wgsl") && text.contains("fn matmul"), "{text}");
}
