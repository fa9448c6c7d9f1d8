//! Layer builders: convolutions, pooling, normalisation, dropout, embedding, recurrent cells
//! and attention. Each appends kernels whose gradients autodiff knows; the cells and
//! attention are composites of ordinary ops.

use kiln_core::{Conv2d, DType, Dropout, Error, HostTensor, Noise, Op, Pool2d, Result, Shape};

use crate::{Graph, Value};

impl Graph {
    /// `(x [N,C,H,W], w [O,C/g,kH,kW], b [O]?)` → `[N,O,H',W']`.
    pub fn conv2d(&mut self, x: Value, w: Value, b: Option<Value>, c: Conv2d) -> Result<Value> {
        let inputs: Vec<Value> = [x, w].into_iter().chain(b).collect();
        self.push(Op::Conv2d(c), &inputs)
    }

    /// `(x [N,C,H,W], w [C,O/g,kH,kW], b [O]?)` → `[N,O,H',W']`.
    pub fn conv_transpose2d(
        &mut self,
        x: Value,
        w: Value,
        b: Option<Value>,
        conv: Conv2d,
        output_padding: [usize; 2],
    ) -> Result<Value> {
        let inputs: Vec<Value> = [x, w].into_iter().chain(b).collect();
        self.push(Op::ConvTranspose2d { conv, output_padding }, &inputs)
    }

    pub fn pool2d(&mut self, x: Value, p: Pool2d) -> Result<Value> {
        self.push(Op::Pool2d(p), &[x])
    }

    /// `[N,C,H,W]` → `[N,C]`, the mean of every plane.
    pub fn global_avg_pool2d(&mut self, x: Value) -> Result<Value> {
        if self.shape(x).rank() != 4 {
            return Err(Error::shape("global_avg_pool2d", "x must be [N,C,H,W]", "rank 4", self.shape(x)));
        }
        self.mean(x, &[2, 3], false)
    }

    /// Training-mode batch norm over `x [N,C,…]`; returns `y` and the batch statistics `[2,C]`
    /// (mean, biased variance), which `batch_norm_running_update` folds into running ones.
    pub fn batch_norm(&mut self, x: Value, gamma: Value, beta: Value, eps: f32) -> Result<(Value, Value)> {
        let stats = self.push(Op::BatchNormStats, &[x])?;
        Ok((self.push(Op::BatchNorm { eps }, &[x, stats, gamma, beta])?, stats))
    }

    /// Eval-mode batch norm with given statistics `[2,C]` (running mean and variance).
    pub fn batch_norm_eval(&mut self, x: Value, stats: Value, gamma: Value, beta: Value, eps: f32) -> Result<Value> {
        self.push(Op::BatchNorm { eps }, &[x, stats, gamma, beta])
    }

    /// In place: `running ← (1-momentum)·running + momentum·stats`, the variance made unbiased.
    pub fn batch_norm_running_update(
        &mut self,
        running: Value,
        stats: Value,
        x: Value,
        momentum: f32,
    ) -> Result<Value> {
        let dims = self.shape(x).dims();
        let count = dims.iter().product::<usize>() / dims.get(1).copied().unwrap_or(1).max(1);
        self.push(Op::BatchNormRunningUpdate { momentum, count }, &[running, stats])
    }

    /// Layer norm over the last axis of `x` with `gamma`, `beta` `[D]`.
    pub fn layer_norm(&mut self, x: Value, gamma: Value, beta: Value, eps: f32) -> Result<Value> {
        let stats = self.push(Op::LayerNormStats, &[x])?;
        self.push(Op::LayerNorm { eps }, &[x, stats, gamma, beta])
    }

