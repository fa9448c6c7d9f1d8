//! The page in a real browser: headless Chromium (its WebGPU on SwiftShader, a CPU Vulkan)
//! loads it from `www/serve.py`, the page trains the MLP on a subset and sends back its figures
//! and weights, and the weights are evaluated again natively. `make test` builds the page
//! (`make web-build`) and installs Chromium first; without them these tests fail, saying so.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_gpu::Gpu;
use kiln_kernels::GpuBackend;
use kiln_nn::{Checkpoint, FashionMnist, SavedClassifier, TrainConfig};
use kiln_web::{Trainer, first};

/// Steps the page trains, and the images it trains and is tested on.
const STEPS: usize = 300;
const TRAIN_IMAGES: usize = 10_000;
const TEST_IMAGES: usize = 2_000;
/// The README's floor for the page's test accuracy after those steps.
const ACCURACY_FLOOR: f64 = 0.75;

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> PathBuf {
    std::env::var_os("KILN_DATA").map_or_else(|| PathBuf::from(kiln_nn::DEFAULT_DIR), PathBuf::from)
}

/// Serves the page with `results` as the folder the page sends to; its address.
fn serve(results: &Path) -> (Killed, String) {
    let page = root().join("www/pkg/kiln_web.js");
    assert!(page.is_file(), "{} is missing: build the page with `make web-build` (`make test` does)", page.display());
    let mut server = Command::new("python3")
        .arg(root().join("www/serve.py"))
        .args(["--port", "0", "--data"])
        .arg(data_dir())
        .arg("--results")
        .arg(results)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs www/serve.py");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("the server's first line");
    let address = line.trim().rsplit(' ').next().expect("an address").to_string();
    assert!(address.starts_with("http://127.0.0.1:"), "the server said: {line}");
    (Killed(server), address)
}

/// Opens `url` in headless Chromium and waits for the page's `KILN_TEST` console line; the
/// line, or a failure quoting the browser's log.
fn browse(url: &str, work: &Path, limit: Duration) -> String {
    let log_path = work.join("chromium.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let chromium = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", work.join("profile").display()))
        .args(["--remote-debugging-port=0", url])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("Chromium is installed (`make test` installs it: see ../shared/web/BROWSER.md)");
    let _chromium = Killed(chromium);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("KILN_TEST")) {
            let line = line.to_string();
            assert!(!line.contains("KILN_TEST failed"), "the page failed: {line}");
            return line;
        }
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        assert!(start.elapsed() < limit, "no result from the page within {limit:?}; the browser's log ends:\n{tail:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A fresh folder for one test's browser profile, log and results.
fn work_dir(test: &str) -> PathBuf {
    let work = std::env::temp_dir().join(format!("kiln-browser-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("results")).expect("work folder");
    work
}

#[test]
fn every_golden_case_passes_in_the_browser() {
    let work = work_dir("golden");
    let results = work.join("results");
    let (_server, address) = serve(&results);
    browse(&format!("{address}?mode=golden"), &work, Duration::from_secs(900));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("golden.json")).expect("golden.json")).expect("JSON");
    let cases = report.as_array().expect("a list of cases");
    let on_disk = std::fs::read_dir(root().join("../shared/golden/cases")).expect("the golden cases").count();
    assert_eq!(cases.len(), on_disk, "every case ran");
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c["problems"].as_array().is_none_or(|p| !p.is_empty()))
        .map(|c| format!("{}: {}", c["case"], c["problems"]))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} golden cases fail in the browser:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    for op in ["matmul", "conv2d", "softmax", "cross_entropy"] {
        assert!(cases.iter().any(|c| c["op"] == op), "no case of {op} ran");
    }
    println!("{} golden cases pass in the browser", cases.len());
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn the_page_trains_the_mlp_and_its_weights_score_the_same_natively() {
    let work = work_dir("train");
    let results = work.join("results");
    let (_server, address) = serve(&results);
    let url = format!("{address}?mode=test&model=mlp&steps={STEPS}&train={TRAIN_IMAGES}&test_images={TEST_IMAGES}");
    browse(&url, &work, Duration::from_secs(900));

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("train.json")).expect("train.json")).expect("JSON");
    let losses: Vec<f64> = report["losses"].as_array().expect("losses").iter().filter_map(|v| v.as_f64()).collect();
    assert_eq!(losses.len(), STEPS, "one loss per step");
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (early, late) = (mean(&losses[..20]), mean(&losses[STEPS - 20..]));
    assert!(late < 0.6 * early, "the loss falls: {early:.4} over the first 20 steps, {late:.4} over the last 20");
    let accuracy = report["testAccuracy"].as_f64().expect("testAccuracy");
    assert!(accuracy >= ACCURACY_FLOOR, "test accuracy {accuracy} is below the floor {ACCURACY_FLOOR}");

    // The weights the page saved, as `kiln predict` reads them and as a native run evaluates them.
    let weights = results.join("weights.safetensors");
    let saved = SavedClassifier::load(&weights, 1).expect("kiln predict reads the page's weights");
    assert_eq!((saved.name.as_str(), saved.pixels), ("mlp", 784));
    let checkpoint = Checkpoint::from_bytes(&weights, &std::fs::read(&weights).expect("weights")).expect("checkpoint");
    let config: TrainConfig = serde_json::from_str(checkpoint.meta("config").expect("config")).expect("settings");
    let data = FashionMnist::load(&data_dir()).expect("Fashion-MNIST");
    let backend = GpuBackend::new(Gpu::new_blocking().expect("a native adapter (lavapipe)"));
    let mut native = Trainer::new(backend, config, first(&data.train, TRAIN_IMAGES), first(&data.test, TEST_IMAGES))
        .expect("trainer");
    native.restore(&checkpoint).expect("restore");
    let evaluation = pollster::block_on(native.evaluate()).expect("evaluate");
    assert!(
        (evaluation.accuracy - accuracy).abs() <= 1e-3,
        "native test accuracy {} against the browser's {accuracy}",
        evaluation.accuracy
    );
    println!(
        "browser ({}): test accuracy {accuracy} after {STEPS} steps, {:.0} samples/s; native: {}",
        report["adapter"],
        report["samplesPerSecond"].as_f64().unwrap_or(0.0),
        evaluation.accuracy
    );
    let _ = std::fs::remove_dir_all(&work);
}
