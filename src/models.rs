//! Models as graphs, and their optimizer updates appended as in-place nodes.

use kiln_core::{Conv2d, DType, HostTensor, Pool2d, PoolKind, Result, Sgd, Shape};
use kiln_graph::{Graph, Value, grad};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A classifier graph: an image batch in, logits out, and the parameters in between.
pub struct Classifier {
    pub graph: Graph,
    pub images: Value,
    pub labels: Value,
    pub logits: Value,
    pub loss: Value,
    pub params: Vec<Value>,
}

/// The optimizer of a training run.
#[derive(Clone, Copy, Debug)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(kiln_core::Adam),
}

/// Parameters initialised like PyTorch's layers: uniform in ±1/√fan_in.
struct Params {
    rng: StdRng,
    values: Vec<Value>,
}

impl Params {
    fn new(seed: u64) -> Self {
        Params { rng: StdRng::seed_from_u64(seed), values: Vec::new() }
    }

    fn uniform(&mut self, g: &mut Graph, name: &str, shape: Shape, fan_in: usize) -> Result<Value> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let data = (0..shape.numel()).map(|_| self.rng.random_range(-bound..bound)).collect();
        let v = g.variable_init(name, HostTensor::f32(shape, data)?);
        self.values.push(v);
        Ok(v)
    }

    /// `y = x wᵀ + b` with `x [N,I]`.
    fn linear(&mut self, g: &mut Graph, name: &str, x: Value, outputs: usize) -> Result<Value> {
        let inputs = g.shape(x).dims()[1];
        let w = self.uniform(g, &format!("{name}.weight"), Shape::new([outputs, inputs]), inputs)?;
        let b = self.uniform(g, &format!("{name}.bias"), Shape::new([outputs]), inputs)?;
        g.linear(x, w, b)
    }

    /// A k×k convolution with padding k/2 and a bias.
    fn conv(&mut self, g: &mut Graph, name: &str, x: Value, outputs: usize, k: usize) -> Result<Value> {
        let inputs = g.shape(x).dims()[1];
        let fan_in = inputs * k * k;
        let w = self.uniform(g, &format!("{name}.weight"), Shape::new([outputs, inputs, k, k]), fan_in)?;
        let b = self.uniform(g, &format!("{name}.bias"), Shape::new([outputs]), fan_in)?;
        let same = Conv2d { padding: [k / 2, k / 2], ..Conv2d::default() };
        g.conv2d(x, w, Some(b), same)
    }
}

/// Images `[batch, pixels]` and labels `[batch]`.
fn inputs(g: &mut Graph, batch: usize, pixels: usize) -> (Value, Value) {
    (g.input("images", vec![batch, pixels], DType::F32), g.input("labels", vec![batch], DType::I32))
}

fn finish(mut g: Graph, images: Value, labels: Value, logits: Value, params: Params) -> Result<Classifier> {
    let loss = g.cross_entropy(logits, labels)?;
    Ok(Classifier { graph: g, images, labels, logits, loss, params: params.values })
}

/// A ReLU multilayer perceptron with `sizes` = [inputs, hidden…, classes].
pub fn mlp(batch: usize, sizes: &[usize], seed: u64) -> Result<Classifier> {
    let mut g = Graph::new();
    let mut params = Params::new(seed);
    let (images, labels) = inputs(&mut g, batch, sizes[0]);
    let mut x = images;
    for (layer, &width) in sizes[1..].iter().enumerate() {
        x = params.linear(&mut g, &format!("fc{layer}"), x, width)?;
        if layer + 2 < sizes.len() {
            x = g.relu(x)?;
        }
    }
    finish(g, images, labels, x, params)
}

/// The reference CNN of the benchmark workloads on `side`×`side` single-channel images:
/// conv(1→32, 3×3, pad 1) → ReLU → maxpool 2 → conv(32→64, 3×3, pad 1) → ReLU → maxpool 2 →
/// linear(→128) → ReLU → linear(128→`classes`).
pub fn cnn(batch: usize, side: usize, classes: usize, seed: u64) -> Result<Classifier> {
    let mut g = Graph::new();
    let mut params = Params::new(seed);
    let (images, labels) = inputs(&mut g, batch, side * side);
    let pool = Pool2d { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let mut x = g.reshape(images, vec![batch, 1, side, side])?;
    for (layer, channels) in [32, 64].into_iter().enumerate() {
        x = params.conv(&mut g, &format!("conv{layer}"), x, channels, 3)?;
        x = g.relu(x)?;
        x = g.pool2d(x, pool)?;
    }
    let flat = g.shape(x).numel() / batch;
    x = g.reshape(x, vec![batch, flat])?;
    x = params.linear(&mut g, "fc0", x, 128)?;
    x = g.relu(x)?;
    let logits = params.linear(&mut g, "fc1", x, classes)?;
    finish(g, images, labels, logits, params)
}

/// Appends the backward pass and one in-place update per parameter, with the optimizer's
/// state as zero-initialised variables.
pub fn add_training(model: &mut Classifier, optimizer: Optimizer) -> Result<()> {
    let g = &mut model.graph;
    let grads = grad(g, model.loss, &model.params)?;
    for (&param, grad) in model.params.iter().zip(grads) {
        let shape = g.shape(param).clone();
        let name = g.node(param).name.clone();
        match optimizer {
            Optimizer::Sgd(s) => {
                let buf = g.variable(&format!("{name}.momentum_buf"), shape);
                g.sgd_step(param, grad, buf, s)?;
            }
            Optimizer::Adam(a) => {
                let m = g.variable(&format!("{name}.m"), shape.clone());
                let v = g.variable(&format!("{name}.v"), shape);
                g.adam_step(param, grad, m, v, a)?;
            }
        }
    }
    Ok(())
}
