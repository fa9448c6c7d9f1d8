use kiln_core::{DType, HostTensor, Op, Result, contiguous_strides};

/// `y[i_0..i_r] = x[i_perm⁻¹…]`: axis `k` of `y` is axis `perm[k]` of `x`.
pub fn transpose(perm: &[usize], x: &HostTensor) -> Result<HostTensor> {
    let (shape, _) = Op::Transpose(perm.to_vec()).output(&[(&x.shape, DType::F32)])?;
    let xs = x.as_f32()?;
    let x_strides = contiguous_strides(x.shape.dims());
    let dims = shape.dims();
    let mut index = vec![0usize; dims.len()];
    let mut y = Vec::with_capacity(shape.numel());
    for _ in 0..shape.numel() {
        y.push(xs[(0..dims.len()).map(|k| index[k] * x_strides[perm[k]]).sum::<usize>()]);
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    HostTensor::f32(shape, y)
}
