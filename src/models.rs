//! Models as graphs, and their optimizer updates appended as in-place nodes.

use kiln_core::{Adam, DType, HostTensor, Result, Sgd, Shape};
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
    Adam(Adam),
}

/// A ReLU multilayer perceptron with `sizes` = [inputs, hidden…, classes], initialised like
/// PyTorch's `nn.Linear`: weights and biases uniform in ±1/√fan_in.
pub fn mlp(batch: usize, sizes: &[usize], seed: u64) -> Result<Classifier> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = Graph::new();
    let images = g.input("images", [batch, sizes[0]].to_vec(), DType::F32);
    let labels = g.input("labels", [batch].to_vec(), DType::I32);
    let mut x = images;
    let mut params = Vec::new();
    for (layer, pair) in sizes.windows(2).enumerate() {
        let (fan_in, fan_out) = (pair[0], pair[1]);
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut uniform = |shape: Shape| {
            let data = (0..shape.numel()).map(|_| rng.random_range(-bound..bound)).collect();
            HostTensor::f32(shape, data)
        };
        let w = g.variable_init(&format!("fc{layer}.weight"), uniform(Shape::new([fan_out, fan_in]))?);
        let b = g.variable_init(&format!("fc{layer}.bias"), uniform(Shape::new([fan_out]))?);
        params.extend([w, b]);
        x = g.linear(x, w, b)?;
        if layer + 2 < sizes.len() {
            x = g.relu(x)?;
        }
    }
    let loss = g.cross_entropy(x, labels)?;
    Ok(Classifier { graph: g, images, labels, logits: x, loss, params })
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
