//! Attribute structs of the operators: what a kernel needs besides its tensors.

/// Pointwise activations. Each backward op reads the forward input: derivatives written in x
/// stay accurate where the output saturates (`1 - y²` from a rounded `y ≈ 1` would not).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu {
        negative_slope: f32,
    },
    Elu {
        alpha: f32,
    },
    /// `x·Φ(x)`, exact with erf or the tanh approximation.
    Gelu {
        tanh: bool,
    },
    Silu,
    Softplus,
    /// Heaviside's `[x > 0]`: the perceptron's output. Its slope is zero wherever it has one,
    /// so its gradient is zero (which makes `(step(a) - y)·a` the perceptron's criterion).
    Step,
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Gelu { tanh: false } => "gelu",
            Activation::Gelu { tanh: true } => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Step => "step",
        }
    }

    pub fn backward_name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu_backward",
            Activation::Sigmoid => "sigmoid_backward",
            Activation::Tanh => "tanh_backward",
            Activation::LeakyRelu { .. } => "leaky_relu_backward",
            Activation::Elu { .. } => "elu_backward",
            Activation::Gelu { tanh: false } => "gelu_backward",
            Activation::Gelu { tanh: true } => "gelu_tanh_backward",
            Activation::Silu => "silu_backward",
            Activation::Softplus => "softplus_backward",
            Activation::Step => "step_backward",
        }
    }

    /// The activation's one scalar parameter (0 when it has none).
    pub fn parameter(&self) -> f32 {
        match self {
            Activation::LeakyRelu { negative_slope } => *negative_slope,
            Activation::Elu { alpha } => *alpha,
            Activation::Relu
            | Activation::Sigmoid
            | Activation::Tanh
            | Activation::Gelu { .. }
            | Activation::Silu
            | Activation::Softplus
            | Activation::Step => 0.0,
        }
    }
}

/// Geometry of a 2-D convolution over NCHW tensors with `[O, C/groups, kH, kW]` weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Conv2d { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

impl Conv2d {
    /// Output extent along axis `i` (0 = height) of an input of extent `size` and a kernel of
    /// extent `k`, or `None` when the dilated kernel does not fit the padded input.
    pub fn output_size(&self, i: usize, size: usize, k: usize) -> Option<usize> {
        let span = self.dilation[i] * (k.max(1) - 1) + 1;
        let padded = size + 2 * self.padding[i];
        (padded >= span && self.stride[i] > 0).then(|| (padded - span) / self.stride[i] + 1)
    }
}

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PoolKind {
    /// Padding counts as -inf; ties go to the first maximum in scan order.
    Max,
    /// Padding counts as +inf.
    Min,
    /// Divides by the whole window, or only by its elements inside the image.
    Avg { count_include_pad: bool },
    /// `(Σ |x|^p)^(1/p)` over the window (PyTorch's LPPool for even p); no padding.
    Lp { p: f32 },
}

/// A pooling window over the two spatial axes of an NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Pool2d {
    pub fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool2d",
            PoolKind::Min => "min_pool2d",
            PoolKind::Avg { .. } => "avg_pool2d",
            PoolKind::Lp { .. } => "lp_pool2d",
        }
    }

    pub fn backward_name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool2d_backward",
            PoolKind::Min => "min_pool2d_backward",
            PoolKind::Avg { .. } => "avg_pool2d_backward",
            PoolKind::Lp { .. } => "lp_pool2d_backward",
        }
    }

    /// The window as a convolution geometry (dilation 1, one group).
    pub fn geometry(&self) -> Conv2d {
        Conv2d { stride: self.stride, padding: self.padding, dilation: [1, 1], groups: 1 }
    }
}

/// Elementwise losses `ℓ(pred, target)`, averaged (or summed) by the graph builder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// `|p - t|`
    L1,
    /// `½d²` where `|d| < δ`, else `δ(|d| - ½δ)`, with `d = p - t`
    Huber { delta: f32 },
    /// `-(t·ln p + (1-t)·ln(1-p))`, logs clamped at -100 as PyTorch does
    Bce,
    /// `max(x,0) - x·t + ln(1 + e^-|x|)`: stable for logits of any size
    BceWithLogits,
    /// `max(0, 1 - t·p)`
    Hinge,
    /// `t·(ln t - logp)`, 0 where `t = 0`
    KlDiv,
}

