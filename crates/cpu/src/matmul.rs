use kiln_core::{DType, HostTensor, MatMul, Op, Result};

/// `y[b] = op(a[b]) · op(b[b])`, a 2-D operand shared by every batch.
pub fn matmul(m: MatMul, a: &HostTensor, b: &HostTensor) -> Result<HostTensor> {
    let (shape, _) = Op::MatMul(m).output(&[(&a.shape, DType::F32), (&b.shape, DType::F32)])?;
    let (xa, xb) = (a.as_f32()?, b.as_f32()?);
    let dims = shape.dims();
    let (rows, cols) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let batches = shape.numel() / (rows * cols).max(1);
    let inner = if m.trans_a { a.shape.dims()[a.shape.rank() - 2] } else { a.shape.dims()[a.shape.rank() - 1] };
    let a_batch = if a.shape.rank() == 3 { rows * inner } else { 0 };
    let b_batch = if b.shape.rank() == 3 { inner * cols } else { 0 };
    let at =
        |bi: usize, i: usize, k: usize| xa[bi * a_batch + if m.trans_a { k * rows + i } else { i * inner + k }] as f64;
    let bt =
        |bi: usize, k: usize, j: usize| xb[bi * b_batch + if m.trans_b { j * inner + k } else { k * cols + j }] as f64;
    let mut y = Vec::with_capacity(shape.numel());
    for bi in 0..batches {
        for i in 0..rows {
            for j in 0..cols {
                y.push((0..inner).map(|k| at(bi, i, k) * bt(bi, k, j)).sum::<f64>() as f32);
            }
        }
    }
    HostTensor::f32(shape, y)
}
