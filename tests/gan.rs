//! Generative adversarial networks (`kiln::nn::gan`): the D step leaves G's parameters
//! bit-identical and the G step D's; a GAN run stopped and resumed ends exactly as one never
//! stopped; the score's floor (real images) lies below its ceiling (the untrained generator);
//! `kiln sample` draws the same images from the same seed and refuses what is no GAN; the
//! options of one family are refused on the other. The data is `common::synthetic_data`
//! (12×12 images), so the tests are quick.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln::cli::train::TrainArgs;
use kiln::core::{Backend, Error, HostTensor, Result};
use kiln::graph::Store;
use kiln::nn::gan::{DiscriminatorStep, GanConfig, GanEpochRow, GanMetrics, GanProgress, GanRun, GeneratorStep};
use kiln::nn::{Checkpoint, FashionMnist};

fn data() -> FashionMnist {
    FashionMnist::load(&common::synthetic_data()).expect("synthetic data")
}

fn config(model: &str, epochs: usize) -> GanConfig {
    // 600 training images: nine steps an epoch.
    GanConfig { epochs: Some(epochs), seed: 5, lr: 1e-3, quality_samples: 200, ..GanConfig::named(model) }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-gan-{name}-{}.safetensors", std::process::id()))
}

/// Stops the run after `stop_after` epochs, as a kill would; keeps the notes.
#[derive(Default)]
struct Listener {
    stop_after: Option<usize>,
    notes: Vec<String>,
}

impl<B: Backend> GanProgress<B> for Listener {
    fn epoch(&mut self, row: &GanEpochRow, _run: &mut GanRun<'_, B>) -> Result<()> {
        match self.stop_after {
            Some(limit) if row.epoch >= limit => Err(Error::data("test", "stopped")),
            _ => Ok(()),
        }
    }

    fn note(&mut self, text: &str) {
        self.notes.push(text.into());
    }
}

fn train(config: &GanConfig) -> Result<(GanMetrics, BTreeMap<String, HostTensor>)> {
    let trained = kiln::nn::gan::train_gan(common::gpu(), config, &data(), &mut Listener::default())?;
    Ok((trained.metrics, trained.store.read_all()?))
}

fn read(store: &Store<impl Backend>, graph: &kiln::graph::Graph, params: &[kiln::graph::Value]) -> Vec<HostTensor> {
    let names: Vec<&str> = params.iter().map(|&p| graph.node(p).name.as_str()).collect();
    store.read(&names).expect("read")
}

