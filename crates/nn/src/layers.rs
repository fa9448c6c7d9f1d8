//! Layers: a builder that appends a model's nodes to a graph and creates its parameters,
//! named like PyTorch's `state_dict` (`fc0.weight`, `conv1.bias`, `bn0.running`), so a
//! checkpoint reads naturally elsewhere and every program built from the same names binds the
//! same parameters in a store. Layers run in training mode (batch statistics, dropout on) or
//! eval mode (running statistics, no dropout).
//!
//! ```
//! use kiln_nn::{Init, Layers, Task};
//! # fn main() -> kiln_core::Result<()> {
//! let mut l = Layers::new(true, 1).with_init(Init::He);
//! let x = l.g.input("images", vec![8, 784], kiln_core::DType::F32);
//! let h = l.linear("fc0", x, 64)?;
//! let h = l.relu(h)?;
//! let logits = l.linear("fc1", h, 10)?;
//! let model = l.finish(x, logits, Task::Classes)?;
//! assert_eq!(model.params.len(), 4);
//! # Ok(()) }
//! ```

use kiln_core::{Activation, Conv2d, DType, Error, HostTensor, LossKind, Pool2d, PoolKind, Result, Shape};
use kiln_graph::{Graph, Value};
use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::init::Init;

/// What a model learns from its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Logits over classes, cross-entropy against the labels.
    Classes,
    /// The inputs themselves (in `logits`, `[N, pixels]`), mean squared error.
    Reconstruction,
    /// One logit `a` per image (`[N, 1]`), positive for class 1, against f32 labels `[N, 1]`
    /// of 0 and 1, by the criterion named.
    Binary(BinaryLoss),
}

/// How a binary classifier learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryLoss {
    /// Logistic regression's: binary cross-entropy of `σ(a)`.
    Logistic,
    /// The perceptron's: `mean((step(a) − y)·a)`, zero when every image is on its side. The
    /// step's gradient is zero, so its gradient is `(step(a) − y)·x`: SGD on it is the
    /// perceptron learning rule `w ← w + η(y − ŷ)x`.
    Perceptron,
}

/// A model's graph: an image batch (and labels) in, logits (or a reconstruction) out, its loss,
/// and the parameters in between.
pub struct Model {
    pub graph: Graph,
    pub images: Value,
    pub labels: Value,
    pub logits: Value,
    /// What the last layer reads (a classifier's penultimate activations), or the logits.
    pub features: Value,
    pub loss: Value,
    pub params: Vec<Value>,
    pub task: Task,
}

impl Model {
    /// Appends the backward pass and one in-place update of every parameter by `optimizer`
    /// (`minimize` with one group, no clipping).
    pub fn add_training(&mut self, optimizer: crate::Optimizer) -> Result<()> {
        let group = crate::ParamGroup { params: self.params.clone(), optimizer };
        crate::minimize(&mut self.graph, self.loss, &[group], None)
    }
}

/// What attention attends to.
#[derive(Clone, Copy, Debug)]
pub enum Attend {
    /// Every position of the sequence.
    All,
    /// Position i to positions j ≤ i.
    Causal,
    /// One new position (the sequence holds one) to the positions of a key/value cache.
    Cached(KvCache),
}

/// A layer's key/value cache for generating one token at a time: `keys` and `values`,
/// variables `[N, heads, S, D/heads]` holding the positions so far; `slot`, `[1, 1, S, 1]`,
/// one at the new position and zero elsewhere; `mask`, `[S]`, zero at the positions to attend
/// to and the lowest f32 at the rest.
#[derive(Clone, Copy, Debug)]
pub struct KvCache {
    pub keys: Value,
    pub values: Value,
    pub slot: Value,
    pub mask: Value,
}

/// The recurrent cells `Layers::recurrent` runs over a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Elman's: `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
    Rnn,
    /// PyTorch's LSTM, gates i, f, g, o.
    Lstm,
    /// PyTorch's GRU, gates r, z, n.
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// Appends layers to a graph, keeping their parameters. A layer built again under a name it
/// already has reuses that layer's parameters (and state): a network applied twice in one
/// graph, say a discriminator to real and to generated images, shares its weights, and their
/// gradients add up.
pub struct Layers {
    pub g: Graph,
    rng: StdRng,
    params: Vec<Value>,
    /// Every variable made so far (parameters and state such as running statistics), by name.
    variables: HashMap<String, Value>,
    training: bool,
    seed: u32,
    init: Init,
    features: Option<Value>,
}

