//! Batch and layer normalisation. Statistics are (mean, biased variance); `x̂ = (x - mean)/√(var + eps)`.

use kiln_core::Result;

use crate::Tensor;

/// (channels, elements per channel per sample) of an `[N,C,…]` tensor.
fn channel_layout(x: &Tensor) -> (usize, usize) {
    (x.dims()[1], x.dims()[2..].iter().product())
}

/// Channel of every element of `x`.
fn channels(x: &Tensor) -> impl Iterator<Item = usize> {
    let (c, inner) = channel_layout(x);
    (0..x.data.len()).map(move |i| i / inner.max(1) % c)
}

/// Mean and biased variance of `values` (two passes).
fn moments(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (mean, values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
}

/// `[2,C]`: per-channel mean and biased variance over every axis but 1.
pub fn batch_norm_stats(x: &Tensor) -> Result<Tensor> {
    let c = x.dims()[1];
    let mut per_channel = vec![Vec::new(); c];
    for (ch, &v) in channels(x).zip(&x.data) {
        per_channel[ch].push(v);
    }
    let (means, vars): (Vec<f64>, Vec<f64>) = per_channel.iter().map(|v| moments(v)).unzip();
    Tensor::new([2, c].to_vec(), [means, vars].concat())
}

fn inv_std(var: f64, eps: f32) -> f64 {
    1.0 / (var + eps as f64).sqrt()
}

/// `x̂` of every element, given per-channel stats `[2,C]`.
fn batch_xhat(eps: f32, x: &Tensor, stats: &Tensor) -> Vec<f64> {
    let c = x.dims()[1];
    channels(x).zip(&x.data).map(|(ch, &v)| (v - stats.data[ch]) * inv_std(stats.data[c + ch], eps)).collect()
}

pub fn batch_norm(eps: f32, x: &Tensor, stats: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let xhat = batch_xhat(eps, x, stats);
    let y = channels(x).zip(xhat).map(|(ch, h)| gamma.data[ch] * h + beta.data[ch]);
    Tensor::new(x.shape.clone(), y.collect())
}

/// `[2,C]`: `Σ dy` and `Σ dy·x̂` per channel.
pub fn batch_norm_backward_reduce(eps: f32, x: &Tensor, stats: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let c = x.dims()[1];
    let mut sums = Tensor::zeros([2, c].to_vec());
    for ((ch, h), &g) in channels(x).zip(batch_xhat(eps, x, stats)).zip(&dy.data) {
        sums.data[ch] += g;
        sums.data[c + ch] += g * h;
    }
    Ok(sums)
}

/// Training: `dx = γ·σ⁻¹·(dy - Σdy/M - x̂·Σdy·x̂/M)`, M elements per channel; eval: `γ·σ⁻¹·dy`.
pub fn batch_norm_backward_input(
    eps: f32,
    training: bool,
    [x, stats, gamma, dy, sums]: [&Tensor; 5],
) -> Result<Tensor> {
    let c = x.dims()[1];
    let count = (x.data.len() / c.max(1)) as f64;
    let dx = channels(x).zip(batch_xhat(eps, x, stats)).zip(&dy.data).map(|((ch, h), &g)| {
        let scale = gamma.data[ch] * inv_std(stats.data[c + ch], eps);
        let centred = if training { g - sums.data[ch] / count - h * sums.data[c + ch] / count } else { g };
        scale * centred
    });
    Tensor::new(x.shape.clone(), dx.collect())
}

/// `r ← (1-m)·r + m·(mean, var·count/(count-1))`.
pub fn batch_norm_running_update(momentum: f32, count: usize, running: &Tensor, stats: &Tensor) -> Result<Tensor> {
    let c = stats.data.len() / 2;
    let unbiased = count as f64 / (count.max(2) - 1) as f64;
    let m = momentum as f64;
    let r = running.data.iter().zip(&stats.data).enumerate().map(|(i, (&r, &s))| {
        let s = if i >= c { s * unbiased } else { s };
        (1.0 - m) * r + m * s
    });
    Tensor::new(running.shape.clone(), r.collect())
}

/// `[R,2]`: mean and biased variance of every row of the last axis.
pub fn layer_norm_stats(x: &Tensor) -> Result<Tensor> {
    let d = x.dims().last().copied().unwrap_or(1).max(1);
    let stats: Vec<f64> = x.data.chunks(d).flat_map(|row| <[f64; 2]>::from(moments(row))).collect();
    Tensor::new([x.data.len() / d, 2].to_vec(), stats)
}

/// Rows of x with their x̂.
fn rows_xhat<'a>(eps: f32, x: &'a Tensor, stats: &'a Tensor) -> impl Iterator<Item = Vec<f64>> + 'a {
    let d = x.dims().last().copied().unwrap_or(1).max(1);
    x.data
        .chunks(d)
        .zip(stats.data.chunks(2))
        .map(move |(row, s)| row.iter().map(|&v| (v - s[0]) * inv_std(s[1], eps)).collect())
}

pub fn layer_norm(eps: f32, x: &Tensor, stats: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let y = rows_xhat(eps, x, stats)
        .flat_map(|h| h.iter().enumerate().map(|(j, &v)| gamma.data[j] * v + beta.data[j]).collect::<Vec<_>>());
    Tensor::new(x.shape.clone(), y.collect())
}

/// Per row, with `g = γ·dy`: `dx = σ⁻¹·(g - mean(g) - x̂·mean(g·x̂))`.
pub fn layer_norm_backward_input(eps: f32, x: &Tensor, stats: &Tensor, gamma: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let d = gamma.data.len().max(1);
    let mut dx = Vec::with_capacity(x.data.len());
    for ((h, dy_row), s) in rows_xhat(eps, x, stats).zip(dy.data.chunks(d)).zip(stats.data.chunks(2)) {
        let g: Vec<f64> = dy_row.iter().zip(&gamma.data).map(|(a, b)| a * b).collect();
        let mean_g = g.iter().sum::<f64>() / d as f64;
        let mean_gh = g.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>() / d as f64;
        dx.extend(g.iter().zip(&h).map(|(gj, hj)| inv_std(s[1], eps) * (gj - mean_g - hj * mean_gh)));
    }
    Tensor::new(x.shape.clone(), dx)
}

/// `[2,D]`: `Σ dy` and `Σ dy·x̂` per feature over every row.
pub fn layer_norm_backward_params(eps: f32, x: &Tensor, stats: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let d = x.dims().last().copied().unwrap_or(1).max(1);
    let mut sums = Tensor::zeros([2, d].to_vec());
    for (h, dy_row) in rows_xhat(eps, x, stats).zip(dy.data.chunks(d)) {
        for j in 0..d {
            sums.data[j] += dy_row[j];
            sums.data[d + j] += dy_row[j] * h[j];
        }
    }
    Ok(sums)
}
