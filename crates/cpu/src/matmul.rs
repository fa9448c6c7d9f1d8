use kiln_core::{DType, MatMul, Op, Result};

use crate::Tensor;

/// `x·w + b`, with `relu` its ReLU: the fused linear layer, computed as the ops it stands for.
pub fn linear(m: MatMul, relu: bool, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Op::Linear { matmul: m, relu }.output(&[(&x.shape, DType::F32), (&w.shape, DType::F32), (&b.shape, DType::F32)])?;
    let product = stored_product(m, x, w)?;
    let y = crate::elementwise::binary("linear", |a, b| a + b, &product, b)?;
    if relu { crate::elementwise::activation(&kiln_core::Activation::Relu, &y) } else { Ok(y) }
}

/// ReLU's gradient at `x` of `matmul(a, b)`, computed as the ops it stands for.
pub fn matmul_relu_backward(m: MatMul, a: &Tensor, b: &Tensor, x: &Tensor) -> Result<Tensor> {
    Op::MatMulReluBackward(m).output(&[(&a.shape, DType::F32), (&b.shape, DType::F32), (&x.shape, DType::F32)])?;
    let product = stored_product(m, a, b)?;
    crate::elementwise::activation_backward(&kiln_core::Activation::Relu, x, &product)
}

/// The product as the unfused graph would store it: rounded to f32.
fn stored_product(m: MatMul, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mut product = matmul(m, a, b)?;
    for v in &mut product.data {
        *v = f64::from(*v as f32);
    }
    Ok(product)
}

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
