//! The trainer (`kiln::nn::train`) and the `kiln train` options over it: a run stopped and
//! resumed from its checkpoint continues exactly as the run that never stopped; a resumed run
//! refuses changed settings by name; `--steps` runs exactly that many steps across epochs and
//! `--epochs` with it stops at whichever comes first, saying which; `--patience` keeps the best
//! epoch; every optimizer and every model learns, and the pictures are drawn. The data is
//! `common::synthetic_data` (12×12 images), so the tests are quick.

mod common;

use std::path::PathBuf;

use kiln::cli::train::TrainArgs;
use kiln::core::{Backend, Error, Precision, Result};
use kiln::nn::{
    EpochRow, FashionMnist, Metrics, ModelSpec, OptimizerKind, Progress, Run, ScheduleKind, Stop, TrainConfig,
};

fn config(model: &str, epochs: usize) -> TrainConfig {
    TrainConfig {
        model: ModelSpec::named(model),
        optimizer: OptimizerKind::Adam,
        lr: 1e-2,
        schedule: ScheduleKind::Cosine,
        batch: 50,
        epochs: Some(epochs),
        seed: 3,
        // 200 held out: 400 training images, eight steps an epoch.
        validation: 200,
        ..TrainConfig::default()
    }
}

/// Hears nothing; or, with a limit, stops the run after that many epochs, as a kill would.
#[derive(Default)]
struct Listener {
    stop_after: Option<usize>,
    notes: Vec<String>,
}

impl<B: Backend> Progress<B> for Listener {
    fn epoch(&mut self, row: &EpochRow, _run: &mut Run<'_, B>) -> Result<()> {
        match self.stop_after {
            Some(limit) if row.epoch >= limit => Err(Error::data("test", "stopped")),
            _ => Ok(()),
        }
    }

    fn note(&mut self, text: &str) {
        self.notes.push(text.into());
    }
}

fn data() -> FashionMnist {
    FashionMnist::load(&common::synthetic_data()).expect("synthetic data")
}

fn train(config: &TrainConfig) -> Result<Metrics> {
    kiln::nn::train(common::gpu(), config, &data(), &mut Listener::default()).map(|t| t.metrics)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-{name}-{}.safetensors", std::process::id()))
}

/// Every figure of each epoch but its wall-clock time.
fn curve(rows: &[EpochRow]) -> Vec<EpochRow> {
    rows.iter().map(|r| EpochRow { seconds: 0.0, ..r.clone() }).collect()
}

#[test]
fn a_resumed_run_continues_exactly_like_an_uninterrupted_one() {
    // With augmentation, dropout and batch norm: flips and shifts are drawn per step from the
    // seed, masks and Adam's steps from the store's counters.
    let settings = TrainConfig { augment: true, ..config("cnn-bn", 3) };
    let whole = train(&settings).expect("three epochs");
    let path = temp("resume");
    let first = TrainConfig { checkpoint: Some(path.clone()), ..settings.clone() };
    let mut stopper = Listener { stop_after: Some(2), ..Listener::default() };
    kiln::nn::train(common::gpu(), &first, &data(), &mut stopper).err().expect("stopped after two epochs");
    let leftovers = std::fs::read_dir(path.parent().expect("folder")).expect("list").filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.ends_with(".partial") && name.contains(&format!("kiln-resume-{}", std::process::id()))
    });
    assert!(!leftovers, "the temporary file is renamed away");
    let rest = train(&TrainConfig { resume: Some(path.clone()), ..settings }).expect("resumed");
    assert_eq!(
        curve(&rest.epochs),
        curve(&whole.epochs),
        "masks, Adam's step, the schedule and the shuffle all resume"
    );
    let _ = std::fs::remove_file(path);
}

