//! Shape rules of convolutions and pooling over NCHW tensors. Impossible geometries (a kernel
//! larger than the padded input, channels not divisible by the groups, zero strides) are
//! refused here, when the graph is built, naming the attribute and the shapes.

use super::rules::floats;
use super::{Conv2d, In, Pool2d, PoolKind};
use crate::{Error, Result, Shape};

/// The four dims of an NCHW tensor (or a `[O, C/g, kH, kW]` weight).
fn nchw(op: &str, what: &str, s: &Shape) -> Result<[usize; 4]> {
    match s.dims() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::shape(op, format!("{what} must have rank 4"), format!("{what} [N,C,H,W]"), s)),
    }
}

/// Positive strides, dilations and groups.
fn check_geometry(op: &str, c: &Conv2d) -> Result<()> {
    if c.stride.contains(&0) || c.dilation.contains(&0) || c.groups == 0 {
        return Err(Error::attribute(
            op,
            format!("stride {:?}, dilation {:?} and groups {} must be positive", c.stride, c.dilation, c.groups),
        ));
    }
    Ok(())
}

fn divisible(op: &str, what: &str, channels: usize, groups: usize) -> Result<()> {
    if !channels.is_multiple_of(groups) {
        return Err(Error::attribute(op, format!("{what} ({channels}) is not divisible by groups ({groups})")));
    }
    Ok(())
}

/// Output extent of `c` over `[h, w]` with kernel `k`, or an error naming the shapes.
fn output_hw(op: &str, c: &Conv2d, hw: [usize; 2], k: [usize; 2], x: &Shape) -> Result<[usize; 2]> {
    let mut out = [0; 2];
    for i in 0..2 {
        out[i] = c.output_size(i, hw[i], k[i]).ok_or_else(|| {
            let span = c.dilation[i] * (k[i].max(1) - 1) + 1;
            Error::shape(
                op,
                format!(
                    "kernel {k:?} (dilation {:?}) is larger than the padded input (padding {:?})",
                    c.dilation, c.padding
                ),
                format!("padded extent >= {span}"),
                x,
            )
        })?;
    }
    Ok(out)
}

fn check_bias(op: &str, inputs: &[In<'_>], channels: usize) -> Result<()> {
    if let Some((b, _)) = inputs.get(2)
        && b.dims() != [channels]
    {
        return Err(Error::shape(op, "bias must hold one value per output channel", format!("[{channels}]"), b));
    }
    Ok(())
}

fn weights_or_bias<'a>(op: &str, inputs: &[In<'a>]) -> Result<[&'a Shape; 2]> {
    match inputs.len() {
        2 => floats::<2>(op, inputs),
        _ => floats::<3>(op, inputs).map(|[x, w, _]| [x, w]),
    }
}

