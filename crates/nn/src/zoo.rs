//! The model zoo for square grayscale images (Fashion-MNIST): classifiers `mlp`, `cnn`,
//! `cnn-bn`, `mobilenet`, `lstm`, the convolutional `autoencoder`, and for binary tasks (two
//! sets of classes, one output) `logistic` and the `perceptron`, each built in training or
//! eval mode for a batch size. Every classifier takes a binary task too (`ModelSpec::binary`).
//!
//! ```
//! # fn main() -> kiln_core::Result<()> {
//! use kiln_nn::{ModelSpec, build};
//! let training = build(&ModelSpec::named("cnn-bn"), 64, 784, true, 1)?;
//! let evaluation = build(&ModelSpec::named("cnn-bn"), 1000, 784, false, 1)?;
//! // The same parameters, by name: programs of both bind one set of weights in a store.
//! let names = |m: &kiln_nn::Model| m.params.iter().map(|&p| m.graph.node(p).name.clone()).collect::<Vec<_>>();
//! assert_eq!(names(&training), names(&evaluation));
//! # Ok(()) }
//! ```

use kiln_core::{Activation, DType, Error, Precision, Result};
use kiln_graph::Value;
use serde::{Deserialize, Serialize};

use crate::init::Init;
use crate::layers::{BinaryLoss, Cell, Layers, Model, Task};

/// The models `build` knows.
pub const MODELS: &[&str] = &["mlp", "cnn", "cnn-bn", "mobilenet", "lstm", "autoencoder", "logistic", "perceptron"];

/// The models with one output, which need a binary task.
const BINARY_ONLY: &[&str] = &["logistic", "perceptron"];

/// Fashion-MNIST's classes.
pub const CLASSES: usize = 10;

/// The activation between an MLP's layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HiddenActivation {
    #[default]
    Relu,
    LeakyRelu,
    Gelu,
    Tanh,
    Sigmoid,
}

impl HiddenActivation {
    pub fn activation(self) -> Activation {
        match self {
            HiddenActivation::Relu => Activation::Relu,
            HiddenActivation::LeakyRelu => Activation::LeakyRelu { negative_slope: 0.01 },
            HiddenActivation::Gelu => Activation::Gelu { tanh: false },
            HiddenActivation::Tanh => Activation::Tanh,
            HiddenActivation::Sigmoid => Activation::Sigmoid,
        }
    }
}

/// A model of the zoo, and the shape of an `mlp`: its hidden widths, activation, dropout
/// after each hidden layer, and initialisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub hidden: Vec<usize>,
    pub activation: HiddenActivation,
    pub dropout: f32,
    pub init: Init,
    /// One output telling two sets of classes apart (a binary task), not one per class.
    #[serde(default)]
    pub binary: bool,
}

impl ModelSpec {
    /// `name` as the zoo defines it (an `mlp` is 784-100-10 with ReLU).
    pub fn named(name: &str) -> Self {
        ModelSpec {
            name: name.into(),
            hidden: vec![100],
            activation: HiddenActivation::default(),
            dropout: 0.0,
            init: Init::default(),
            binary: BINARY_ONLY.contains(&name),
        }
    }

