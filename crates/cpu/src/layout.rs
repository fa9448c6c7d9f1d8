use kiln_core::{DType, Op, Result, contiguous_strides};

use crate::{Tensor, for_each_index, split_at_axis};

/// `y[i_0..i_r] = x[i_perm⁻¹…]`: axis `k` of `y` is axis `perm[k]` of `x`.
pub fn transpose(perm: &[usize], x: &Tensor) -> Result<Tensor> {
    let (shape, _) = Op::Transpose(perm.to_vec()).output(&[(&x.shape, DType::F32)])?;
    let x_strides = contiguous_strides(x.dims());
    let mut y = Vec::with_capacity(shape.numel());
    for_each_index(shape.dims(), |index| {
        y.push(x.data[(0..index.len()).map(|k| index[k] * x_strides[perm[k]]).sum::<usize>()]);
    });
    Tensor::new(shape, y)
}

/// Elements `start..start+len` of `axis`.
pub fn slice(axis: usize, start: usize, len: usize, x: &Tensor) -> Result<Tensor> {
    let (outer, full, inner) = split_at_axis(x.dims(), axis);
    let mut dims = x.dims().to_vec();
    dims[axis] = len;
    let mut y = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        y.extend_from_slice(&x.data[(o * full + start) * inner..(o * full + start + len) * inner]);
    }
    Tensor::new(dims, y)
}

/// `dy` placed at `start..` of `axis` in a zero tensor `full` long on that axis.
/// `parts` one after another along `axis` into a tensor shaped `out`.
pub fn concat(axis: usize, parts: &[&Tensor], out: &kiln_core::Shape) -> Result<Tensor> {
    let (outer, full, inner) = split_at_axis(out.dims(), axis);
    let mut y = Tensor::zeros(out.clone());
    let mut start = 0;
    for part in parts {
        let len = part.dims()[axis];
        for o in 0..outer {
            let to = (o * full + start) * inner;
            y.data[to..to + len * inner].copy_from_slice(&part.data[o * len * inner..(o + 1) * len * inner]);
        }
        start += len;
    }
    Ok(y)
}

pub fn slice_backward(axis: usize, start: usize, full: usize, dy: &Tensor) -> Result<Tensor> {
    let (outer, len, inner) = split_at_axis(dy.dims(), axis);
    let mut dims = dy.dims().to_vec();
    dims[axis] = full;
    let mut dx = Tensor::zeros(dims);
    for o in 0..outer {
        let to = (o * full + start) * inner;
        dx.data[to..to + len * inner].copy_from_slice(&dy.data[o * len * inner..(o + 1) * len * inner]);
    }
    Ok(dx)
}
