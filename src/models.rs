//! Models as graphs — classifiers `mlp`, `cnn`, `cnn-bn`, `mobilenet`, `lstm`, and the
//! convolutional `autoencoder` — built in training mode
//! (batch statistics with running averages updated in place, dropout on) or eval mode
//! (running statistics, no dropout), and their optimizer updates appended as in-place nodes.
//!
//! ```no_run
//! # fn main() -> kiln_core::Result<()> {
//! use kiln::models::{Optimizer, add_training, build};
//! let mut model = build("cnn-bn", 64, 784, true, 1)?;
//! add_training(&mut model, Optimizer::Adam(kiln_core::Adam::new(1e-3)))?;
//! # Ok(()) }
//! ```

use kiln_core::{Conv2d, DType, Error, HostTensor, Pool2d, PoolKind, Result, Shape};
use kiln_graph::{Graph, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The models `build` knows.
pub const MODELS: &[&str] = &["mlp", "cnn", "cnn-bn", "mobilenet", "lstm", "autoencoder"];

/// Fashion-MNIST's classes.
pub const CLASSES: usize = 10;

/// What a model learns from its images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Logits over the classes, cross-entropy against the labels.
    Classes,
    /// The images themselves (in `logits`, `[N, pixels]`), mean squared error.
    Reconstruction,
}

/// A model's graph: an image batch (and labels) in, logits (or a reconstruction) out, and the
/// parameters in between.
pub struct Classifier {
    pub graph: Graph,
    pub images: Value,
    pub labels: Value,
    pub logits: Value,
    pub loss: Value,
    pub params: Vec<Value>,
    pub task: Task,
}

pub use kiln_nn::{Optimizer, ParamGroup};

/// Builds a model's layers, keeping its parameters (initialised like PyTorch's layers:
/// uniform in ±1/√fan_in) and its mode.
pub struct Layers {
    pub g: Graph,
    rng: StdRng,
    params: Vec<Value>,
    training: bool,
    seed: u32,
}

impl Layers {
    pub fn new(training: bool, seed: u64) -> Self {
        Layers { g: Graph::new(), rng: StdRng::seed_from_u64(seed), params: Vec::new(), training, seed: seed as u32 }
    }

