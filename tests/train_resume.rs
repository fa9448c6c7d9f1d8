//! `kiln train` as a library: a run resumed from its checkpoint continues exactly as the run
//! that never stopped (same losses and accuracies, epoch by epoch), checkpoints are complete
//! files, and every model learns on the GPU. The data is `common::synthetic_data`, so the
//! test is quick.

mod common;

use std::path::PathBuf;

use kiln::train::{Device, EpochRow, OptimizerKind, ScheduleKind, TrainOptions, train};

fn options(model: &str, epochs: usize, checkpoint: Option<PathBuf>, resume: Option<PathBuf>) -> TrainOptions {
    TrainOptions {
        model: model.into(),
        optimizer: OptimizerKind::Adam,
        lr: 1e-2,
        schedule: ScheduleKind::Cosine,
        batch: 50,
        epochs,
        steps: None,
        seed: 3,
        data: common::synthetic_data(),
        device: Device::Gpu,
        progress: false,
        // 200 held out: 400 training images, eight steps an epoch.
        validation: 200,
        patience: None,
        checkpoint,
        resume,
        plots: None,
        augment: false,
        metrics_json: None,
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-{name}-{}.safetensors", std::process::id()))
}

fn curve(rows: &[EpochRow]) -> Vec<(f64, Option<f64>, Option<f64>)> {
    rows.iter().map(|r| (r.train_loss, r.test_accuracy, r.validation_accuracy)).collect()
}

#[test]
fn a_resumed_run_continues_exactly_like_an_uninterrupted_one() {
    // With augmentation too: its flips and shifts are drawn per step from the seed.
    let run = |epochs, steps, checkpoint, resume| {
        train(&TrainOptions { steps, augment: true, ..options("cnn-bn", epochs, checkpoint, resume) })
    };
    let whole = run(3, None, None, None).expect("three epochs");
    let path = temp("resume");
    // The same three-epoch run, killed after its second epoch.
    let first = run(3, Some(16), Some(path.clone()), None).expect("two epochs");
    let dir = path.parent().expect("folder");
    let leftovers = std::fs::read_dir(dir).expect("list").filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.ends_with(".partial") && name.contains(&format!("kiln-resume-{}", std::process::id()))
    });
    assert!(!leftovers, "the temporary file is renamed away");
    let rest = run(3, None, None, Some(path.clone())).expect("resumed");
    assert_eq!(curve(&first.epochs), curve(&whole.epochs[..2]));
    assert_eq!(
        curve(&rest.epochs),
        curve(&whole.epochs),
        "masks, Adam's step, the schedule and the shuffle all resume"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_checkpoint_of_another_model_is_refused_by_name() {
    let path = temp("other");
    train(&options("mlp", 1, Some(path.clone()), None)).expect("one epoch");
    let text = train(&options("cnn", 2, None, Some(path.clone()))).expect_err("refused").to_string();
    assert!(text.contains("model mlp, not cnn"), "{text}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn every_model_learns_and_draws_its_pictures() {
    for model in kiln::models::MODELS {
        let plots = std::env::temp_dir().join(format!("kiln-plots-{}", std::process::id()));
        let metrics = train(&TrainOptions { lr: 3e-3, plots: Some(plots.clone()), ..options(model, 5, None, None) })
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        match (metrics.test_accuracy, metrics.test_mse) {
            (Some(accuracy), _) => {
                assert!(accuracy > 0.2, "{model}: test accuracy {accuracy} after five epochs (chance: 0.1)")
            }
            (None, Some(mse)) => {
                let first = metrics.epochs[0].test_mse.expect("mse");
                assert!(mse < 0.9 * first, "{model}: reconstruction error {first} -> {mse} over five epochs");
                assert!(plots.join(format!("{model}-reconstructions.png")).exists());
            }
            (None, None) => panic!("{model}: no evaluation"),
        }
        let history = image::open(plots.join(format!("{model}-history.png"))).expect("a history plot");
        assert_eq!((history.width(), history.height()), (640, 240));
        let filters = plots.join(format!("{model}-filters.png")).exists();
        assert_eq!(filters, !["mlp", "lstm"].contains(model), "{model}: first-layer filters");
        let maps = plots.join(format!("{model}-feature-maps.png")).exists();
        assert_eq!(maps, filters, "{model}: the first layer's feature maps of a test image");
    }
}

#[test]
fn predict_ranks_three_classes_of_an_image_and_names_a_bad_file() {
    let path = temp("predict");
    train(&options("mlp", 2, Some(path.clone()), None)).expect("two epochs");
    let png = std::env::temp_dir().join(format!("kiln-stripes-{}.png", std::process::id()));
    let stripes = image::GrayImage::from_fn(48, 48, |_, y| image::Luma([if y % 12 < 3 { 230 } else { 40 }]));
    stripes.save(&png).expect("png");
    let auto = kiln::predict::Invert::Auto;
    let predictions = kiln::predict::predict(common::gpu(), &path, &[png.as_path()], auto).expect("predicts");
    assert_eq!(predictions.len(), 1);
    let top = &predictions[0].top;
    assert_eq!(top.len(), 3);
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1) && top.iter().map(|(_, p)| p).sum::<f32>() <= 1.0001);
    assert!(top.iter().all(|(name, _)| kiln::predict::CLASS_NAMES.contains(name)));
    let text =
        kiln::predict::predict(common::gpu(), &path, &[path.as_path()], auto).expect_err("not an image").to_string();
    assert!(text.contains("kiln-predict") && text.contains("not a PNG or JPEG"), "{text}");
    let _ = (std::fs::remove_file(path), std::fs::remove_file(png));
}
