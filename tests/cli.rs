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
    assert!(text.contains("nodes agree within 1e-4"), "{text}");
    let (ok, text) = kiln(&["check", "--graph", "resnet"]);
    assert!(!ok && text.contains("the sample models are mlp and cnn"), "{text}");
}