impl Layers {
    /// Layers in training (or eval) mode, their parameters drawn from a generator seeded by
    /// `seed` with PyTorch's default initialisation.
    pub fn new(training: bool, seed: u64) -> Self {
        Layers {
            g: Graph::new(),
            rng: StdRng::seed_from_u64(seed),
            params: Vec::new(),
            variables: HashMap::new(),
            training,
            seed: seed as u32,
            init: Init::default(),
            features: None,
        }
    }

    /// The same with another initialisation for the weights and biases that follow.
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    pub fn training(&self) -> bool {
        self.training
    }

    pub fn params(&self) -> &[Value] {
        &self.params
    }

    /// The variable `name`: the one made before under that name (which must have `shape`), or
    /// a new one holding `make`'s values (drawn only then), a learned parameter if `learned`.
    fn variable(
        &mut self,
        name: &str,
        shape: Shape,
        learned: bool,
        make: impl FnOnce(&mut Self) -> Vec<f32>,
    ) -> Result<Value> {
        if let Some(&v) = self.variables.get(name) {
            if self.g.shape(v) != &shape {
                return Err(Error::shape(name, "a layer built again must keep its shape", self.g.shape(v), shape));
            }
            return Ok(v);
        }
        let data = make(self);
        let v = self.g.variable_init(name, HostTensor::f32(shape, data)?);
        self.variables.insert(name.to_string(), v);
        if learned {
            self.params.push(v);
        }
        Ok(v)
    }

    fn parameter(&mut self, name: &str, shape: Shape, make: impl FnOnce(&mut Self) -> Vec<f32>) -> Result<Value> {
        self.variable(name, shape, true, make)
    }

    /// A weight of `shape` connecting `fan_in` inputs to `fan_out` outputs.
    fn weight(&mut self, name: &str, shape: Shape, fan_in: usize, fan_out: usize) -> Result<Value> {
        let n = shape.numel();
        self.parameter(name, shape, |l| l.init.weights(n, fan_in, fan_out, &mut l.rng))
    }

    fn bias(&mut self, name: &str, n: usize, fan_in: usize) -> Result<Value> {
        self.parameter(name, Shape::new([n]), |l| l.init.biases(n, fan_in, &mut l.rng))
    }

    fn constant(&mut self, name: &str, shape: Shape, value: f32) -> Result<Value> {
        let n = shape.numel();
        self.parameter(name, shape, |_| vec![value; n])
    }

    /// Marks `v` as the model's features (what its last layer reads).
    pub fn mark_features(&mut self, v: Value) {
        self.features = Some(v);
    }

    fn dim(&self, x: Value, axis: usize, op: &str) -> Result<usize> {
        let shape = self.g.shape(x);
        shape.dims().get(axis).copied().ok_or_else(|| Error::shape(op, "input has too few axes", axis + 1, shape))
    }

    /// `y = x wᵀ + b` over the last axis of `x [N, I]` (or `[N, T, I]`, position by position).
    pub fn linear(&mut self, name: &str, x: Value, outputs: usize) -> Result<Value> {
        let dims = self.g.shape(x).dims().to_vec();
        let inputs = *dims.last().ok_or_else(|| Error::shape("linear", "x needs an axis", "[N, I]", "[]"))?;
        let w = self.weight(&format!("{name}.weight"), Shape::new([outputs, inputs]), inputs, outputs)?;
        let b = self.bias(&format!("{name}.bias"), outputs, inputs)?;
        if dims.len() == 2 {
            return self.g.linear(x, w, b);
        }
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let flat = self.g.reshape(x, vec![rows, inputs])?;
        let y = self.g.linear(flat, w, b)?;
        self.g.reshape(y, [&dims[..dims.len() - 1], &[outputs]].concat())
    }

    /// A k×k convolution with padding (k-1)/2, `groups` groups and a bias.
    pub fn conv(&mut self, name: &str, x: Value, outputs: usize, k: usize, groups: usize) -> Result<Value> {
        self.conv_strided(name, x, outputs, k, groups, 1)
    }

