//! Bad input at every entry point a user reaches — the commands and their options, the
//! environment, the files Kiln reads — each refused with an error that names it, exit status
//! 1, no panic, and nothing written or lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::nn::Checkpoint;

/// Runs `kiln` with `args` and `env`: whether it succeeded, and what it printed.
fn kiln(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command.args(args).env("XDG_RUNTIME_DIR", "/tmp").env_remove("KILN_TIMEOUT_SECS");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs a case that must be refused: exit status 1, every fragment in the message, no panic.
fn refused(args: &[&str], env: &[(&str, &str)], fragments: &[&str]) {
    let (ok, text) = kiln(args, env);
    assert!(!ok, "{args:?} {env:?} succeeded: {text}");
    assert!(!text.contains("panicked"), "{args:?} {env:?} panicked: {text}");
    for fragment in fragments {
        assert!(text.contains(fragment), "{args:?} {env:?}: `{fragment}` not in: {text}");
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn data() -> String {
    common::synthetic_data().display().to_string()
}

#[test]
fn training_options_that_make_no_sense_are_refused_by_name() {
    let data = data();
    for (extra, fragments) in [
        (vec!["--lr", "-1"], vec!["--lr", "-1"]),
        (vec!["--lr", "nan"], vec!["--lr", "nan"]),
        (vec!["--lr", "inf"], vec!["--lr"]),
        (vec!["--batch", "0"], vec!["--batch", "0"]),
        (vec!["--steps", "0"], vec!["--steps"]),
        (vec!["--epochs", "-2"], vec!["--epochs"]),
        (vec!["--model", "resnet"], vec!["resnet", "the models are"]),
        (vec!["--optimizer", "lbfgs"], vec!["lbfgs"]),
        (vec!["--batch", "100000"], vec!["--batch", "100000"]),
        (vec!["--validation", "600"], vec!["--validation", "600"]),
        (vec!["--data", "/nonexistent"], vec!["apt-get install dataset-fashion-mnist"]),
        (vec!["--resume", "/nonexistent/run.st"], vec!["/nonexistent/run.st"]),
        (vec!["--checkpoint", "/nonexistent/folder/run.st"], vec!["/nonexistent/folder"]),
        (vec!["--plots", "/proc/kiln-plots"], vec!["/proc/kiln-plots"]),
    ] {
        // The synthetic data and a validation split it allows, unless the case sets them.
        let given = |option| extra.contains(&option);
        let data_option = if given("--data") { vec![] } else { vec!["--data", data.as_str()] };
        let validation = if given("--validation") { vec![] } else { vec!["--validation", "200"] };
        let args: Vec<&str> = ["train"].into_iter().chain(data_option).chain(validation).chain(extra).collect();
        refused(&args, &[], &fragments);
    }
}

#[test]
fn outputs_that_would_overwrite_each_other_are_refused_before_training() {
    let dir = scratch("collide");
    let path = dir.join("run.st");
    std::fs::write(&path, b"an earlier checkpoint").expect("write");
    let spelled_twice = dir.join(".").join("run.st");
    let (file, other) = (path.to_str().expect("utf-8"), spelled_twice.to_str().expect("utf-8"));
    let data = data();
    refused(
        &["train", "--data", &data, "--metrics-json", file, "--checkpoint", other],
        &[],
        &["--checkpoint", "--metrics-json", "own path"],
    );
    let plots = dir.join("plots");
    let inside = plots.join("mlp-history.png");
    let (plots, inside) = (plots.to_str().expect("utf-8"), inside.to_str().expect("utf-8"));
    refused(
        &["train", "--data", &data, "--plots", plots, "--checkpoint", inside],
        &[],
        &["--plots", "mlp-history.png"],
    );
    assert_eq!(std::fs::read(&path).expect("still there"), b"an earlier checkpoint", "nothing was overwritten");
}

#[test]
fn a_second_writer_of_one_checkpoint_is_refused() {
    let dir = scratch("lock");
    let path = dir.join("run.st");
    let _held = kiln::nn::files::WriterLock::acquire(&path).expect("first writer");
    let data = data();
    let text = kiln::cli::train::train(
        &kiln::cli::train::TrainArgs { checkpoint: Some(path.clone()), ..options(&data) },
        false,
    )
    .expect_err("a second writer")
    .to_string();
    assert!(text.contains("is being written by process") && text.contains(&std::process::id().to_string()), "{text}");
    assert!(!path.exists(), "nothing written");
}

/// A short run's options on the synthetic data.
fn options(data: &str) -> kiln::cli::train::TrainArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        opts: kiln::cli::train::TrainArgs,
    }
    Wrapper::parse_from(["kiln", "--data", data, "--validation", "200", "--batch", "50", "--epochs", "1"]).opts
}

/// The tuner's and the fusion's switches: an unknown value is refused by name with the values
/// it takes; a damaged or unwritable tuning cache is measured around (a warning), never fatal,
/// and a damaged one is replaced by a valid cache.
#[test]
fn tuning_and_fusion_settings_are_checked_and_a_bad_cache_is_survived() {
    let profile = ["profile", "--model", "cnn", "--batch", "8", "--steps", "1"];
    refused(&profile, &[("KILN_TUNE", "sometimes")], &["KILN_TUNE=sometimes", "off", "cached", "full"]);
    refused(&profile, &[("KILN_FUSE", "maybe")], &["KILN_FUSE=maybe", "on", "off"]);
    let dir = scratch("tune-cache");
    let damaged = dir.join("tune.json");
    std::fs::write(&damaged, "{\"version\": 1, \"choices\": [not json").expect("write");
    let cache = damaged.to_string_lossy().to_string();
    let (ok, text) = kiln(&profile, &[("KILN_TUNE_CACHE", &cache), ("RUST_LOG", "warn")]);
    assert!(ok && !text.contains("panicked"), "{text}");
    assert!(text.contains("is not a version-") && text.contains("tuning cache"), "the damage is reported: {text}");
    let replaced: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&damaged).expect("read")).expect("valid JSON again");
    assert!(replaced["choices"].as_object().is_some_and(|c| !c.is_empty()), "{replaced}");
    // A cache under a file cannot be written: the choices stay in the process.
    let unwritable = damaged.join("below-a-file.json").to_string_lossy().to_string();
    let (ok, text) = kiln(&profile, &[("KILN_TUNE_CACHE", &unwritable), ("KILN_TUNE", "full")]);
    assert!(ok && !text.contains("panicked"), "{text}");
}

