use kiln_core::{DType, MatMul, Op, Result};

use crate::Tensor;

/// `y[b] = op(a[b]) · op(b[b])`, a 2-D operand shared by every batch.
pub fn matmul(m: MatMul, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (shape, _) = Op::MatMul(m).output(&[(&a.shape, DType::F32), (&b.shape, DType::F32)])?;
    let dims = shape.dims();
    let (rows, cols) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let batches = shape.numel() / (rows * cols).max(1);
    let inner = if m.trans_a { a.dims()[a.shape.rank() - 2] } else { a.dims()[a.shape.rank() - 1] };
    let a_batch = if a.shape.rank() == 3 { rows * inner } else { 0 };
    let b_batch = if b.shape.rank() == 3 { inner * cols } else { 0 };
    let at =
        |bi: usize, i: usize, k: usize| a.data[bi * a_batch + if m.trans_a { k * rows + i } else { i * inner + k }];
    let bt =
        |bi: usize, k: usize, j: usize| b.data[bi * b_batch + if m.trans_b { j * inner + k } else { k * cols + j }];
    let mut y = Vec::with_capacity(shape.numel());
    for bi in 0..batches {
        for i in 0..rows {
            for j in 0..cols {
                y.push((0..inner).map(|k| at(bi, i, k) * bt(bi, k, j)).sum::<f64>());
            }
        }
    }
    Tensor::new(shape, y)
}
