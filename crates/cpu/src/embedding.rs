use kiln_core::Result;

use crate::Tensor;

/// `y[i] = table[ids[i]]`.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let d = table.dims()[1];
    let mut dims = ids.dims().to_vec();
    dims.push(d);
    let rows = ids.indices("embedding", "id", table.dims()[0], "table rows")?;
    Tensor::new(dims, rows.iter().flat_map(|&r| table.data[r * d..(r + 1) * d].iter().copied()).collect())
}

/// `dtable[v] = Σ_{i: ids[i] = v} dy[i]`.
pub fn embedding_backward(vocab: usize, ids: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let d = dy.dims().last().copied().unwrap_or(0);
    let mut dtable = Tensor::zeros([vocab, d].to_vec());
    for (i, r) in ids.indices("embedding", "id", vocab, "table rows")?.into_iter().enumerate() {
        for j in 0..d {
            dtable.data[r * d + j] += dy.data[i * d + j];
        }
    }
    Ok(dtable)
}