    /// The same, `stride` apart.
    pub fn conv_strided(
        &mut self,
        name: &str,
        x: Value,
        outputs: usize,
        k: usize,
        groups: usize,
        stride: usize,
    ) -> Result<Value> {
        let inputs = self.dim(x, 1, "conv2d")?;
        if groups == 0 || !inputs.is_multiple_of(groups) || !outputs.is_multiple_of(groups) {
            let got = format!("{inputs} inputs, {outputs} outputs");
            return Err(Error::shape("conv2d", "groups must divide the channels", format!("groups {groups}"), got));
        }
        let (fan_in, fan_out) = (inputs / groups * k * k, outputs / groups * k * k);
        let w =
            self.weight(&format!("{name}.weight"), Shape::new([outputs, inputs / groups, k, k]), fan_in, fan_out)?;
        let b = self.bias(&format!("{name}.bias"), outputs, fan_in)?;
        let pad = (k - 1) / 2;
        let c = Conv2d { stride: [stride, stride], padding: [pad, pad], groups, ..Conv2d::default() };
        self.g.conv2d(x, w, Some(b), c)
    }

    /// A depthwise k×k convolution: one filter per channel.
    pub fn depthwise(&mut self, name: &str, x: Value, k: usize, stride: usize) -> Result<Value> {
        let channels = self.dim(x, 1, "depthwise")?;
        self.conv_strided(name, x, channels, k, channels, stride)
    }

    /// A k×k transposed convolution with a bias: stride `stride`, padding (k-1)/2, and the
    /// output padding that makes the image grow exactly `stride` times (`stride + 2·pad - k`;
    /// k = 3 and k = 4 at stride 2 both double it).
    pub fn conv_transpose(&mut self, name: &str, x: Value, outputs: usize, k: usize, stride: usize) -> Result<Value> {
        let inputs = self.dim(x, 1, "conv_transpose2d")?;
        let pad = k.saturating_sub(1) / 2;
        let Some(extra) = (stride + 2 * pad).checked_sub(k).filter(|&e| e < stride.max(1)) else {
            let why = "the kernel cannot grow the image exactly `stride` times";
            return Err(Error::shape("conv_transpose2d", why, format!("stride {stride}"), format!("kernel {k}")));
        };
        let (fan_in, fan_out) = (outputs * k * k, inputs * k * k);
        let w = self.weight(&format!("{name}.weight"), Shape::new([inputs, outputs, k, k]), fan_in, fan_out)?;
        let b = self.bias(&format!("{name}.bias"), outputs, fan_in)?;
        let c = Conv2d { stride: [stride, stride], padding: [pad, pad], ..Conv2d::default() };
        self.g.conv_transpose2d(x, w, Some(b), c, [extra, extra])
    }

    /// Batch norm over axis 1: batch statistics (folded into `{name}.running`, momentum 0.1)
    /// when training, the running statistics otherwise.
    pub fn batch_norm(&mut self, name: &str, x: Value) -> Result<Value> {
        let c = self.dim(x, 1, "batch_norm")?;
        let gamma = self.constant(&format!("{name}.weight"), Shape::new([c]), 1.0)?;
        let beta = self.constant(&format!("{name}.bias"), Shape::new([c]), 0.0)?;
        let running = self.variable(&format!("{name}.running"), Shape::new([2, c]), false, |_| {
            [vec![0.0; c], vec![1.0; c]].concat()
        })?;
        if !self.training {
            return self.g.batch_norm_eval(x, running, gamma, beta, 1e-5);
        }
        let (y, stats) = self.g.batch_norm(x, gamma, beta, 1e-5)?;
        self.g.batch_norm_running_update(running, stats, x, 0.1)?;
        Ok(y)
    }

    /// Layer norm over the last axis, with a scale and a shift.
    pub fn layer_norm(&mut self, name: &str, x: Value) -> Result<Value> {
        let d = self.g.shape(x).dims().last().copied().unwrap_or(1);
        let gamma = self.constant(&format!("{name}.weight"), Shape::new([d]), 1.0)?;
        let beta = self.constant(&format!("{name}.bias"), Shape::new([d]), 0.0)?;
        self.g.layer_norm(x, gamma, beta, 1e-5)
    }

    pub fn activation(&mut self, x: Value, a: Activation) -> Result<Value> {
        self.g.activation(x, a)
    }

