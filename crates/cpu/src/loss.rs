use kiln_core::{Error, HostTensor, Result, Shape};

/// Rows of `[N,C]` logits with their labels, rejecting labels outside `0..C`.
fn rows<'a>(logits: &'a HostTensor, labels: &'a HostTensor) -> Result<impl Iterator<Item = (&'a [f32], usize)>> {
    let classes = logits.shape.dims()[1];
    let labels = labels.as_i32()?;
    if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= classes) {
        return Err(Error::attribute("cross_entropy", format!("label {bad} out of range for {classes} classes")));
    }
    Ok(logits.as_f32()?.chunks(classes.max(1)).zip(labels.iter().map(|&l| l as usize)))
}

/// `logsumexp(x) = m + ln Σ exp(x_j - m)`, stable for logits of any magnitude.
fn logsumexp(row: &[f32]) -> f64 {
    let max = row.iter().map(|&v| v as f64).fold(f64::NEG_INFINITY, f64::max);
    max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln()
}

/// `loss_n = logsumexp(x_n) - x_n[label_n]`.
pub fn cross_entropy_per_sample(logits: &HostTensor, labels: &HostTensor) -> Result<HostTensor> {
    let losses = rows(logits, labels)?.map(|(row, l)| (logsumexp(row) - row[l] as f64) as f32).collect::<Vec<_>>();
    HostTensor::f32(Shape::new([losses.len()]), losses)
}

/// `dx_nj = dy_n (softmax(x_n)_j - [j = label_n])`.
pub fn cross_entropy_per_sample_backward(
    logits: &HostTensor,
    labels: &HostTensor,
    dy: &HostTensor,
) -> Result<HostTensor> {
    let mut dx = Vec::with_capacity(logits.shape.numel());
    for ((row, label), &g) in rows(logits, labels)?.zip(dy.as_f32()?) {
        let lse = logsumexp(row);
        let grad = row.iter().enumerate().map(|(j, &v)| {
            let p = (v as f64 - lse).exp() - if j == label { 1.0 } else { 0.0 };
            (g as f64 * p) as f32
        });
        dx.extend(grad);
    }
    HostTensor::f32(logits.shape.clone(), dx)
}
