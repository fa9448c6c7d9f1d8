//! Binary tasks: the perceptron learns a linearly separable set by its rule and then stops
//! changing, step for step as the classic algorithm `w ← w + η(y − ŷ)x` computed here in f64;
//! `kiln train --task binary:A,B` trains a logistic unit, an MLP or the perceptron on two sets
//! of classes and reports accuracy, precision, recall and the confusion matrix, and `predict`
//! names the two sides.

mod common;

use kiln::core::{Backend, DType, HostTensor, Sgd};
use kiln::graph::{Program, Store};
use kiln::nn::{BinaryLoss, Layers, Optimizer, Task};

/// A separable set in the plane: the label is the side of the line 2x − y + 0.3 = 0, with
/// every point at least 0.1 from it.
fn separable(count: usize) -> Vec<([f32; 2], f32)> {
    let values = common::random_vec(4 * count, 17);
    values
        .chunks(2)
        .map(|p| [p[0], p[1]])
        .filter(|[x, y]| (2.0 * x - y + 0.3).abs() / 5f32.sqrt() > 0.1)
        .take(count)
        .map(|[x, y]| ([x, y], f32::from(2.0 * x - y + 0.3 > 0.0)))
        .collect()
}

/// The perceptron over the plane, one point per step, SGD at rate 1 on its criterion.
fn perceptron<B: Backend>(backend: B) -> (Store<B>, Program<B>, kiln::nn::Model) {
    let mut l = Layers::new(true, 3);
    let points = l.g.input("images", vec![1, 2], DType::F32);
    let logit = l.linear("fc", points, 1).expect("unit");
    let mut model = l.finish(points, logit, Task::Binary(BinaryLoss::Perceptron)).expect("model");
    model.add_training(Optimizer::Sgd(Sgd::new(1.0, 0.0, 0.0))).expect("training");
    let mut store = Store::new(backend);
    let program = Program::compile(&mut store, &model.graph, &[model.loss]).expect("compile");
    (store, program, model)
}

fn parameters<B: Backend>(store: &Store<B>) -> Vec<f32> {
    store
        .read(&["fc.weight", "fc.bias"])
        .expect("read")
        .iter()
        .flat_map(|t| t.as_f32().expect("f32").to_vec())
        .collect()
}

#[test]
fn the_perceptron_follows_its_rule_converges_and_then_stops_updating() {
    let set = separable(60);
    let (mut store, program, model) = perceptron(common::gpu());
    // The classic algorithm in f64 from the same starting weights.
    let start = parameters(&store);
    let (mut w, mut b) = ([start[0] as f64, start[1] as f64], start[2] as f64);
    let mut clean_epoch = None;
    for epoch in 0..100 {
        let mut mistakes = 0;
        for ([x, y], label) in &set {
            program.set(model.images, &HostTensor::f32(vec![1, 2], vec![*x, *y]).expect("point")).expect("set");
            program.set(model.labels, &HostTensor::f32(vec![1, 1], vec![*label]).expect("label")).expect("set");
            program.run(&mut store, &[model.loss]).expect("step");
            let predicted = f64::from(w[0] * *x as f64 + w[1] * *y as f64 + b > 0.0);
            let error = *label as f64 - predicted;
            if error != 0.0 {
                mistakes += 1;
                w = [w[0] + error * *x as f64, w[1] + error * *y as f64];
                b += error;
            }
            let got = parameters(&store);
            for (g, want) in got.iter().zip([w[0], w[1], b]) {
                assert!(
                    (*g as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "epoch {epoch}: {got:?} against {w:?} {b}"
                );
            }
        }
        if mistakes == 0 {
            clean_epoch = Some(epoch);
            break;
        }
    }
    let clean = clean_epoch.expect("a separable set is learnt (Novikoff: finitely many mistakes)");
    // Every point on its side: another pass changes no bit.
    let learnt = parameters(&store);
    for ([x, y], label) in &set {
        program.set(model.images, &HostTensor::f32(vec![1, 2], vec![*x, *y]).expect("point")).expect("set");
        program.set(model.labels, &HostTensor::f32(vec![1, 1], vec![*label]).expect("label")).expect("set");
        let loss = program.run(&mut store, &[model.loss]).expect("step")[0].as_f32().expect("f32")[0];
        assert_eq!(loss, 0.0, "every point is on its side after epoch {clean}");
    }
    assert_eq!(parameters(&store), learnt, "a perceptron that makes no mistake stops updating");
}

#[test]
fn binary_tasks_train_report_their_confusion_and_predict_names_the_sides() {
    let data = common::synthetic_data();
    let data = data.to_str().expect("utf-8");
    let checkpoint = std::env::temp_dir().join(format!("kiln-binary-{}.safetensors", std::process::id()));
    let checkpoint = checkpoint.to_str().expect("utf-8");
    // Synthetic classes 0 and 5 are stripes every second line, 4 and 9 every sixth: a sum of
    // pixels tells them apart, so even one linear unit does.
    for (model, rate) in [
        ("logistic", ["--optimizer", "adam", "--lr", "0.1"]),
        ("mlp", ["--optimizer", "adam", "--lr", "1e-2"]),
        ("perceptron", ["--optimizer", "sgd", "--lr", "0.1"]),
    ] {
        let base = [
            "train",
            "--model",
            model,
            "--task",
            "binary:0+5,4+9",
            "--epochs",
            "20",
            "--batch",
            "20",
            "--validation",
            "0",
            "--data",
            data,
            "--checkpoint",
            checkpoint,
        ];
        let (ok, out, err) = common::kiln(&[&base[..], &rate[..]].concat());
        assert!(ok, "{model}: {err}");
        let accuracy: f64 = out
            .split("test accuracy ")
            .nth(1)
            .and_then(|rest| rest.get(..6))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{model}: {out}"));
        assert!(accuracy > 0.9, "{model}: stripes' density is easy to learn, got {accuracy}: {out}");
        assert!(out.contains("precision") && out.contains("recall") && out.contains("confusion [["), "{out}");
    }
    let image = std::env::temp_dir().join(format!("kiln-binary-{}.png", std::process::id()));
    image::GrayImage::from_fn(12, 12, |_, y| image::Luma([if y % 3 == 0 { 220 } else { 40 }]))
        .save(&image)
        .expect("png");
    let (ok, out, err) = common::kiln(&["predict", "--checkpoint", checkpoint, image.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    assert!(out.contains("T-shirt/top+Sandal") && out.contains("Coat+Ankle boot"), "{out}");
    for (args, says) in [
        (&["--model", "perceptron"][..], "--task binary:A,B"),
        (&["--model", "mlp", "--task", "binary:shirt"][..], "two sides"),
        (&["--model", "autoencoder", "--task", "binary:1,2"][..], "reconstructs"),
        (&["--model", "mlp", "--task", "odd"][..], "no task"),
    ] {
        let (ok, _, err) = common::kiln(&[&["train", "--data", data, "--steps", "1"][..], args].concat());
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_file(checkpoint);
    let _ = std::fs::remove_file(image);
}