#[test]
fn each_step_updates_its_own_network_and_leaves_the_other_bit_identical() {
    for model in ["dcgan", "gan-mlp"] {
        let config = config(model, 1);
        let mut store = Store::new(common::gpu());
        let d = DiscriminatorStep::compile(&mut store, &config, 144).expect("D step");
        let g = GeneratorStep::compile(&mut store, &config, 144).expect("G step");
        let (d_graph, g_graph) = (d.program.graph(), g.program.graph());
        let real = HostTensor::f32(vec![config.batch, 144], common::random_vec(config.batch * 144, 1)).expect("real");
        for _ in 0..2 {
            let (g_before, d_before) =
                (read(&store, d_graph, &d.generator_params), read(&store, d_graph, &d.discriminator_params));
            d.program.set(d.real, &real).expect("real batch");
            d.program.run(&mut store, &[d.loss]).expect("D step");
            assert_eq!(read(&store, d_graph, &d.generator_params), g_before, "{model}: the D step leaves G");
            assert_ne!(read(&store, d_graph, &d.discriminator_params), d_before, "{model}: the D step moves D");
            let (g_before, d_before) =
                (read(&store, g_graph, &g.generator_params), read(&store, g_graph, &g.discriminator_params));
            g.program.run(&mut store, &[g.loss]).expect("G step");
            assert_eq!(read(&store, g_graph, &g.discriminator_params), d_before, "{model}: the G step leaves D");
            assert_ne!(read(&store, g_graph, &g.generator_params), g_before, "{model}: the G step moves G");
        }
        // Both steps bind one set of weights: the names of G's and D's parameters agree.
        let names = |graph: &kiln::graph::Graph, params: &[kiln::graph::Value]| {
            params.iter().map(|&p| graph.node(p).name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(d_graph, &d.generator_params), names(g_graph, &g.generator_params));
        assert_eq!(names(d_graph, &d.discriminator_params), names(g_graph, &g.discriminator_params));
        // Adam's state for each network, and its steps, only where it was updated.
        assert_eq!(store.counter(&format!("{}.step", names(d_graph, &d.discriminator_params)[0])), 2);
        assert_eq!(store.counter(&format!("{}.step", names(g_graph, &g.generator_params)[0])), 2);
    }
}

#[test]
fn a_resumed_gan_run_ends_exactly_like_an_uninterrupted_one() {
    let settings = config("dcgan", 3);
    let (whole, whole_store) = train(&settings).expect("three epochs");
    let path = temp("resume");
    let first = GanConfig { checkpoint: Some(path.clone()), ..settings.clone() };
    let mut stopper = Listener { stop_after: Some(2), ..Listener::default() };
    kiln::nn::gan::train_gan(common::gpu(), &first, &data(), &mut stopper).err().expect("stopped after two epochs");
    let (rest, rest_store) = train(&GanConfig { resume: Some(path.clone()), ..settings.clone() }).expect("resumed");
    let curve =
        |rows: &[GanEpochRow]| rows.iter().map(|r| GanEpochRow { seconds: 0.0, ..r.clone() }).collect::<Vec<_>>();
    assert_eq!(curve(&rest.epochs), curve(&whole.epochs), "losses and D's accuracies resume");
    assert_eq!(rest_store, whole_store, "every parameter, moment and running statistic, bit for bit");
    let changed = GanConfig { resume: Some(path.clone()), lr: 5e-4, ..settings };
    let text = train(&changed).expect_err("refused").to_string();
    assert!(text.contains("--lr 0.001, not 0.0005") && text.contains("resume"), "{text}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn the_score_ranks_real_images_above_the_untrained_generator_and_samples_reproduce() {
    let data = common::synthetic_data();
    let data = data.to_str().expect("utf-8");
    let classifier = temp("classifier");
    let classifier = classifier.to_str().expect("utf-8");
    let (ok, _, err) = common::kiln(&[
        "train",
        "--model",
        "cnn",
        "--optimizer",
        "adam",
        "--lr",
        "3e-3",
        "--epochs",
        "2",
        "--batch",
        "50",
        "--validation",
        "0",
        "--data",
        data,
        "--checkpoint",
        classifier,
    ]);
    assert!(ok, "the classifier trains: {err}");
    let checkpoint = temp("dcgan");
    let checkpoint = checkpoint.to_str().expect("utf-8");
    let (ok, out, err) = common::kiln(&[
        "train",
        "--model",
        "dcgan",
        "--epochs",
        "1",
        "--data",
        data,
        "--classifier",
        classifier,
        "--quality-samples",
        "100",
        "--checkpoint",
        checkpoint,
    ]);
    assert!(ok, "the GAN trains: {err}");
    let number = |after: &str| -> f64 {
        let start = out.find(after).unwrap_or_else(|| panic!("`{after}` in {out}")) + after.len();
        out[start..]
            .split(|c: char| c != '.' && !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    };
    let (floor, ceiling) = (number("real training images score "), number("the untrained generator "));
    assert!(floor < ceiling / 3.0, "real images {floor}, untrained generator {ceiling}: {out}");
    assert!(out.contains("FID (Kiln-CNN)") && out.contains("classes %"), "{out}");

    let grid = |seed: &str, name: &str| {
        let path = std::env::temp_dir().join(format!("kiln-gan-{name}-{}.png", std::process::id()));
        let path_text = path.to_str().expect("utf-8").to_string();
        let (ok, _, err) =
            common::kiln(&["sample", "--checkpoint", checkpoint, "--count", "16", "--out", &path_text, "--seed", seed]);
        assert!(ok, "samples: {err}");
        let bytes = std::fs::read(&path).expect("grid written");
        let _ = std::fs::remove_file(&path);
        bytes
    };
    assert_eq!(grid("7", "a"), grid("7", "b"), "the same seed draws the same images");
    assert_ne!(grid("7", "c"), grid("8", "d"), "another seed draws others");

    let (ok, _, err) = common::kiln(&["sample", "--checkpoint", classifier, "--out", "/tmp/never.png"]);
    assert!(!ok && err.contains("not a GAN"), "{err}");
    let image = std::env::temp_dir().join(format!("kiln-gan-image-{}.png", std::process::id()));
    image::GrayImage::new(28, 28).save(&image).expect("image");
    let (ok, _, err) = common::kiln(&["predict", "--checkpoint", checkpoint, image.to_str().expect("utf-8")]);
    assert!(!ok && err.contains("a GAN") && err.contains("does not classify"), "{err}");
    let (ok, _, err) =
        common::kiln(&["train", "--model", "gan-mlp", "--steps", "1", "--data", data, "--classifier", checkpoint]);
    assert!(!ok && err.contains("a GAN") && err.contains("does not classify"), "a GAN cannot score: {err}");
    let (ok, _, err) = common::kiln(&["sample", "--checkpoint", checkpoint, "--count", "20000", "--out", "/tmp/x.png"]);
    assert!(!ok && err.contains("--count"), "{err}");
    let tensors = Checkpoint::load(std::path::Path::new(checkpoint)).expect("checkpoint").tensors;
    assert!(tensors.keys().any(|k| k.starts_with("d.")) && tensors.keys().any(|k| k.starts_with("g.")));
    for path in [classifier, checkpoint] {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(image);
}

#[test]
fn each_familys_options_are_refused_on_the_other() {
    let data = common::synthetic_data();
    let data = data.to_str().expect("utf-8");
    for (args, option) in [
        (&["--model", "dcgan", "--momentum", "0.5"][..], "--momentum"),
        (&["--model", "dcgan", "--optimizer", "sgd"][..], "--optimizer"),
        (&["--model", "gan-mlp", "--validation", "100"][..], "--validation"),
        (&["--model", "mlp", "--latent", "10"][..], "--latent"),
        (&["--model", "cnn", "--beta1", "0.5"][..], "--beta1"),
        (&["--model", "dcgan", "--precision", "mixed"][..], "--precision"),
        (&["--model", "cnn", "--precision", "half"][..], "--precision"),
    ] {
        let (ok, _, err) = common::kiln(&[&["train", "--data", data, "--steps", "1"][..], args].concat());
        assert!(!ok && err.contains(option), "{args:?}: {err}");
    }
    let (ok, _, err) = common::kiln(&["train", "--model", "dcgan", "--data", data, "--beta1", "1.5", "--steps", "1"]);
    assert!(!ok && err.contains("--beta1"), "{err}");
    let defaults = TrainArgs::defaults();
    assert_eq!((defaults.lr, defaults.batch), (None, None), "each family has its own defaults");
}