    /// Inverted dropout with probability `p` when `training`, the identity otherwise. The mask
    /// changes every run and is a pure function of (`seed`, run, element).
    pub fn dropout(&mut self, x: Value, p: f32, seed: u32, training: bool) -> Result<Value> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::attribute("dropout", format!("p = {p} must lie in [0, 1]")));
        }
        if !training || p == 0.0 {
            return Ok(x);
        }
        self.push(Op::Dropout(Dropout { p, seed, step: 0 }), &[x])
    }

    /// Standard normal noise of `shape`, drawn on the device afresh every run from the
    /// generator seeded by `seed` (its runs counted in the store as `noise.<seed>.step`).
    pub fn random_normal(&mut self, shape: impl Into<Shape>, seed: u32) -> Result<Value> {
        self.push(Op::RandomNormal { shape: shape.into(), noise: Noise { seed, step: 0 } }, &[])
    }

    /// `(table [V,D], ids […] i32)` → `[…,D]`.
    pub fn embedding(&mut self, table: Value, ids: Value) -> Result<Value> {
        self.push(Op::Embedding, &[table, ids])
    }

    /// Columns `k·h..(k+1)·h` of a `[N, n·h]` tensor of gates.
    fn gate(&mut self, gates: Value, k: usize, h: usize) -> Result<Value> {
        self.slice(gates, 1, k * h, h)
    }

    /// PyTorch's LSTM cell, gates in the order i, f, g, o: returns `(h', c')`.
    #[allow(clippy::too_many_arguments)]
    pub fn lstm_cell(
        &mut self,
        x: Value,
        h: Value,
        c: Value,
        w_ih: Value,
        w_hh: Value,
        b_ih: Value,
        b_hh: Value,
    ) -> Result<(Value, Value)> {
        let hidden = self.hidden_size("lstm_cell", h, w_hh, 4)?;
        let from_x = self.linear(x, w_ih, b_ih)?;
        let from_h = self.linear(h, w_hh, b_hh)?;
        let gates = self.add(from_x, from_h)?;
        let [i, f, g, o] = [0, 1, 2, 3].map(|k| self.gate(gates, k, hidden));
        let (i, f, o) = (self.sigmoid(i?)?, self.sigmoid(f?)?, self.sigmoid(o?)?);
        let g = self.tanh(g?)?;
        let kept = self.mul(f, c)?;
        let written = self.mul(i, g)?;
        let c_next = self.add(kept, written)?;
        let squashed = self.tanh(c_next)?;
        Ok((self.mul(o, squashed)?, c_next))
    }

    /// PyTorch's GRU cell, gates in the order r, z, n: `h' = n + z·(h - n)`.
    pub fn gru_cell(
        &mut self,
        x: Value,
        h: Value,
        w_ih: Value,
        w_hh: Value,
        b_ih: Value,
        b_hh: Value,
    ) -> Result<Value> {
        let hidden = self.hidden_size("gru_cell", h, w_hh, 3)?;
        let gi = self.linear(x, w_ih, b_ih)?;
        let gh = self.linear(h, w_hh, b_hh)?;
        let mut pre = Vec::with_capacity(2);
        for k in 0..2 {
            let (a, b) = (self.gate(gi, k, hidden)?, self.gate(gh, k, hidden)?);
            let sum = self.add(a, b)?;
            pre.push(self.sigmoid(sum)?);
        }
        let (r, z) = (pre[0], pre[1]);
        let (gi_n, gh_n) = (self.gate(gi, 2, hidden)?, self.gate(gh, 2, hidden)?);
        let reset = self.mul(r, gh_n)?;
        let candidate = self.add(gi_n, reset)?;
        let n = self.tanh(candidate)?;
        let towards_h = self.sub(h, n)?;
        let update = self.mul(z, towards_h)?;
        self.add(n, update)
    }

    /// The hidden size of a recurrent cell, checking `w_hh` is `[gates·H, H]`.
    fn hidden_size(&self, op: &str, h: Value, w_hh: Value, gates: usize) -> Result<usize> {
        let hidden = self.shape(h).dims().last().copied().unwrap_or(0);
        if self.shape(w_hh).dims() != [gates * hidden, hidden] {
            let want = format!("[{}, {hidden}]", gates * hidden);
            return Err(Error::shape(op, "w_hh does not match the hidden state", want, self.shape(w_hh)));
        }
        Ok(hidden)
    }

    /// `softmax(q kᵀ/√D + mask) v` for `q [B,H,T,D]`, `k`, `v` `[B,H,S,D]`; with `causal`,
    /// query i sees keys j ≤ i.
    pub fn attention(&mut self, q: Value, k: Value, v: Value, causal: bool) -> Result<Value> {
        let [b, heads, t, d, s] = self.attention_dims(q, k, v)?;
        let q3 = self.reshape(q, vec![b * heads, t, d])?;
        let k3 = self.reshape(k, vec![b * heads, s, d])?;
        let v3 = self.reshape(v, vec![b * heads, s, d])?;
        let scores = self.matmul_with(q3, k3, kiln_core::MatMul { trans_a: false, trans_b: true })?;
        let mut scores = self.scale(scores, 1.0 / (d as f32).sqrt())?;
        if causal {
            // The lowest finite f32 rather than −∞: as good a zero weight after softmax, and a
            // mask in a checkpoint is not taken for a diverged tensor.
            let mask = (0..t * s).map(|i| if i % s > i / s { f32::MIN } else { 0.0 }).collect();
            let mask = self.variable_init(&format!("causal_mask_{t}x{s}"), HostTensor::f32(vec![t, s], mask)?);
            scores = self.add(scores, mask)?;
        }
        let weights = self.softmax(scores, -1)?;
        let y = self.matmul(weights, v3)?;
        self.reshape(y, vec![b, heads, t, d])
    }

    fn attention_dims(&self, q: Value, k: Value, v: Value) -> Result<[usize; 5]> {
        let (qd, kd) = (self.shape(q).dims(), self.shape(k).dims());
        let fits =
            qd.len() == 4 && kd.len() == 4 && qd[..2] == kd[..2] && qd[3] == kd[3] && self.shape(v) == self.shape(k);
        if !fits || self.node(q).dtype != DType::F32 {
            let got = format!("q {}, k {}, v {}", self.shape(q), self.shape(k), self.shape(v));
            return Err(Error::shape("attention", "expects q [B,H,T,D] and k, v [B,H,S,D]", "matching B, H, D", got));
        }
        Ok([qd[0], qd[1], qd[2], qd[3], kd[2]])
    }
}