/// Mixed precision resumes as exactly: the loss scale and its count of finite steps are
/// store variables, saved and restored with the parameters.
#[test]
fn a_resumed_mixed_precision_run_continues_exactly() {
    let settings = TrainConfig { precision: Precision::Mixed, ..config("mlp", 3) };
    let whole = train(&settings).expect("three epochs");
    let path = temp("resume-mixed");
    let first = TrainConfig { checkpoint: Some(path.clone()), ..settings.clone() };
    let mut stopper = Listener { stop_after: Some(1), ..Listener::default() };
    kiln::nn::train(common::gpu(), &first, &data(), &mut stopper).err().expect("stopped after one epoch");
    let saved = kiln::nn::Checkpoint::load(&path).expect("checkpoint");
    assert!(saved.tensors.contains_key(kiln::nn::LOSS_SCALE), "the loss scale is saved");
    let rest = train(&TrainConfig { resume: Some(path.clone()), ..settings }).expect("resumed");
    assert_eq!(curve(&rest.epochs), curve(&whole.epochs));
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_resumed_run_refuses_changed_settings_by_name() {
    let path = temp("settings");
    train(&TrainConfig { checkpoint: Some(path.clone()), ..config("mlp", 1) }).expect("one epoch");
    for (changed, setting) in [
        (config("cnn", 1), "--model mlp, not cnn"),
        (TrainConfig { lr: 0.5, ..config("mlp", 1) }, "--lr 0.01, not 0.5"),
        (TrainConfig { batch: 40, ..config("mlp", 1) }, "--batch 50, not 40"),
        (TrainConfig { seed: 4, ..config("mlp", 1) }, "--seed 3, not 4"),
        (TrainConfig { optimizer: OptimizerKind::Sgd, ..config("mlp", 1) }, "--optimizer"),
        (TrainConfig { schedule: ScheduleKind::Step, ..config("mlp", 1) }, "--schedule"),
        (TrainConfig { precision: Precision::Mixed, ..config("mlp", 1) }, "--precision f32, not mixed"),
        (config("mlp", 2), "--epochs Some(1), not Some(2)"),
        (TrainConfig { steps: Some(5), ..config("mlp", 1) }, "--steps None, not Some(5)"),
    ] {
        let text = train(&TrainConfig { resume: Some(path.clone()), ..changed }).expect_err("refused").to_string();
        assert!(text.contains(setting) && text.contains("resume"), "{setting}: {text}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn steps_run_across_epochs_and_with_epochs_the_first_limit_ends_the_run() {
    let mut listener = Listener::default();
    let steps = TrainConfig { steps: Some(10), epochs: None, ..config("mlp", 1) };
    let metrics = kiln::nn::train(common::gpu(), &steps, &data(), &mut listener).expect("trains").metrics;
    assert_eq!(metrics.steps, 10, "exactly the steps asked for");
    assert_eq!(metrics.epochs.iter().map(|r| r.steps).collect::<Vec<_>>(), [8, 2], "across two epochs");
    assert_eq!(metrics.stopped_by, Stop::Steps);
    assert!(listener.notes.iter().any(|n| n.contains("10 steps (--steps)")), "{:?}", listener.notes);
    let both = train(&TrainConfig { steps: Some(100), epochs: Some(2), ..config("mlp", 1) }).expect("trains");
    assert_eq!((both.steps, both.stopped_by), (16, Stop::Epochs), "two epochs come before 100 steps");
    let both = train(&TrainConfig { steps: Some(3), epochs: Some(2), ..config("mlp", 1) }).expect("trains");
    assert_eq!((both.steps, both.stopped_by), (3, Stop::Steps));
}

#[test]
fn patience_keeps_the_best_epoch_and_writes_it_beside_the_checkpoint() {
    let path = temp("patience");
    // A learning rate high enough that validation accuracy soon stops improving.
    let settings = TrainConfig { lr: 0.3, patience: Some(1), checkpoint: Some(path.clone()), ..config("mlp", 12) };
    let metrics = train(&settings).expect("trains");
    let best_row = metrics
        .epochs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.validation_accuracy.partial_cmp(&b.1.validation_accuracy).expect("finite"))
        .map(|(i, _)| i + 1)
        .expect("epochs");
    assert_eq!(metrics.kept_epoch, best_row);
    assert_eq!(metrics.test_accuracy, metrics.epochs[best_row - 1].test_accuracy, "the best epoch's test accuracy");
    let best = kiln::nn::Checkpoint::load(&TrainConfig::best_checkpoint(&path)).expect("best checkpoint");
    let history: Vec<EpochRow> = serde_json::from_str(best.meta("history").expect("history")).expect("rows");
    assert_eq!(history.len(), best_row, "the best checkpoint holds the best epoch");
    assert!(path.exists());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(TrainConfig::best_checkpoint(&path));
}

#[test]
fn every_optimizer_lowers_the_loss() {
    for (optimizer, lr) in [
        (OptimizerKind::Sgd, 0.1),
        (OptimizerKind::Momentum, 0.05),
        (OptimizerKind::Adagrad, 0.05),
        (OptimizerKind::Rmsprop, 1e-3),
        (OptimizerKind::Adam, 3e-3),
        (OptimizerKind::Adamw, 3e-3),
    ] {
        let settings = TrainConfig {
            optimizer,
            lr,
            weight_decay: 1e-4,
            clip_norm: Some(5.0),
            schedule: ScheduleKind::Constant,
            ..config("mlp", 3)
        };
        let metrics = train(&settings).unwrap_or_else(|e| panic!("{optimizer:?}: {e}"));
        let losses: Vec<f64> = metrics.epochs.iter().map(|r| r.train_loss).collect();
        assert!(losses[2] < losses[0], "{optimizer:?}: {losses:?}");
    }
}

/// `kiln train`'s options, parsed as the command line parses them.
fn args(extra: &[&str]) -> TrainArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TrainArgs,
    }
    let data = common::synthetic_data();
    let base = ["kiln", "--data", data.to_str().expect("utf-8"), "--validation", "200", "--batch", "50", "--seed", "3"];
    Wrapper::parse_from(base.iter().chain(extra)).args
}