    fn uniform(&mut self, name: &str, shape: Shape, fan_in: usize) -> Result<Value> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let data = (0..shape.numel()).map(|_| self.rng.random_range(-bound..bound)).collect();
        let v = self.g.variable_init(name, HostTensor::f32(shape, data)?);
        self.params.push(v);
        Ok(v)
    }

    fn constant(&mut self, name: &str, shape: Shape, value: f32) -> Result<Value> {
        let n = shape.numel();
        let v = self.g.variable_init(name, HostTensor::f32(shape, vec![value; n])?);
        self.params.push(v);
        Ok(v)
    }

    /// `y = x wᵀ + b` with `x [N,I]`.
    pub fn linear(&mut self, name: &str, x: Value, outputs: usize) -> Result<Value> {
        let inputs = self.g.shape(x).dims()[1];
        let w = self.uniform(&format!("{name}.weight"), Shape::new([outputs, inputs]), inputs)?;
        let b = self.uniform(&format!("{name}.bias"), Shape::new([outputs]), inputs)?;
        self.g.linear(x, w, b)
    }

    /// A k×k convolution with padding k/2, `groups` groups and a bias.
    pub fn conv(&mut self, name: &str, x: Value, outputs: usize, k: usize, groups: usize) -> Result<Value> {
        self.conv_strided(name, x, outputs, k, groups, 1)
    }

    pub fn conv_strided(
        &mut self,
        name: &str,
        x: Value,
        outputs: usize,
        k: usize,
        groups: usize,
        stride: usize,
    ) -> Result<Value> {
        let inputs = self.g.shape(x).dims()[1];
        let fan_in = inputs / groups * k * k;
        let w = self.uniform(&format!("{name}.weight"), Shape::new([outputs, inputs / groups, k, k]), fan_in)?;
        let b = self.uniform(&format!("{name}.bias"), Shape::new([outputs]), fan_in)?;
        let c = Conv2d { stride: [stride, stride], padding: [k / 2, k / 2], groups, ..Conv2d::default() };
        self.g.conv2d(x, w, Some(b), c)
    }

    /// A k×k transposed convolution that doubles the image (stride 2, padding k/2, output
    /// padding 1), with a bias.
    pub fn upsample(&mut self, name: &str, x: Value, outputs: usize, k: usize) -> Result<Value> {
        let inputs = self.g.shape(x).dims()[1];
        let fan_in = outputs * k * k;
        let w = self.uniform(&format!("{name}.weight"), Shape::new([inputs, outputs, k, k]), fan_in)?;
        let b = self.uniform(&format!("{name}.bias"), Shape::new([outputs]), fan_in)?;
        let c = Conv2d { stride: [2, 2], padding: [k / 2, k / 2], ..Conv2d::default() };
        self.g.conv_transpose2d(x, w, Some(b), c, [1, 1])
    }

    /// Batch norm over axis 1: batch statistics (folded into `{name}.running`, momentum 0.1)
    /// when training, the running statistics otherwise.
    pub fn batch_norm(&mut self, name: &str, x: Value) -> Result<Value> {
        let c = self.g.shape(x).dims()[1];
        let gamma = self.constant(&format!("{name}.weight"), Shape::new([c]), 1.0)?;
        let beta = self.constant(&format!("{name}.bias"), Shape::new([c]), 0.0)?;
        let init = HostTensor::f32(vec![2, c], [vec![0.0; c], vec![1.0; c]].concat())?;
        let running = self.g.variable_init(&format!("{name}.running"), init);
        if !self.training {
            return self.g.batch_norm_eval(x, running, gamma, beta, 1e-5);
        }
        let (y, stats) = self.g.batch_norm(x, gamma, beta, 1e-5)?;
        self.g.batch_norm_running_update(running, stats, x, 0.1)?;
        Ok(y)
    }

    pub fn relu(&mut self, x: Value) -> Result<Value> {
        self.g.relu(x)
    }

    pub fn max_pool(&mut self, x: Value) -> Result<Value> {
        self.g.pool2d(x, Pool2d { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] })
    }

    /// Dropout with probability `p` when training (a mask seeded per layer and run).
    pub fn dropout(&mut self, x: Value, p: f32) -> Result<Value> {
        self.seed = self.seed.wrapping_add(0x9e37_79b9);
        self.g.dropout(x, p, self.seed, self.training)
    }

    /// `[N, C·H·W]` from `[N,C,H,W]`.
    pub fn flatten(&mut self, x: Value) -> Result<Value> {
        let d = self.g.shape(x).dims().to_vec();
        self.g.reshape(x, vec![d[0], d[1..].iter().product()])
    }

    /// The model: cross-entropy of `logits` against a labels input, or for a reconstruction
    /// its mean squared error against the images (the labels input is then unused).
    pub fn finish(mut self, images: Value, logits: Value, task: Task) -> Result<Classifier> {
        let batch = self.g.shape(images).dims()[0];
        let labels = self.g.input("labels", vec![batch], DType::I32);
        let loss = match task {
            Task::Classes => self.g.cross_entropy(logits, labels)?,
            Task::Reconstruction => self.g.mse_loss(logits, images)?,
        };
        Ok(Classifier { graph: self.g, images, labels, logits, loss, params: self.params, task })
    }
}