#[test]
fn environment_variables_out_of_range_are_refused_by_name() {
    for value in ["-1", "inf", "nan", "1e20", "abc", "0"] {
        refused(&["info"], &[("KILN_TIMEOUT_SECS", value)], &["KILN_TIMEOUT_SECS", value]);
    }
    refused(&["info"], &[("KILN_BACKEND", "glide")], &["KILN_BACKEND=glide", "vulkan"]);
    for (variable, value) in [("KILN_ADAPTER", "nonexistent"), ("KILN_BACKEND", "dx12")] {
        let (ok, text) = kiln(&["info"], &[(variable, value)]);
        if ok {
            // dx12 is there on Windows.
            continue;
        }
        assert!(text.contains(&format!("{variable}={value}")) && text.contains("adapters present"), "{text}");
        assert!(!text.contains("apt-get"), "an adapter exists: installing a driver is not the advice: {text}");
    }
}

#[test]
fn checks_of_nothing_fail() {
    let empty = scratch("empty");
    let nested = scratch("nested");
    let inner = nested.join("inner");
    std::fs::create_dir_all(&inner).expect("dir");
    let cases = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    std::fs::copy(Path::new(cases).join("relu__2d.safetensors"), inner.join("relu__2d.safetensors")).expect("copy");
    refused(&["check", empty.to_str().expect("utf-8"), "--device", "cpu"], &[], &["no golden cases"]);
    refused(&["check", nested.to_str().expect("utf-8"), "--device", "cpu"], &[], &["inner"]);
    refused(&["check", cases, "--device", "cpu", "--ops", "relux"], &[], &["relux", "the operators are"]);
    for tolerance in ["nan", "-1", "inf"] {
        refused(&["check", "--graph", "mlp", "--tolerance", tolerance], &[], &["--tolerance"]);
    }
}

