//! Convolutions from the definition. One loop visits every (output, input, weight) triple of
//! a convolution; the forward op and both gradients are that loop with a different update,
//! so they are each other's adjoints by construction.

use kiln_core::{Conv2d, Result, Shape};

use crate::Tensor;

/// Calls `f(y_index, x_index, w_index)` for every tap of a convolution with geometry `c` of an
/// input `x_dims` `[N,C,H,W]` by weights `w_dims` `[O,C/g,kH,kW]` into outputs `[N,O,y_hw]`.
fn for_each_tap(
    c: &Conv2d,
    x_dims: [usize; 4],
    w_dims: [usize; 4],
    y_hw: [usize; 2],
    mut f: impl FnMut(usize, usize, usize),
) {
    let [batch, channels, h, w] = x_dims;
    let [outs, per_group, kh, kw] = w_dims;
    let outs_per_group = outs / c.groups;
    for n in 0..batch {
        for o in 0..outs {
            let group = o / outs_per_group;
            for oh in 0..y_hw[0] {
                for ow in 0..y_hw[1] {
                    let yi = ((n * outs + o) * y_hw[0] + oh) * y_hw[1] + ow;
                    for ci in 0..per_group {
                        let channel = group * per_group + ci;
                        for i in 0..kh {
                            let ih =
                                (oh * c.stride[0] + i * c.dilation[0]).checked_sub(c.padding[0]).filter(|&v| v < h);
                            let Some(ih) = ih else { continue };
                            for j in 0..kw {
                                let iw =
                                    (ow * c.stride[1] + j * c.dilation[1]).checked_sub(c.padding[1]).filter(|&v| v < w);
                                let Some(iw) = iw else { continue };
                                let xi = ((n * channels + channel) * h + ih) * w + iw;
                                f(yi, xi, ((o * per_group + ci) * kh + i) * kw + j);
                            }
                        }
                    }
                }
            }
        }
    }
    debug_assert_eq!(channels, per_group * c.groups);
}

fn dims4(s: &Shape) -> [usize; 4] {
    let d = s.dims();
    [d[0], d[1], d[2], d[3]]
}

/// Adds `b[o]` to every element of output channel o.
fn add_bias(y: &mut Tensor, b: Option<&Tensor>) {
    let Some(b) = b else { return };
    let plane: usize = y.dims()[2..].iter().product();
    for (i, v) in y.data.iter_mut().enumerate() {
        *v += b.data[i / plane.max(1) % b.data.len()];
    }
}

/// `y[n,o] = b[o] + Σ_{c in o's group, taps} x[n,c,…]·w[o,c,…]`.
pub fn conv2d(c: &Conv2d, x: &Tensor, w: &Tensor, b: Option<&Tensor>, out: &Shape) -> Result<Tensor> {
    let mut y = Tensor::zeros(out.clone());
    for_each_tap(c, dims4(&x.shape), dims4(&w.shape), [out.dims()[2], out.dims()[3]], |yi, xi, wi| {
        y.data[yi] += x.data[xi] * w.data[wi];
    });
    add_bias(&mut y, b);
    Ok(y)
}

/// `max(conv2d(x, w, b), 0)`: the fused pair, computed as the two ops it stands for.
pub fn conv2d_relu(c: &Conv2d, x: &Tensor, w: &Tensor, b: Option<&Tensor>, out: &Shape) -> Result<Tensor> {
    crate::elementwise::activation(&kiln_core::Activation::Relu, &conv2d(c, x, w, b, out)?)
}

/// `dx = Σ dy·w` over the taps that read each input element; dy positions past its extent
/// are zero.
pub fn conv2d_backward_input(c: &Conv2d, dy: &Tensor, w: &Tensor, out: &Shape) -> Result<Tensor> {
    let mut dx = Tensor::zeros(out.clone());
    for_each_tap(c, dims4(out), dims4(&w.shape), [dy.dims()[2], dy.dims()[3]], |yi, xi, wi| {
        dx.data[xi] += dy.data[yi] * w.data[wi];
    });
    Ok(dx)
}

/// `dw = Σ dy·x` over the taps that use each weight.
pub fn conv2d_backward_weight(c: &Conv2d, x: &Tensor, dy: &Tensor, out: &Shape) -> Result<Tensor> {
    let mut dw = Tensor::zeros(out.clone());
    for_each_tap(c, dims4(&x.shape), dims4(out), [dy.dims()[2], dy.dims()[3]], |yi, xi, wi| {
        dw.data[wi] += dy.data[yi] * x.data[xi];
    });
    Ok(dw)
}

/// The adjoint of `conv2d`: `w [C,O/g,kH,kW]` read as the weights of a convolution from O to
/// C channels, whose input gradient this is, plus the bias.
pub fn conv_transpose2d(c: &Conv2d, x: &Tensor, w: &Tensor, b: Option<&Tensor>, out: &Shape) -> Result<Tensor> {
    let mut y = conv2d_backward_input(c, x, w, out)?;
    add_bias(&mut y, b);
    Ok(y)
}