/// `(x [N,C,H,W], w [O,C/g,kH,kW], b [O]?)` → `[N,O,H',W']`.
pub(super) fn conv2d_shape(op: &str, c: &Conv2d, inputs: &[In<'_>]) -> Result<Shape> {
    let [x, w] = weights_or_bias(op, inputs)?;
    check_geometry(op, c)?;
    let ([n, channels, h, wd], [o, per_group, kh, kw]) = (nchw(op, "x", x)?, nchw(op, "w", w)?);
    divisible(op, "input channels", channels, c.groups)?;
    divisible(op, "output channels", o, c.groups)?;
    if per_group * c.groups != channels {
        let want = format!("w [{o}, {}, kH, kW]", channels / c.groups);
        return Err(Error::shape(
            op,
            format!("weight does not match {channels} input channels in {} groups", c.groups),
            want,
            w,
        ));
    }
    check_bias(op, inputs, o)?;
    let [ho, wo] = output_hw(op, c, [h, wd], [kh, kw], x)?;
    Ok(Shape::new([n, o, ho, wo]))
}

/// `(dy [N,O,H',W'], w [O,C/g,kH,kW])` → `[N,C,H,W]`; dy may be smaller than the forward
/// output (its missing positions are zero), never larger.
pub(super) fn conv2d_input_shape(op: &str, c: &Conv2d, hw: [usize; 2], inputs: &[In<'_>]) -> Result<Shape> {
    let [dy, w] = floats::<2>(op, inputs)?;
    check_geometry(op, c)?;
    let ([n, o, ho, wo], [wo_, per_group, kh, kw]) = (nchw(op, "dy", dy)?, nchw(op, "w", w)?);
    divisible(op, "output channels", o, c.groups)?;
    if o != wo_ {
        return Err(Error::shape(op, "dy and w disagree on the output channels", format!("w [{o}, …]"), w));
    }
    let full = output_hw(op, c, hw, [kh, kw], dy)?;
    if ho > full[0] || wo > full[1] {
        return Err(Error::shape(
            op,
            "dy is larger than the convolution's output",
            format!("[{n}, {o}, {}, {}]", full[0], full[1]),
            dy,
        ));
    }
    Ok(Shape::new([n, per_group * c.groups, hw[0], hw[1]]))
}

/// `(x [N,C,H,W], dy [N,O,H',W'])` → `[O, C/g, kH, kW]`.
pub(super) fn conv2d_weight_shape(op: &str, c: &Conv2d, k: [usize; 2], inputs: &[In<'_>]) -> Result<Shape> {
    let [x, dy] = floats::<2>(op, inputs)?;
    check_geometry(op, c)?;
    let ([n, channels, h, wd], [n_dy, o, ho, wo]) = (nchw(op, "x", x)?, nchw(op, "dy", dy)?);
    divisible(op, "input channels", channels, c.groups)?;
    divisible(op, "output channels", o, c.groups)?;
    let full = output_hw(op, c, [h, wd], k, x)?;
    if n != n_dy || ho > full[0] || wo > full[1] {
        return Err(Error::shape(
            op,
            "dy does not fit the convolution of x",
            format!("[{n}, {o}, {}, {}]", full[0], full[1]),
            dy,
        ));
    }
    Ok(Shape::new([o, channels / c.groups, k[0], k[1]]))
}

/// `(x [N,C,H,W], w [C,O/g,kH,kW], b [O]?)` → `[N,O,H',W']` with
/// `H' = (H-1)·s - 2p + d·(kH-1) + output_padding + 1`.
pub(super) fn conv_transpose2d_shape(
    op: &str,
    c: &Conv2d,
    output_padding: [usize; 2],
    inputs: &[In<'_>],
) -> Result<Shape> {
    let [x, w] = weights_or_bias(op, inputs)?;
    check_geometry(op, c)?;
    let ([n, channels, h, wd], [w_in, per_group, kh, kw]) = (nchw(op, "x", x)?, nchw(op, "w", w)?);
    divisible(op, "input channels", channels, c.groups)?;
    if w_in != channels {
        return Err(Error::shape(op, "weight must be [C_in, C_out/groups, kH, kW]", format!("w [{channels}, …]"), w));
    }
    for i in 0..2 {
        if output_padding[i] >= c.stride[i].max(c.dilation[i]) {
            return Err(Error::attribute(
                op,
                format!(
                    "output_padding {output_padding:?} must be smaller than stride {:?} or dilation {:?}",
                    c.stride, c.dilation
                ),
            ));
        }
    }
    let o = per_group * c.groups;
    check_bias(op, inputs, o)?;
    let extent = |i: usize, size: usize, k: usize| {
        ((size - 1) * c.stride[i] + c.dilation[i] * (k - 1) + output_padding[i] + 1)
            .checked_sub(2 * c.padding[i])
            .filter(|&e| e > 0)
    };
    match (extent(0, h, kh), extent(1, wd, kw), h * wd * kh * kw > 0) {
        (Some(ho), Some(wo), true) => Ok(Shape::new([n, o, ho, wo])),
        _ => Err(Error::shape(op, format!("padding {:?} leaves no output", c.padding), "a positive output extent", x)),
    }
}

/// `x [N,C,H,W]` → `[N,C,H',W']`.
pub(super) fn pool2d_shape(op: &str, p: &Pool2d, inputs: &[In<'_>]) -> Result<Shape> {
    let [x] = floats::<1>(op, inputs)?;
    let [n, c, h, w] = nchw(op, "x", x)?;
    if p.kernel.contains(&0) || p.stride.contains(&0) {
        return Err(Error::attribute(op, format!("kernel {:?} and stride {:?} must be positive", p.kernel, p.stride)));
    }
    if (0..2).any(|i| 2 * p.padding[i] > p.kernel[i]) {
        return Err(Error::attribute(
            op,
            format!("padding {:?} must be at most half of kernel {:?}", p.padding, p.kernel),
        ));
    }
    if let PoolKind::Lp { p: power } = p.kind
        && (power.is_nan() || power <= 0.0 || p.padding != [0, 0])
    {
        return Err(Error::attribute(op, format!("p = {power} must be positive and padding {:?} zero", p.padding)));
    }
    let [ho, wo] = output_hw(op, &p.geometry(), [h, w], p.kernel, x)?;
    Ok(Shape::new([n, c, ho, wo]))
}

/// `(x, y, dy)` → dx.
pub(super) fn pool2d_backward_shape(op: &str, p: &Pool2d, inputs: &[In<'_>]) -> Result<Shape> {
    let [x, y, dy] = floats::<3>(op, inputs)?;
    let pooled = pool2d_shape(op, p, &inputs[..1])?;
    if *y != pooled || *dy != pooled {
        return Err(Error::shape(op, "y and dy must have the pooled shape", &pooled, format!("{y} and {dy}")));
    }
    Ok(x.clone())
}