    /// Refuses an unknown model, MLP options on another model, and nonsense shapes, naming them.
    pub fn check(&self) -> Result<()> {
        if !MODELS.contains(&self.name.as_str()) {
            return Err(Error::Unsupported(format!(
                "model `{}`: the models are {}, and the GANs {}",
                self.name,
                MODELS.join(", "),
                crate::gan::GAN_MODELS.join(", ")
            )));
        }
        let default = ModelSpec::named(&self.name);
        let mlp_only = [
            ("--hidden", self.hidden != default.hidden),
            ("--activation", self.activation != default.activation),
            ("--dropout", self.dropout != default.dropout),
            ("--init", self.init != default.init),
        ];
        if let Some((option, _)) = mlp_only.iter().find(|(_, changed)| *changed).filter(|_| self.name != "mlp") {
            return Err(Error::data(*option, format!("shapes the mlp only, not `{}`", self.name)));
        }
        if self.hidden.contains(&0) {
            return Err(Error::data("--hidden", format!("{:?}: every layer needs a width of at least 1", self.hidden)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::data("--dropout", format!("{} must lie in [0, 1)", self.dropout)));
        }
        if BINARY_ONLY.contains(&self.name.as_str()) && !self.binary {
            return Err(Error::data(
                "--task",
                format!("`{}` has one output: give it two sets of classes, --task binary:A,B", self.name),
            ));
        }
        if self.binary && self.name == "autoencoder" {
            return Err(Error::data("--task", "the autoencoder reconstructs images: it has no classes to tell apart"));
        }
        Ok(())
    }
}

/// The model `spec` names for `batch` images of `pixels` square pixels, in training or eval
/// mode, its parameters drawn from `seed`.
pub fn build(spec: &ModelSpec, batch: usize, pixels: usize, training: bool, seed: u64) -> Result<Model> {
    build_in(spec, batch, pixels, training, seed, Precision::F32)
}

/// `build` with products of `precision` (see `Graph::set_precision`).
pub fn build_in(
    spec: &ModelSpec,
    batch: usize,
    pixels: usize,
    training: bool,
    seed: u64,
    precision: Precision,
) -> Result<Model> {
    spec.check()?;
    let side = (pixels as f64).sqrt() as usize;
    if side * side != pixels {
        return Err(Error::attribute(&spec.name, format!("images of {pixels} pixels are not square")));
    }
    let mut l = Layers::new(training, seed).with_init(spec.init);
    l.g.set_precision(precision);
    let images = l.g.input("images", vec![batch, pixels], DType::F32);
    let square = |l: &mut Layers| l.g.reshape(images, vec![batch, 1, side, side]);
    let (outputs, task) = match (spec.binary, spec.name.as_str()) {
        (false, _) => (CLASSES, Task::Classes),
        (true, "perceptron") => (1, Task::Binary(BinaryLoss::Perceptron)),
        (true, _) => (1, Task::Binary(BinaryLoss::Logistic)),
    };
    let logits = match spec.name.as_str() {
        // One linear unit: logistic regression, or the perceptron by its criterion.
        "logistic" | "perceptron" => l.linear("fc", images, outputs)?,
        "mlp" => {
            let mut x = images;
            for (i, &width) in spec.hidden.iter().enumerate() {
                x = l.linear(&format!("fc{i}"), x, width)?;
                x = l.activation(x, spec.activation.activation())?;
                x = l.dropout(x, spec.dropout)?;
            }
            l.mark_features(x);
            l.linear(&format!("fc{}", spec.hidden.len()), x, outputs)?
        }
        "cnn" => {
            let mut x = square(&mut l)?;
            for (i, c) in [32, 64].into_iter().enumerate() {
                x = l.conv(&format!("conv{i}"), x, c, 3, 1)?;
                x = l.relu(x)?;
                x = l.max_pool(x)?;
            }
            let x = l.flatten(x)?;
            let h = l.linear("fc0", x, 128)?;
            let h = l.relu(h)?;
            l.mark_features(h);
            l.linear("fc1", h, outputs)?
        }
        "cnn-bn" => {
            // Pooling before normalising: batch norm and ReLU then see a quarter of the
            // values, which on a CPU adapter is a fifth of the step.
            let mut x = square(&mut l)?;
            for (i, c) in [32, 64].into_iter().enumerate() {
                x = l.conv(&format!("conv{i}"), x, c, 3, 1)?;
                x = l.max_pool(x)?;
                x = l.batch_norm(&format!("bn{i}"), x)?;
                x = l.relu(x)?;
            }
            let x = l.flatten(x)?;
            let x = l.dropout(x, 0.25)?;
            let h = l.linear("fc0", x, 128)?;
            let h = l.relu(h)?;
            let h = l.dropout(h, 0.25)?;
            l.mark_features(h);
            l.linear("fc1", h, outputs)?
        }
        "mobilenet" => {
            // MobileNet's shape at 28²: a strided stem (28² → 14²), then depthwise-separable
            // blocks, the middle one strided (14² → 7²), and global average pooling.
            let mut x = square(&mut l)?;
            x = l.conv_strided("stem", x, 32, 3, 1, 2)?;
            x = l.batch_norm("stem.bn", x)?;
            x = l.relu(x)?;
            for (i, (c, stride)) in [(64, 1), (128, 2), (128, 1)].into_iter().enumerate() {
                x = l.depthwise(&format!("block{i}.depthwise"), x, 3, stride)?;
                x = l.batch_norm(&format!("block{i}.depthwise.bn"), x)?;
                x = l.relu(x)?;
                x = l.conv(&format!("block{i}.pointwise"), x, c, 1, 1)?;
                x = l.batch_norm(&format!("block{i}.pointwise.bn"), x)?;
                x = l.relu(x)?;
            }
            let x = l.global_avg_pool(x)?;
            l.mark_features(x);
            l.linear("fc", x, outputs)?
        }
        "lstm" => {
            // The image's rows as a sequence through one LSTM layer (hidden 128).
            let rows = l.g.reshape(images, vec![batch, side, side])?;
            let states = l.recurrent("lstm", rows, 128, Cell::Lstm)?;
            let last = *states.last().ok_or_else(|| Error::attribute("lstm", "an image has no rows"))?;
            l.mark_features(last);
            l.linear("fc", last, outputs)?
        }
        "autoencoder" => {
            // 28² → 14² → 7² and back: strided convolutions down, transposed ones up.
            let mut x = square(&mut l)?;
            x = l.conv_strided("encoder0", x, 16, 3, 1, 2)?;
            x = l.relu(x)?;
            x = l.conv_strided("encoder1", x, 32, 3, 1, 2)?;
            x = l.relu(x)?;
            x = l.conv_transpose("decoder0", x, 16, 3, 2)?;
            x = l.relu(x)?;
            x = l.conv_transpose("decoder1", x, 1, 3, 2)?;
            x = l.g.sigmoid(x)?;
            let reconstruction = l.g.reshape(x, vec![batch, pixels])?;
            return l.finish(images, reconstruction, Task::Reconstruction);
        }
        other => return Err(Error::Unsupported(format!("model `{other}`: the models are {}", MODELS.join(", ")))),
    };
    l.finish(images, logits, task)
}

/// A ReLU multilayer perceptron with `sizes` = [inputs, hidden…, classes], in training mode.
pub fn mlp(batch: usize, sizes: &[usize], seed: u64) -> Result<Model> {
    let mut l = Layers::new(true, seed);
    let images = l.g.input("images", vec![batch, sizes[0]], DType::F32);
    let mut x: Value = images;
    for (layer, &width) in sizes[1..].iter().enumerate() {
        x = l.linear(&format!("fc{layer}"), x, width)?;
        if layer + 2 < sizes.len() {
            x = l.relu(x)?;
        }
    }
    l.finish(images, x, Task::Classes)
}

/// The reference CNN of the benchmark workloads (`build` of `cnn`) for `side`² images.
pub fn cnn(batch: usize, side: usize, seed: u64) -> Result<Model> {
    build(&ModelSpec::named("cnn"), batch, side * side, true, seed)
}