#[test]
fn the_mlp_takes_its_shape_from_the_options() {
    let shaped = args(&[
        "--hidden",
        "32,16",
        "--activation",
        "gelu",
        "--dropout",
        "0.1",
        "--init",
        "he",
        "--optimizer",
        "adam",
        "--lr",
        "1e-2",
        "--epochs",
        "5",
    ]);
    let model = kiln::nn::build(&shaped.config().model, 4, 144, true, 3).expect("model");
    let shapes: Vec<String> = model.params.iter().map(|&p| model.graph.shape(p).to_string()).collect();
    assert_eq!(shapes, ["[32, 144]", "[32]", "[16, 32]", "[16]", "[10, 16]", "[10]"]);
    let metrics = kiln::cli::train::train(&shaped, false).expect("trains").expect("one process reports");
    assert!(metrics.test_accuracy.expect("accuracy") > 0.2, "learns (chance: 0.1): {metrics:?}");
    let text =
        kiln::cli::train::train(&args(&["--model", "cnn", "--hidden", "10"]), false).expect_err("refused").to_string();
    assert!(text.contains("--hidden") && text.contains("mlp only"), "{text}");
}

#[test]
fn every_model_learns_and_draws_its_pictures() {
    for model in kiln::nn::MODELS {
        let plots = std::env::temp_dir().join(format!("kiln-plots-{}", std::process::id()));
        let dir = plots.to_str().expect("utf-8");
        // The one-output models tell the densest stripes from the sparsest (chance: 0.5).
        let binary = ModelSpec::named(model).binary;
        let task: &[&str] = if binary { &["--task", "binary:0+5,4+9"] } else { &[] };
        let common = ["--model", model, "--optimizer", "adam", "--lr", "3e-3", "--epochs", "5", "--plots", dir];
        let mut run = args(&[&common[..], task].concat());
        if binary {
            // 240 images on the two sides: hold out 40, and take longer strides over the rest.
            (run.validation, run.lr, run.epochs) = (Some(40), Some(0.1), Some(20));
        }
        let metrics =
            kiln::cli::train::train(&run, false).unwrap_or_else(|e| panic!("{model}: {e}")).expect("reported");
        let (chance, floor) = if binary { (0.5, 0.75) } else { (0.1, 0.2) };
        match (metrics.test_accuracy, metrics.test_mse) {
            (Some(accuracy), _) => {
                assert!(accuracy > floor, "{model}: test accuracy {accuracy} (chance: {chance})")
            }
            (None, Some(mse)) => {
                let first = metrics.epochs[0].test_mse.expect("mse");
                assert!(mse < 0.9 * first, "{model}: reconstruction error {first} -> {mse} over five epochs");
                assert!(plots.join(format!("{model}-reconstructions.png")).exists());
            }
            (None, None) => panic!("{model}: no evaluation"),
        }
        let history = image::open(plots.join(format!("{model}-history.png"))).expect("a history plot").to_rgb8();
        assert_eq!((history.width(), history.height()), (900, 360));
        // Something is drawn in each series' colour: the train line (blue) and the test one (red).
        let drawn = |rgb: [u8; 3]| history.pixels().filter(|p| p.0 == rgb).count();
        assert!(drawn([31, 119, 180]) > 100 && drawn([214, 39, 40]) > 100, "{model}: lines drawn");
        let filters = plots.join(format!("{model}-filters.png")).exists();
        assert_eq!(filters, !["mlp", "lstm", "logistic", "perceptron"].contains(model), "{model}: first-layer filters");
        let maps = plots.join(format!("{model}-feature-maps.png")).exists();
        assert_eq!(maps, filters, "{model}: the first layer's feature maps of a test image");
    }
}

#[test]
fn predict_ranks_three_classes_of_an_image_and_names_a_bad_file() {
    let path = temp("predict");
    train(&TrainConfig { checkpoint: Some(path.clone()), ..config("mlp", 2) }).expect("two epochs");
    let png = std::env::temp_dir().join(format!("kiln-stripes-{}.png", std::process::id()));
    let stripes = image::GrayImage::from_fn(48, 48, |_, y| image::Luma([if y % 12 < 3 { 230 } else { 40 }]));
    stripes.save(&png).expect("png");
    let auto = kiln::cli::predict::Invert::Auto;
    let predictions = kiln::cli::predict::predict(common::gpu(), &path, &[png.as_path()], auto).expect("predicts");
    assert_eq!(predictions.len(), 1);
    let top = &predictions[0].top;
    assert_eq!(top.len(), 3);
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1) && top.iter().map(|(_, p)| p).sum::<f32>() <= 1.0001);
    assert!(top.iter().all(|(name, _)| kiln::nn::CLASS_NAMES.contains(&name.as_str())));
    let text = kiln::cli::predict::predict(common::gpu(), &path, &[path.as_path()], auto)
        .expect_err("not an image")
        .to_string();
    assert!(text.contains("kiln-predict") && text.contains("not a PNG or JPEG"), "{text}");
    let autoencoder = temp("autoencoder");
    train(&TrainConfig { checkpoint: Some(autoencoder.clone()), ..config("autoencoder", 1) }).expect("one epoch");
    let text = kiln::cli::predict::predict(common::gpu(), &autoencoder, &[png.as_path()], auto)
        .expect_err("not a classifier")
        .to_string();
    assert!(text.contains("autoencoder") && text.contains("does not classify"), "{text}");
    let _ = (std::fs::remove_file(path), std::fs::remove_file(png), std::fs::remove_file(autoencoder));
}
