use kiln_core::{Pool2d, PoolKind, Result, Shape};

use crate::Tensor;

/// Calls `f(y_index, taps)` for every window, `taps` being the flat indices of its elements
/// inside the image in scan order, and `window` its full size counting padding.
fn for_each_window(p: &Pool2d, x_dims: &[usize], y: &Shape, mut f: impl FnMut(usize, &[usize])) {
    let (h, w) = (x_dims[2], x_dims[3]);
    let (ho, wo) = (y.dims()[2], y.dims()[3]);
    let mut taps = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for plane in 0..x_dims[0] * x_dims[1] {
        for oh in 0..ho {
            for ow in 0..wo {
                taps.clear();
                for i in 0..p.kernel[0] {
                    for j in 0..p.kernel[1] {
                        let ih = (oh * p.stride[0] + i).checked_sub(p.padding[0]).filter(|&v| v < h);
                        let iw = (ow * p.stride[1] + j).checked_sub(p.padding[1]).filter(|&v| v < w);
                        if let (Some(ih), Some(iw)) = (ih, iw) {
                            taps.push((plane * h + ih) * w + iw);
                        }
                    }
                }
                f((plane * ho + oh) * wo + ow, &taps);
            }
        }
    }
}

/// The tap holding the window's maximum (or minimum), the first in scan order on ties.
fn extreme(x: &Tensor, taps: &[usize], max: bool) -> usize {
    let better = |a: f64, b: f64| if max { a > b } else { a < b };
    taps.iter().copied().fold(taps[0], |best, t| if better(x.data[t], x.data[best]) { t } else { best })
}

fn divisor(p: &Pool2d, taps: &[usize]) -> f64 {
    match p.kind {
        PoolKind::Avg { count_include_pad: true } => (p.kernel[0] * p.kernel[1]) as f64,
        PoolKind::Avg { count_include_pad: false } | PoolKind::Max | PoolKind::Min | PoolKind::Lp { .. } => {
            taps.len() as f64
        }
    }
}

pub fn pool2d(p: &Pool2d, x: &Tensor, out: &Shape) -> Result<Tensor> {
    let mut y = Tensor::zeros(out.clone());
    for_each_window(p, x.dims(), out, |yi, taps| {
        y.data[yi] = match p.kind {
            PoolKind::Max => x.data[extreme(x, taps, true)],
            PoolKind::Min => x.data[extreme(x, taps, false)],
            PoolKind::Avg { .. } => taps.iter().map(|&t| x.data[t]).sum::<f64>() / divisor(p, taps),
            PoolKind::Lp { p } => {
                let p = p as f64;
                taps.iter().map(|&t| x.data[t].abs().powf(p)).sum::<f64>().powf(1.0 / p)
            }
        };
    });
    Ok(y)
}

/// Max/min: dy to the winning tap; avg: dy/divisor to every tap; Lp:
/// `dy·sign(x)|x|^(p-1)/y^(p-1)` (0 where y = 0).
/// The ReLU's gradient at `x` of the pooling's: the fused pair, computed as the two ops.
pub fn pool2d_backward_relu(p: &Pool2d, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    crate::elementwise::activation_backward(&kiln_core::Activation::Relu, x, &pool2d_backward(p, x, y, dy)?)
}

pub fn pool2d_backward(p: &Pool2d, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let mut dx = Tensor::zeros(x.shape.clone());
    for_each_window(p, x.dims(), &y.shape, |yi, taps| match p.kind {
        PoolKind::Max | PoolKind::Min => dx.data[extreme(x, taps, p.kind == PoolKind::Max)] += dy.data[yi],
        PoolKind::Avg { .. } => taps.iter().for_each(|&t| dx.data[t] += dy.data[yi] / divisor(p, taps)),
        PoolKind::Lp { p } if y.data[yi] > 0.0 => {
            let p = p as f64;
            for &t in taps {
                let v = x.data[t];
                dx.data[t] += dy.data[yi] * v.signum() * (v.abs() / y.data[yi]).powf(p - 1.0);
            }
        }
        PoolKind::Lp { .. } => {}
    });
    Ok(dx)
}