    pub fn relu(&mut self, x: Value) -> Result<Value> {
        self.g.relu(x)
    }

    /// 2×2 max pooling, stride 2.
    pub fn max_pool(&mut self, x: Value) -> Result<Value> {
        self.g.pool2d(x, Pool2d { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] })
    }

    /// k×k average pooling, stride `stride`, padding left out of the average.
    pub fn avg_pool(&mut self, x: Value, k: usize, stride: usize) -> Result<Value> {
        let kind = PoolKind::Avg { count_include_pad: false };
        self.g.pool2d(x, Pool2d { kind, kernel: [k, k], stride: [stride, stride], padding: [0, 0] })
    }

    /// `[N, C, H, W]` → `[N, C]`, the mean of each plane.
    pub fn global_avg_pool(&mut self, x: Value) -> Result<Value> {
        self.g.global_avg_pool2d(x)
    }

    /// Dropout with probability `p` when training (a mask seeded per layer and run).
    pub fn dropout(&mut self, x: Value, p: f32) -> Result<Value> {
        self.seed = self.seed.wrapping_add(0x9e37_79b9);
        self.g.dropout(x, p, self.seed, self.training)
    }

    /// `[N, C·H·W]` from `[N, C, H, W]`.
    pub fn flatten(&mut self, x: Value) -> Result<Value> {
        let d = self.g.shape(x).dims().to_vec();
        self.g.reshape(x, vec![d[0], d[1..].iter().product()])
    }

    /// A table of `vocab` rows of `dim` learned features, looked up by the i32 `ids`
    /// (as `Init::embeddings` draws them under this initialisation).
    pub fn embedding(&mut self, name: &str, ids: Value, vocab: usize, dim: usize) -> Result<Value> {
        let table = self.parameter(&format!("{name}.weight"), Shape::new([vocab, dim]), |l| {
            l.init.embeddings(vocab * dim, &mut l.rng)
        })?;
        self.g.embedding(table, ids)
    }

    /// `x [N, T, D]` plus a learned vector per position (`[T, D]`, `N(0, 0.02²)` at first).
    pub fn position_embedding(&mut self, name: &str, x: Value) -> Result<Value> {
        let dims = self.g.shape(x).dims().to_vec();
        let [_, t, d] = dims[..] else {
            return Err(Error::shape("position_embedding", "x must be [N, T, D]", "rank 3", self.g.shape(x)));
        };
        let table = self.position_table(name, t, d)?;
        self.g.add(x, table)
    }

    /// The learned vectors of `positions` positions, `[positions, d]` (`N(0, 0.02²)` at first):
    /// what `position_embedding` adds, for a generator that looks up one row at a time.
    pub fn position_table(&mut self, name: &str, positions: usize, d: usize) -> Result<Value> {
        self.parameter(&format!("{name}.weight"), Shape::new([positions, d]), |l| {
            Init::Small.weights(positions * d, d, d, &mut l.rng)
        })
    }

    /// A recurrent layer over `x [N, T, D]` from a zero state: the hidden state `[N, H]` after
    /// each of the T steps. Weights as PyTorch's (`weight_ih [gates·H, D]`, `weight_hh`,
    /// `bias_ih`, `bias_hh`), uniform in `±1/√H`.
    pub fn recurrent(&mut self, name: &str, x: Value, hidden: usize, cell: Cell) -> Result<Vec<Value>> {
        let dims = self.g.shape(x).dims().to_vec();
        let [n, t, d] = dims[..] else {
            return Err(Error::shape("recurrent", "x must be [N, T, D]", "rank 3", self.g.shape(x)));
        };
        self.cell_parameters(name, d, hidden, cell)?;
        let (mut h, mut c) = self.zero_state(name, hidden, cell)?;
        let mut states = Vec::with_capacity(t);
        for step in 0..t {
            let xt = self.g.slice(x, 1, step, 1)?;
            let xt = self.g.reshape(xt, vec![n, d])?;
            (h, c) = self.recurrent_step(name, xt, (h, c), hidden, cell)?;
            states.push(h);
        }
        Ok(states)
    }

    /// The zero state of recurrent layer `name`: `h0` (and the LSTM's `c0`), one row each,
    /// broadcast over the batch by the cell's products and sums, so that programs at other
    /// batch sizes share it.
    pub fn zero_state(&mut self, name: &str, hidden: usize, cell: Cell) -> Result<(Value, Option<Value>)> {
        let zeros = |l: &mut Self, suffix: &str| {
            l.variable(&format!("{name}.{suffix}"), Shape::new([1, hidden]), false, |_| vec![0.0; hidden])
        };
        let h = zeros(self, "h0")?;
        let c = match cell {
            Cell::Lstm => Some(zeros(self, "c0")?),
            Cell::Rnn | Cell::Gru => None,
        };
        Ok((h, c))
    }

    /// One step of recurrent layer `name`: input `x [N, D]` and the state `(h, c)` (`c`, the
    /// LSTM's cell state) → the next state. A generator steps its layer this way, one token
    /// at a time, with the same parameters the whole sequence trained.
    pub fn recurrent_step(
        &mut self,
        name: &str,
        x: Value,
        (h, c): (Value, Option<Value>),
        hidden: usize,
        cell: Cell,
    ) -> Result<(Value, Option<Value>)> {
        let d = self.dim(x, 1, "recurrent")?;
        let [w_ih, w_hh, b_ih, b_hh] = self.cell_parameters(name, d, hidden, cell)?;
        Ok(match cell {
            Cell::Rnn => {
                let from_x = self.g.linear(x, w_ih, b_ih)?;
                let from_h = self.g.linear(h, w_hh, b_hh)?;
                let sum = self.g.add(from_x, from_h)?;
                (self.g.tanh(sum)?, None)
            }
            Cell::Lstm => {
                let state = c.ok_or_else(|| Error::attribute("lstm", "no cell state"))?;
                let (h, c) = self.g.lstm_cell(x, h, state, w_ih, w_hh, b_ih, b_hh)?;
                (h, Some(c))
            }
            Cell::Gru => (self.g.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)?, None),
        })
    }

    /// A recurrent layer's weights as PyTorch's (`weight_ih [gates·H, D]`, `weight_hh`,
    /// `bias_ih`, `bias_hh`), uniform in `±1/√H`, drawn in that order the first time.
    fn cell_parameters(&mut self, name: &str, d: usize, hidden: usize, cell: Cell) -> Result<[Value; 4]> {
        let rows = cell.gates() * hidden;
        let mut uniform = |suffix: &str, shape: Shape| {
            let n = shape.numel();
            self.parameter(&format!("{name}.{suffix}"), shape, |l| Init::Pytorch.weights(n, hidden, hidden, &mut l.rng))
        };
        Ok([
            uniform("weight_ih", Shape::new([rows, d]))?,
            uniform("weight_hh", Shape::new([rows, hidden]))?,
            uniform("bias_ih", Shape::new([rows]))?,
            uniform("bias_hh", Shape::new([rows]))?,
        ])
    }

    /// Multi-head self-attention over `x [N, T, D]`: queries, keys and values by one linear
    /// layer each, `heads` heads of `D/heads` features (causal: position i sees j ≤ i), and an
    /// output projection; `[N, T, D]`.
    pub fn attention(&mut self, name: &str, x: Value, heads: usize, causal: bool) -> Result<Value> {
        self.attend(name, x, heads, if causal { Attend::Causal } else { Attend::All })
    }

    /// Attention as `attend` says: over the sequence itself, or one new position over a cache.
    pub fn attend(&mut self, name: &str, x: Value, heads: usize, attend: Attend) -> Result<Value> {
        let dims = self.g.shape(x).dims().to_vec();
        let [n, t, d] = dims[..] else {
            return Err(Error::shape("attention", "x must be [N, T, D]", "rank 3", self.g.shape(x)));
        };
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(Error::shape("attention", "heads must divide the width", format!("{heads} heads"), d));
        }
        let split = |l: &mut Self, v: Value| -> Result<Value> {
            let v = l.g.reshape(v, vec![n, t, heads, d / heads])?;
            l.g.transpose(v, &[0, 2, 1, 3])
        };
        let q = self.linear(&format!("{name}.query"), x, d)?;
        let k = self.linear(&format!("{name}.key"), x, d)?;
        let v = self.linear(&format!("{name}.value"), x, d)?;
        let (q, k, v) = (split(self, q)?, split(self, k)?, split(self, v)?);
        let y = match attend {
            Attend::All => self.g.attention(q, k, v, false)?,
            Attend::Causal => self.g.attention(q, k, v, true)?,
            Attend::Cached(cache) => {
                // The new position's key and value go into its slot of each cache (assigned in
                // place for the next token); the query attends to every slot the mask keeps.
                let stored = |l: &mut Self, cache_value: Value, new: Value| -> Result<Value> {
                    let change = l.g.sub(new, cache_value)?;
                    let change = l.g.mul(change, cache.slot)?;
                    let updated = l.g.add(cache_value, change)?;
                    l.g.assign(cache_value, updated)?;
                    Ok(updated)
                };
                let keys = stored(self, cache.keys, k)?;
                let values = stored(self, cache.values, v)?;
                let s = self.g.shape(keys).dims()[2];
                let q3 = self.g.reshape(q, vec![n * heads, t, d / heads])?;
                let k3 = self.g.reshape(keys, vec![n * heads, s, d / heads])?;
                let v3 = self.g.reshape(values, vec![n * heads, s, d / heads])?;
                let scores = self.g.matmul_with(q3, k3, kiln_core::MatMul { trans_a: false, trans_b: true })?;
                let scores = self.g.scale(scores, 1.0 / ((d / heads) as f32).sqrt())?;
                let scores = self.g.add(scores, cache.mask)?;
                let weights = self.g.softmax(scores, -1)?;
                let y = self.g.matmul(weights, v3)?;
                self.g.reshape(y, vec![n, heads, t, d / heads])?
            }
        };
        let y = self.g.transpose(y, &[0, 2, 1, 3])?;
        let y = self.g.reshape(y, vec![n, t, d])?;
        self.linear(&format!("{name}.out"), y, d)
    }

    /// A pre-norm transformer block over `x [N, T, D]`: `x + attention(ln(x))`, then
    /// `x + mlp(ln(x))` with a GELU MLP four times as wide.
    pub fn transformer_block(&mut self, name: &str, x: Value, heads: usize, causal: bool) -> Result<Value> {
        self.transformer_block_with(name, x, heads, if causal { Attend::Causal } else { Attend::All })
    }

    /// The same block with its attention as `attend` says.
    pub fn transformer_block_with(&mut self, name: &str, x: Value, heads: usize, attend: Attend) -> Result<Value> {
        let d = self.dim(x, 2, "transformer_block")?;
        let normed = self.layer_norm(&format!("{name}.ln1"), x)?;
        let attended = self.attend(&format!("{name}.attn"), normed, heads, attend)?;
        let x = self.g.add(x, attended)?;
        let normed = self.layer_norm(&format!("{name}.ln2"), x)?;
        let wide = self.linear(&format!("{name}.mlp.fc"), normed, 4 * d)?;
        let wide = self.g.activation(wide, Activation::Gelu { tanh: true })?;
        let narrow = self.linear(&format!("{name}.mlp.proj"), wide, d)?;
        self.g.add(x, narrow)
    }

    /// The model: cross-entropy of `logits` against a labels input, or for a reconstruction
    /// its mean squared error against the images (the labels input is then unused), or a
    /// binary criterion against f32 labels of 0 and 1.
    pub fn finish(mut self, images: Value, logits: Value, task: Task) -> Result<Model> {
        let batch = self.g.shape(images).dims()[0];
        let labels = match task {
            Task::Classes | Task::Reconstruction => self.g.input("labels", vec![batch], DType::I32),
            Task::Binary(_) => self.g.input("labels", vec![batch, 1], DType::F32),
        };
        let loss = match task {
            Task::Classes => self.g.cross_entropy(logits, labels)?,
            Task::Reconstruction => self.g.mse_loss(logits, images)?,
            Task::Binary(BinaryLoss::Logistic) => self.g.pointwise_loss(LossKind::BceWithLogits, logits, labels)?,
            Task::Binary(BinaryLoss::Perceptron) => {
                let predicted = self.g.activation(logits, Activation::Step)?;
                let error = self.g.sub(predicted, labels)?;
                let criterion = self.g.mul(error, logits)?;
                self.g.mean_all(criterion)?
            }
        };
        let features = self.features.unwrap_or(logits);
        Ok(Model { graph: self.g, images, labels, logits, features, loss, params: self.params, task })
    }
}
