use kiln_core::{Activation, Dropout, Result, broadcast_shapes};

use crate::{Tensor, broadcast_offsets};

/// `y = f(a, b)` elementwise with NumPy broadcasting; `op` names the op in errors.
pub fn binary(op: &str, f: fn(f64, f64) -> f64, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shapes(op, &a.shape, &b.shape)?;
    let oa = broadcast_offsets(shape.dims(), a.dims());
    let ob = broadcast_offsets(shape.dims(), b.dims());
    Tensor::new(shape, oa.iter().zip(&ob).map(|(&i, &j)| f(a.data[i], b.data[j])).collect())
}

fn map(x: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor> {
    Tensor::new(x.shape.clone(), x.data.iter().map(|&v| f(v)).collect())
}

fn map2(x: &Tensor, y: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor> {
    Tensor::new(x.shape.clone(), x.data.iter().zip(&y.data).map(|(&a, &b)| f(a, b)).collect())
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Φ(v), the standard normal CDF.
fn normal_cdf(v: f64) -> f64 {
    0.5 * libm::erfc(-v / std::f64::consts::SQRT_2)
}

/// Pointwise activations, evaluated in f64.
pub fn activation(a: &Activation, x: &Tensor) -> Result<Tensor> {
    map(x, |v| match *a {
        Activation::Relu => v.max(0.0),
        Activation::Sigmoid => sigmoid(v),
        Activation::Tanh => v.tanh(),
        Activation::LeakyRelu { negative_slope } => {
            if v > 0.0 {
                v
            } else {
                negative_slope as f64 * v
            }
        }
        Activation::Elu { alpha } => {
            if v > 0.0 {
                v
            } else {
                alpha as f64 * v.exp_m1()
            }
        }
        Activation::Gelu { tanh: false } => v * normal_cdf(v),
        Activation::Gelu { tanh: true } => 0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + GELU_CUBIC * v.powi(3))).tanh()),
        Activation::Silu => v * sigmoid(v),
        Activation::Softplus => v.max(0.0) + (-v.abs()).exp().ln_1p(),
        Activation::Step => f64::from(v > 0.0),
    })
}

/// `σ'(v) = e^-|v| / (1 + e^-|v|)²`, free of the cancellation in `σ(1-σ)` where σ saturates.
fn sigmoid_slope(v: f64) -> f64 {
    let e = (-v.abs()).exp();
    e / ((1.0 + e) * (1.0 + e))
}

/// `dx = f'(x)·dy`.
pub fn activation_backward(a: &Activation, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    map2(x, dy, |s, g| {
        g * match *a {
            Activation::Relu => f64::from(s > 0.0),
            Activation::Sigmoid => sigmoid_slope(s),
            // tanh'(x) = 4σ'(2x)
            Activation::Tanh => 4.0 * sigmoid_slope(2.0 * s),
            Activation::LeakyRelu { negative_slope } => {
                if s > 0.0 {
                    1.0
                } else {
                    negative_slope as f64
                }
            }
            Activation::Elu { alpha } => {
                if s > 0.0 {
                    1.0
                } else {
                    alpha as f64 * s.exp()
                }
            }
            Activation::Gelu { tanh: false } => {
                normal_cdf(s) + s * (-0.5 * s * s).exp() / (2.0 * std::f64::consts::PI).sqrt()
            }
            Activation::Gelu { tanh: true } => {
                let th = (SQRT_2_OVER_PI * (s + GELU_CUBIC * s.powi(3))).tanh();
                0.5 * (1.0 + th) + 0.5 * s * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * s * s)
            }
            Activation::Silu => sigmoid(s) * (1.0 + s * (1.0 - sigmoid(s))),
            Activation::Softplus => sigmoid(s),
            Activation::Step => 0.0,
        }
    })
}

/// Channel of flat element `i` of an `[N,C,…]` tensor.
fn channel(dims: &[usize], i: usize) -> usize {
    let inner: usize = dims[2..].iter().product();
    i / inner.max(1) % dims[1]
}

/// `y = x` where positive, else `alpha[c]·x`.
pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let y = x.data.iter().enumerate().map(|(i, &v)| if v > 0.0 { v } else { alpha.data[channel(x.dims(), i)] * v });
    Tensor::new(x.shape.clone(), y.collect())
}

/// `dx = dy` where x is positive, else `alpha[c]·dy`.
pub fn prelu_backward_input(x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let dx = x.data.iter().zip(&dy.data).enumerate();
    let dx = dx.map(|(i, (&v, &g))| if v > 0.0 { g } else { alpha.data[channel(x.dims(), i)] * g });
    Tensor::new(x.shape.clone(), dx.collect())
}

/// `dalpha[c] = Σ dy·x` over the elements of channel c where x is not positive.
pub fn prelu_backward_alpha(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let mut dalpha = vec![0.0; x.dims()[1]];
    for (i, (&v, &g)) in x.data.iter().zip(&dy.data).enumerate() {
        if v <= 0.0 {
            dalpha[channel(x.dims(), i)] += g * v;
        }
    }
    Tensor::new([x.dims()[1]].to_vec(), dalpha)
}

/// Inverted dropout with the mask of `Dropout::keeps`; also its own backward (the same mask
/// applied to dy).
pub fn dropout(d: &Dropout, x: &Tensor) -> Result<Tensor> {
    let scale = d.scale() as f64;
    let y = x.data.iter().enumerate().map(|(i, &v)| if d.keeps(i as u32) { v * scale } else { 0.0 });
    Tensor::new(x.shape.clone(), y.collect())
}