/// `name`'s model for `batch` images of `pixels` square pixels, in training or eval mode.
pub fn build(name: &str, batch: usize, pixels: usize, training: bool, seed: u64) -> Result<Classifier> {
    let side = (pixels as f64).sqrt() as usize;
    let mut l = Layers::new(training, seed);
    let images = l.g.input("images", vec![batch, pixels], DType::F32);
    let square = |l: &mut Layers| l.g.reshape(images, vec![batch, 1, side, side]);
    let logits = match name {
        "mlp" => {
            let h = l.linear("fc0", images, 100)?;
            let h = l.relu(h)?;
            l.linear("fc1", h, CLASSES)?
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
            l.linear("fc1", h, CLASSES)?
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
            l.linear("fc1", h, CLASSES)?
        }
        "mobilenet" => {
            // MobileNet's shape at 28²: a strided stem (28² → 14²), then depthwise-separable
            // blocks, the middle one strided (14² → 7²), and global average pooling.
            let mut x = square(&mut l)?;
            x = l.conv_strided("stem", x, 32, 3, 1, 2)?;
            x = l.batch_norm("stem.bn", x)?;
            x = l.relu(x)?;
            for (i, (c, stride)) in [(64, 1), (128, 2), (128, 1)].into_iter().enumerate() {
                let channels = l.g.shape(x).dims()[1];
                x = l.conv_strided(&format!("block{i}.depthwise"), x, channels, 3, channels, stride)?;
                x = l.batch_norm(&format!("block{i}.depthwise.bn"), x)?;
                x = l.relu(x)?;
                x = l.conv(&format!("block{i}.pointwise"), x, c, 1, 1)?;
                x = l.batch_norm(&format!("block{i}.pointwise.bn"), x)?;
                x = l.relu(x)?;
            }
            let x = l.g.global_avg_pool2d(x)?;
            l.linear("fc", x, CLASSES)?
        }
        "lstm" => lstm(&mut l, images, side)?,
        "autoencoder" => {
            // 28² → 14² → 7² and back: strided convolutions down, transposed ones up.
            let mut x = square(&mut l)?;
            x = l.conv_strided("encoder0", x, 16, 3, 1, 2)?;
            x = l.relu(x)?;
            x = l.conv_strided("encoder1", x, 32, 3, 1, 2)?;
            x = l.relu(x)?;
            x = l.upsample("decoder0", x, 16, 3)?;
            x = l.relu(x)?;
            x = l.upsample("decoder1", x, 1, 3)?;
            x = l.g.sigmoid(x)?;
            let reconstruction = l.g.reshape(x, vec![batch, pixels])?;
            return l.finish(images, reconstruction, Task::Reconstruction);
        }
        other => return Err(unknown(other)),
    };
    l.finish(images, logits, Task::Classes)
}

/// The image's rows as a sequence through one LSTM cell (hidden 128), then a linear layer.
fn lstm(l: &mut Layers, images: Value, side: usize) -> Result<Value> {
    const HIDDEN: usize = 128;
    let w_ih = l.uniform("lstm.weight_ih", Shape::new([4 * HIDDEN, side]), HIDDEN)?;
    let w_hh = l.uniform("lstm.weight_hh", Shape::new([4 * HIDDEN, HIDDEN]), HIDDEN)?;
    let b_ih = l.uniform("lstm.bias_ih", Shape::new([4 * HIDDEN]), HIDDEN)?;
    let b_hh = l.uniform("lstm.bias_hh", Shape::new([4 * HIDDEN]), HIDDEN)?;
    // The zero initial state is one row, broadcast over the batch by the cell's products and
    // sums, so the training and eval graphs (other batch sizes) share it.
    let zeros = HostTensor::f32(vec![1, HIDDEN], vec![0.0; HIDDEN])?;
    let (mut h, mut c) = (l.g.variable_init("lstm.h0", zeros.clone()), l.g.variable_init("lstm.c0", zeros));

    for row in 0..side {
        let x = l.g.slice(images, 1, row * side, side)?;
        (h, c) = l.g.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)?;
    }
    l.linear("fc", h, CLASSES)
}

fn unknown(model: &str) -> Error {
    Error::Unsupported(format!("model `{model}`: the models are {}", MODELS.join(", ")))
}

/// A ReLU multilayer perceptron with `sizes` = [inputs, hidden…, classes].
pub fn mlp(batch: usize, sizes: &[usize], seed: u64) -> Result<Classifier> {
    let mut l = Layers::new(true, seed);
    let images = l.g.input("images", vec![batch, sizes[0]], DType::F32);
    let mut x = images;
    for (layer, &width) in sizes[1..].iter().enumerate() {
        x = l.linear(&format!("fc{layer}"), x, width)?;
        if layer + 2 < sizes.len() {
            x = l.relu(x)?;
        }
    }
    l.finish(images, x, Task::Classes)
}

/// The reference CNN of the benchmark workloads (`build("cnn", …)`).
pub fn cnn(batch: usize, side: usize, _classes: usize, seed: u64) -> Result<Classifier> {
    build("cnn", batch, side * side, true, seed)
}

/// Appends the backward pass and one in-place update per parameter, with the optimizer's
/// state as zero-initialised variables named after the parameter.
pub fn add_training(model: &mut Classifier, optimizer: Optimizer) -> Result<()> {
    let group = ParamGroup { params: model.params.clone(), optimizer };
    kiln_nn::minimize(&mut model.graph, model.loss, &[group])
}