#[test]
fn other_commands_refuse_nonsense_sizes() {
    refused(&["profile", "--batch", "0"], &[], &["--batch"]);
    refused(&["profile", "--steps", "0"], &[], &["--steps"]);
    refused(&["profile", "--model", "resnet"], &[], &["resnet"]);
    refused(&["bench", "--workloads", "W9"], &[], &["W9"]);
}

#[test]
fn predict_refuses_files_that_are_not_what_it_needs() {
    let dir = scratch("predict");
    let data = data();
    let checkpoint = dir.join("mlp.st");
    kiln::cli::train::train(
        &kiln::cli::train::TrainArgs { checkpoint: Some(checkpoint.clone()), ..options(&data) },
        false,
    )
    .expect("trains");
    let ok_image = dir.join("stripes.png");
    image::GrayImage::from_fn(24, 24, |_, y| image::Luma([if y % 6 < 2 { 220 } else { 30 }]))
        .save(&ok_image)
        .expect("png");
    let jpeg = dir.join("truncated.jpg");
    let mut bytes = Vec::new();
    let rgb = image::RgbImage::from_fn(40, 40, |x, y| image::Rgb([(x * 6) as u8, (y * 6) as u8, 90]));
    image::codecs::jpeg::JpegEncoder::new(&mut bytes).encode_image(&rgb).expect("jpeg");
    std::fs::write(&jpeg, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let blank = dir.join("blank.png");
    image::GrayImage::from_pixel(20, 20, image::Luma([128])).save(&blank).expect("png");
    let text_file = dir.join("notes.png");
    std::fs::write(&text_file, "not an image").expect("write");
    let broken = dir.join("broken.st");
    std::fs::write(&broken, [0u8; 64]).expect("write");
    let mut saved = Checkpoint::load(&checkpoint).expect("load");
    saved.tensors.get_mut("fc1.bias").expect("tensor").data = kiln::core::TensorData::F32(vec![f32::NAN; 10]);
    let nan = dir.join("nan.st");
    saved.save(&nan).expect("save");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let predict =
        |checkpoint: &Path, image: &Path| vec!["predict".into(), "--checkpoint".into(), s(checkpoint), s(image)];
    for (args, fragments) in [
        (predict(&checkpoint, &jpeg), vec!["truncated.jpg", "truncated JPEG"]),
        (predict(&checkpoint, &blank), vec!["blank.png", "blank"]),
        (predict(&checkpoint, &text_file), vec!["notes.png", "not a PNG or JPEG"]),
        (predict(&checkpoint, &dir.join("missing.png")), vec!["missing.png"]),
        (predict(&broken, &ok_image), vec!["broken.st"]),
        (predict(&nan, &ok_image), vec!["nan.st", "fc1.bias", "NaN"]),
        (predict(&dir.join("missing.st"), &ok_image), vec!["missing.st"]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, &[], &fragments);
    }
    let (ok, text) = kiln(&["predict", "--checkpoint", &s(&checkpoint), &s(&ok_image)], &[]);
    assert!(ok && text.contains("stripes.png:") && text.contains('%'), "{text}");
}

#[test]
fn an_image_drawn_only_in_its_alpha_channel_keeps_its_shape() {
    let dir = scratch("alpha");
    let path = dir.join("alpha.png");
    // Black everywhere; the item (a bar) only in the alpha channel.
    let bar = |x: u32, y: u32| (10..18).contains(&x) && (4..24).contains(&y);
    let image = image::RgbaImage::from_fn(28, 28, |x, y| image::Rgba([0, 0, 0, if bar(x, y) { 255 } else { 0 }]));
    image.save(&path).expect("png");
    let seen = kiln::cli::predict::load_image(&path, 28, kiln::cli::predict::Invert::Auto).expect("reads");
    assert!(seen.inverted && !seen.unsure, "a dark bar over a white (transparent) background is inverted");
    let bar: f32 = (4..24).map(|r| seen.pixels[r * 28 + 14]).sum::<f32>() / 20.0;
    let edge: f32 = (0..28).map(|r| seen.pixels[r * 28]).sum::<f32>() / 28.0;
    assert!(bar > 0.9 && edge < 0.1, "light bar on dark: bar {bar}, edge {edge}");
}

#[test]
fn bright_fashion_mnist_items_are_not_inverted_and_light_backgrounds_are() {
    let data = kiln::nn::FashionMnist::load(Path::new(kiln::nn::DEFAULT_DIR))
        .unwrap_or_else(|e| panic!("this test reads the real test images: {e}"));
    let dir = scratch("bright");
    let set = &data.test;
    let bright: Vec<usize> = (0..set.len())
        .filter(|&i| set.batch(&[i]).0.iter().sum::<f32>() / set.image_size() as f32 > 0.5)
        .take(60)
        .collect();
    assert!(bright.len() >= 40, "the test set holds bright items: {}", bright.len());
    for &i in &bright {
        let pixels = set.batch(&[i]).0;
        let as_bytes = |invert: bool| -> Vec<u8> {
            pixels.iter().map(|&v| ((if invert { 1.0 - v } else { v }) * 255.0).round() as u8).collect()
        };
        for invert in [false, true] {
            let path = dir.join(format!("{i}-{invert}.png"));
            image::GrayImage::from_raw(28, 28, as_bytes(invert)).expect("image").save(&path).expect("png");
            let seen = kiln::cli::predict::load_image(&path, 28, kiln::cli::predict::Invert::Auto).expect("reads");
            assert_eq!(seen.inverted, invert, "test image {i}, stored inverted: {invert}");
            let error = seen.pixels.iter().zip(&pixels).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(error < 0.01, "test image {i} reads back as the model's input (off by {error})");
        }
    }
}

#[test]
fn probabilities_never_claim_certainty() {
    assert_eq!(kiln::cli::predict::percent(0.99999), ">99.9%");
    assert_eq!(kiln::cli::predict::percent(1.0), ">99.9%");
    assert_eq!(kiln::cli::predict::percent(0.9994), "99.9%");
    assert_eq!(kiln::cli::predict::percent(0.5), "50.0%");
}

#[test]
fn shapes_with_no_elements_or_too_many_are_refused_when_built() {
    use kiln::core::{Conv2d, DType};
    use kiln::graph::{Executor, Graph};
    let mut g = Graph::new();
    let empty = g.input("empty", vec![0, 784], DType::F32);
    let w = g.input("w", vec![784, 10], DType::F32);
    let text = g.matmul(empty, w).expect_err("refused").to_string();
    assert!(text.contains("[0, 10]") && text.contains("at least 1"), "{text}");
    let text = Executor::compile(kiln::cpu::Cpu, &g, &[empty]).err().expect("refused").to_string();
    assert!(text.contains("empty") && text.contains("[0, 784]"), "{text}");
    let mut g = Graph::new();
    let huge = g.input("huge", vec![1 << 40, 1 << 40], DType::F32);
    let text = Executor::compile(kiln::cpu::Cpu, &g, &[huge]).err().expect("refused").to_string();
    assert!(text.contains("huge") && text.contains("too many elements"), "{text}");
    // Padding of 100,000 on a 2×2 image: a 200,002² output, 160 GB, refused by the allocator
    // with an error where it used to abort the process.
    let mut g = Graph::new();
    let x = g.input("x", vec![1, 1, 2, 2], DType::F32);
    let k = g.input("k", vec![1, 1, 1, 1], DType::F32);
    let conv = Conv2d { padding: [100_000, 100_000], ..Conv2d::default() };
    let y = g.conv2d(x, k, None, conv).expect("a legal shape");
    let text = Executor::compile(kiln::cpu::Cpu, &g, &[y]).err().expect("refused").to_string();
    assert!(text.contains("out of memory") || text.contains("bytes"), "{text}");
}

#[test]
fn a_golden_case_with_a_nan_reference_or_no_elements_fails_without_stopping_the_rest() {
    let dir = scratch("golden");
    let cases = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let relu = kiln::golden::Case::load(&cases.join("relu__2d.safetensors")).expect("case");
    let write = |name: &str, tensors: Vec<(&str, kiln::core::HostTensor)>| {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> =
            tensors.iter().map(|(n, t)| (n.to_string(), t.to_bytes(), t.shape.dims().to_vec())).collect();
        let views = bytes.iter().map(|(n, b, s)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"))
        });
        let metadata = [("op", "relu"), ("case", name), ("grad", "0"), ("attrs", "{}")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter()
            .collect();
        let file = safetensors::serialize(views, Some(metadata)).expect("serialize");
        std::fs::write(dir.join(format!("relu__{name}.safetensors")), file).expect("write");
    };
    let x = relu.tensors["in.x"].clone();
    let mut poisoned = relu.tensors["out.y"].clone();
    poisoned.data = kiln::core::TensorData::F32(vec![f32::NAN; poisoned.shape.numel()]);
    write("nan_reference", vec![("in.x", x.clone()), ("out.y", poisoned)]);
    let empty = kiln::core::HostTensor::f32(vec![0, 3], vec![]).expect("empty");
    write("no_elements", vec![("in.x", empty.clone()), ("out.y", empty)]);
    std::fs::copy(cases.join("relu__2d.safetensors"), dir.join("relu__2d.safetensors")).expect("copy");
    let (ok, text) = kiln(&["check", dir.to_str().expect("utf-8"), "--device", "both"], &[]);
    assert!(!ok && !text.contains("panicked"), "{text}");
    assert!(text.contains("nan_reference") && text.contains("corrupt"), "{text}");
    assert!(text.contains("no_elements"), "{text}");
    assert!(text.lines().any(|l| l == "2 passed, 4 failed"), "the good case still runs on both devices: {text}");
}

#[test]
fn a_diverging_run_names_the_step_and_the_first_non_finite_value() {
    let data = data();
    let text = kiln::cli::train::train(&kiln::cli::train::TrainArgs { lr: Some(1e9), ..options(&data) }, false)
        .expect_err("diverges")
        .to_string();
    assert!(text.contains("loss became") && text.contains("step") && text.contains("--lr"), "{text}");
    assert!(text.contains("non-finite") && text.contains("fc"), "names a node or a parameter: {text}");
}

#[test]
fn a_step_longer_than_the_timeout_fails_with_a_timeout_on_every_backend() {
    let adapters: Vec<(&str, bool)> = ["vulkan", "gl"]
        .into_iter()
        .filter_map(|backend| {
            let choice = kiln::gpu::AdapterChoice { backend: Some(backend.to_string()), ..Default::default() };
            let (_, adapter) = pollster::block_on(choice.pick()).ok()?;
            Some((backend, adapter.get_info().device_type == wgpu::DeviceType::Cpu))
        })
        .collect();
    assert!(!adapters.is_empty(), "no Vulkan or OpenGL adapter to try");
    for (backend, cpu) in adapters {
        // A 2048³ product takes far longer than 10 ms on a CPU adapter; on OpenGL the driver
        // computes inside the submission, which used to ignore the bound. A real GPU may finish
        // in time: then it must simply succeed.
        let (ok, text) =
            kiln(&["bench", "--workloads", "W1"], &[("KILN_TIMEOUT_SECS", "0.01"), ("KILN_BACKEND", backend)]);
        let timed_out = !ok && text.contains("timed out after 0.01 s");
        assert!(timed_out || (ok && !cpu), "{backend}: {text}");
        assert!(!text.contains("panicked"), "{backend}: {text}");
    }
}
