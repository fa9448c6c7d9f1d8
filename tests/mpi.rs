//! Data-parallel training over MPI (`--features mpi`; `make test` builds with it): two ranks
//! started by mpirun, each on half of every batch of 64, end with the parameters one process
//! reaches on the whole batches (within 1e-5) and with parameters bit-identical to each other
//! (the run itself checks that before it ends); a killed rank ends the job, not hangs it;
//! mixed precision, whose loss scale the ranks do not share, is refused.
//!
//! The MLP trains with Adam, the CNN with SGD and momentum: summed in another order, the two
//! shards' gradients differ from one batch's by f32 rounding (1e-7 relative), and Adam divides
//! each gradient by its own running size, so where a weight's gradient is itself a rounding
//! error away from zero (a unit ReLU silenced for most of the batch) that noise sets the sign of
//! a full step: 1e-4 apart after five steps on such weights of the CNN, measured, while every
//! weight under SGD stays within 1e-7.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::nn::Checkpoint;

/// `mpirun` as MPI.md runs it on these machines (as root, shared memory, a hard timeout).
fn mpirun(ranks: usize) -> Command {
    let mut command = Command::new("mpirun");
    command.args(["--allow-run-as-root", "-np", &ranks.to_string(), "--oversubscribe", "--bind-to", "none"]);
    command.args([
        "--timeout",
        "300",
        "--mca",
        "btl",
        "self,vader",
        "--mca",
        "btl_vader_single_copy_mechanism",
        "none",
    ]);
    command.args(["--mca", "odls_base_sigkill_timeout", "0"]).env("XDG_RUNTIME_DIR", "/tmp");
    command.arg(env!("CARGO_BIN_EXE_kiln"));
    command
}

fn train_args(model: &str, checkpoint: &Path) -> Vec<String> {
    let data = common::synthetic_data();
    let optimizer = if model == "cnn" { ["momentum", "0.05"] } else { ["adam", "1e-2"] };
    [
        "train",
        "--model",
        model,
        "--optimizer",
        optimizer[0],
        "--lr",
        optimizer[1],
        "--batch",
        "64",
        "--steps",
        "5",
        "--validation",
        "200",
        "--seed",
        "3",
        "--data",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.display().to_string(), "--checkpoint".into(), checkpoint.display().to_string()])
    .collect()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-mpi-{name}-{}.st", std::process::id()))
}

#[test]
fn two_ranks_reach_the_parameters_of_one_process() {
    for model in ["mlp", "cnn"] {
        let (single, parallel) = (temp(&format!("{model}-single")), temp(&format!("{model}-parallel")));
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(train_args(model, &single))
            .env("XDG_RUNTIME_DIR", "/tmp")
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = mpirun(2).args(train_args(model, &parallel)).arg("--data-parallel").output().expect("mpirun runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model}: the ranks finished with identical parameters: {text}");
        assert_eq!(text.matches("stopped after 5 steps").count(), 1, "rank 0 alone reports: {text}");
        let (one, two) = (Checkpoint::load(&single).expect("single"), Checkpoint::load(&parallel).expect("parallel"));
        assert_eq!(one.counters, two.counters);
        for (name, want) in &one.tensors {
            if name.ends_with(".running") {
                continue;
            }
            let got = two.tensors.get(name).unwrap_or_else(|| panic!("{model}: {name} missing"));
            let error = common::relative_error(got.as_f32().expect("f32"), want.as_f32().expect("f32"));
            assert!(error < 1e-5, "{model}: {name} differs by {error:.2e} between one process and two ranks");
        }
    }
}

/// Mixed precision is refused across ranks, by name, on every rank and without a hang.
#[test]
fn mixed_precision_is_refused_across_ranks() {
    let checkpoint = temp("mixed");
    let out = mpirun(2)
        .args(train_args("mlp", &checkpoint))
        .args(["--data-parallel", "--precision", "mixed"])
        .output()
        .expect("mpirun runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("--precision") && text.contains("one process"), "{text}");
    assert!(!checkpoint.exists(), "nothing trained");
}

#[test]
fn a_killed_rank_ends_the_job() {
    let checkpoint = temp("killed");
    let mut args = train_args("mlp", &checkpoint);
    let steps = args.iter().position(|a| a == "--steps").expect("steps");
    args[steps + 1] = "100000".into();
    let mut job = mpirun(2)
        .args(&args)
        .arg("--data-parallel")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Wait for the ranks to be training, then kill one of them.
    let marker = checkpoint.display().to_string();
    let started = Instant::now();
    let rank = loop {
        std::thread::sleep(Duration::from_millis(500));
        let ranks = Command::new("pgrep").args(["-f", &marker]).output().expect("pgrep");
        let pids: Vec<String> = String::from_utf8_lossy(&ranks.stdout).lines().map(String::from).collect();
        // mpirun itself and the two ranks carry the path in their command lines.
        if pids.len() >= 3 && started.elapsed() > Duration::from_secs(3) {
            break pids.last().cloned().expect("a rank");
        }
        // A job that ended before a rank was killed failed by itself: say how, not only that
        // no rank was found.
        if let Some(status) = job.try_wait().expect("status") {
            let mut text = String::new();
            job.stderr.take().map(|mut e| std::io::Read::read_to_string(&mut e, &mut text));
            panic!("the job ended before a rank was killed ({status}): {text}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the ranks did not start: {pids:?}");
    };
    Command::new("kill").args(["-9", &rank]).status().expect("kill");
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().expect("status") {
            break status;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "the job hangs after a rank was killed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "the job reports the failure");
}