impl LossKind {
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::L1 => "l1_loss",
            LossKind::Huber { .. } => "huber_loss",
            LossKind::Bce => "bce_loss",
            LossKind::BceWithLogits => "bce_with_logits",
            LossKind::Hinge => "hinge_loss",
            LossKind::KlDiv => "kl_div",
        }
    }

    pub fn backward_name(&self, wrt_target: bool) -> &'static str {
        match (self, wrt_target) {
            (LossKind::L1, false) => "l1_loss_backward_pred",
            (LossKind::L1, true) => "l1_loss_backward_target",
            (LossKind::Huber { .. }, false) => "huber_loss_backward_pred",
            (LossKind::Huber { .. }, true) => "huber_loss_backward_target",
            (LossKind::Bce, false) => "bce_loss_backward_pred",
            (LossKind::Bce, true) => "bce_loss_backward_target",
            (LossKind::BceWithLogits, false) => "bce_with_logits_backward_pred",
            (LossKind::BceWithLogits, true) => "bce_with_logits_backward_target",
            (LossKind::Hinge, false) => "hinge_loss_backward_pred",
            (LossKind::Hinge, true) => "hinge_loss_backward_target",
            (LossKind::KlDiv, false) => "kl_div_backward_pred",
            (LossKind::KlDiv, true) => "kl_div_backward_target",
        }
    }

    pub fn parameter(&self) -> f32 {
        match self {
            LossKind::Huber { delta } => *delta,
            LossKind::L1 | LossKind::Bce | LossKind::BceWithLogits | LossKind::Hinge | LossKind::KlDiv => 0.0,
        }
    }
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by
/// `1/(1-p)`. The mask is a hash of (`seed`, `step`, element index), so the backward op and
/// the CPU path redraw exactly the same mask without storing it; `step` advances every run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
    pub seed: u32,
    pub step: u32,
}

impl Dropout {
    /// The per-run key mixed into every element's hash: `hash(seed ^ hash(step))`.
    pub fn key(&self) -> u32 {
        mix32(self.seed ^ mix32(self.step))
    }

    /// An element is kept when the top 24 bits of `hash(index ^ key)` reach this threshold.
    pub fn threshold(&self) -> u32 {
        (self.p.clamp(0.0, 1.0) as f64 * (1u32 << 24) as f64).round() as u32
    }

    /// The factor applied to kept elements: `1/(1-p)`, or 0 when everything is dropped.
    pub fn scale(&self) -> f32 {
        if self.p < 1.0 { (1.0 / (1.0 - self.p as f64)) as f32 } else { 0.0 }
    }

    /// Whether element `index` survives this run (the WGSL kernels compute the same).
    pub fn keeps(&self, index: u32) -> bool {
        mix32(index ^ self.key()) >> 8 >= self.threshold()
    }
}

/// Standard normal noise drawn on the device: element `i` of run `step` of the generator seeded
/// by `seed` is Box–Muller's `√(-2 ln u₁)·cos(2π u₂)` of two 24-bit uniforms hashed from the
/// counters `2i` and `2i+1` and the run's key. Counter-based: nothing is stored, every run
/// draws afresh, and the CPU path draws the very same values (`Noise::normal`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    pub seed: u32,
    pub step: u32,
}

impl Noise {
    /// The most elements one draw may hold: the counters `2i + 1` stay within 32 bits.
    pub const MAX_ELEMENTS: usize = (u32::MAX / 2) as usize;

    /// The per-run key mixed into every counter's hash: `hash(seed ^ hash(step))`.
    pub fn key(&self) -> u32 {
        mix32(self.seed ^ mix32(self.step))
    }

    /// The two 24-bit uniforms of element `index` (the WGSL kernel computes the same).
    pub fn bits(&self, index: u32) -> [u32; 2] {
        let key = self.key();
        let draw = |counter: u32| mix32(mix32(counter) ^ key) >> 8;
        [draw(index.wrapping_mul(2)), draw(index.wrapping_mul(2).wrapping_add(1))]
    }

