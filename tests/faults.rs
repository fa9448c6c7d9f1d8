//! A training run killed with SIGKILL again and again — at random moments, and right as it
//! starts writing a checkpoint — always leaves a whole checkpoint (the old one or the new
//! one), and resumed each time it ends with parameters, optimizer state and step counters
//! bit-identical to a run that was never stopped.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use kiln::nn::Checkpoint;

fn train(data: &Path, checkpoint: &Path, resume: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command.env("XDG_RUNTIME_DIR", "/tmp").stdout(Stdio::piped()).stderr(Stdio::null());
    command.args(["train", "--model", "mlp", "--optimizer", "adam", "--lr", "1e-2", "--schedule", "cosine"]);
    command.args(["--batch", "50", "--epochs", "40", "--validation", "200", "--seed", "3", "--data"]);
    command.arg(data).arg("--checkpoint").arg(checkpoint);
    if resume {
        command.arg("--resume").arg(checkpoint);
    }
    command.spawn().expect("starts")
}

/// Tensors and counters by name.
type State = (BTreeMap<String, kiln::core::HostTensor>, BTreeMap<String, u32>);

/// The state a checkpoint holds (its history carries wall-clock times, left out).
fn state(path: &Path) -> State {
    let saved = Checkpoint::load(path).unwrap_or_else(|e| panic!("a whole checkpoint: {e}"));
    (saved.tensors, saved.counters)
}

/// Waits for the child to print an epoch's row (its checkpoint is written just after), or for
/// it to end; whether it is still running.
fn until_an_epoch_ends(child: &mut Child) -> bool {
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        if line.is_ok_and(|l| l.starts_with("epoch")) {
            return true;
        }
    }
    false
}

#[test]
fn a_run_killed_at_random_moments_resumes_to_the_same_parameters() {
    let data = common::synthetic_data();
    let dir = std::env::temp_dir().join(format!("kiln-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (whole, killed) = (dir.join("whole.st"), dir.join("killed.st"));
    let started = Instant::now();
    assert!(train(&data, &whole, false).wait().expect("runs").success());
    let duration = started.elapsed();

    let mut seed = 0x5eed_u64;
    let mut kills = 0;
    loop {
        let mut child = train(&data, &killed, killed.exists());
        if kills < 16 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Every other kill lands as a checkpoint is being written; the rest at a random moment.
            let running = if kills % 2 == 0 {
                until_an_epoch_ends(&mut child)
            } else {
                std::thread::sleep(duration.mul_f64(0.5 * (seed >> 11) as f64 / (1u64 << 53) as f64));
                child.try_wait().expect("status").is_none()
            };
            if running {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                kills += 1;
                if killed.exists() {
                    state(&killed);
                }
                continue;
            }
        }
        let status = child.wait().expect("runs");
        assert!(status.success(), "the resumed run finished");
        if kills >= 10 {
            break;
        }
        // Finished before enough kills: start the chain again.
        std::fs::remove_file(&killed).expect("remove");
    }
    assert!(kills >= 10, "only {kills} kills");
    assert!(state(&killed) == state(&whole), "after {kills} kills the parameters differ from an uninterrupted run");
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "killed writes' temporary files are cleaned up: {leftovers:?}");
}