    /// Element `index` of this run, in f64: `u₁ = (a + 1)·2⁻²⁴ ∈ (0, 1]`, `u₂ = b·2⁻²⁴ ∈ [0, 1)`.
    pub fn normal(&self, index: u32) -> f64 {
        let [a, b] = self.bits(index);
        let scale = 1.0 / (1u32 << 24) as f64;
        let (u1, u2) = ((a + 1) as f64 * scale, b as f64 * scale);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A 32-bit integer hash with full avalanche (Wellons' lowbias32), cheap in WGSL.
pub fn mix32(mut v: u32) -> u32 {
    v ^= v >> 16;
    v = v.wrapping_mul(0x7feb_352d);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846c_a68b);
    v ^ (v >> 16)
}

/// How the learning rate moves with the 1-based step `t`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum LrSchedule {
    #[default]
    Constant,
    /// `lr · gamma^⌊(t-1)/every⌋`
    Step { every: u32, gamma: f32 },
    /// A linear warm-up over the first `warmup` steps (`lr·t/warmup`), then
    /// `min_lr + (lr - min_lr)·(1 + cos(π·p))/2` with `p = min(t-1-warmup, span)/span` over the
    /// `span = total - warmup` steps left.
    Cosine { warmup: u32, total: u32, min_lr: f32 },
}

impl LrSchedule {
    /// The learning rate at 1-based step `step` for a base rate `lr`, in f64.
    pub fn at(&self, lr: f32, step: u32) -> f64 {
        let (lr, t) = (lr as f64, step.max(1) - 1);
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Step { every, gamma } => lr * (gamma as f64).powi((t / every.max(1)) as i32),
            LrSchedule::Cosine { warmup, total, min_lr } => {
                if t < warmup {
                    return lr * (t + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1);
                let progress = (t - warmup).min(span) as f64 / span as f64;
                min_lr as f64 + (lr - min_lr as f64) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
            }
        }
    }
}

/// SGD with momentum and L2 weight decay, PyTorch semantics (dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub schedule: LrSchedule,
    /// 1-based; advances every run.
    pub step: u32,
}

impl Sgd {
    pub const fn new(lr: f32, momentum: f32, weight_decay: f32) -> Self {
        Sgd { lr, momentum, weight_decay, schedule: LrSchedule::Constant, step: 1 }
    }
}

/// Adam (`decoupled = false`: L2 decay added to the gradient) or AdamW (`decoupled = true`:
/// `p ← p(1 - lr·wd)` first), PyTorch semantics; `step` is 1-based and advances every run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    pub schedule: LrSchedule,
    pub step: u32,
}

impl Adam {
    /// Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8), no decay, at step 1.
    pub const fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            schedule: LrSchedule::Constant,
            step: 1,
        }
    }
}

/// Adagrad with L2 weight decay (PyTorch, lr_decay 0): `s += g²`, `p -= lr·g/(√s + eps)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    pub lr: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub schedule: LrSchedule,
    pub step: u32,
}

/// RMSprop with L2 weight decay (PyTorch, no momentum, not centred):
/// `s = α·s + (1-α)·g²`, `p -= lr·g/(√s + eps)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rmsprop {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub schedule: LrSchedule,
    pub step: u32,
}

/// What a graph's products (matrix products and convolutions, forward and backward) take as
/// operands: f32 values, or (`Mixed`) their values rounded to binary16, the numerics of f16
/// inputs with f32 accumulation. Everything else (sums, normalisation, losses, optimizer
/// state and the parameters themselves) stays f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    Mixed,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "mixed" => Ok(Precision::Mixed),
            _ => Err(crate::Error::data(
                "--precision",
                format!("`{s}`: expected f32 (every value f32) or mixed (products of f16 operands, f32 sums)"),
            )),
        }
    }
}

/// Dynamic loss scaling (PyTorch's `GradScaler` rules): a step whose gradients are not all
/// finite is skipped and halves the scale; `growth_interval` finite steps in a row double it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScale {
    pub growth_interval: u32,
}

impl LossScale {
    /// The scale a training graph starts from.
    pub const INITIAL: f32 = 65536.0;
    /// The scale never drops below 1 nor grows past 2^24.
    pub const MIN: f32 = 1.0;
    pub const MAX: f32 = 16_777_216.0;
}

impl Default for LossScale {
    fn default() -> Self {
        LossScale { growth_interval: 2000 }
    }
}
