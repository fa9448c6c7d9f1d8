use kiln_core::{Adam, HostTensor, Result, Sgd, Shape};

/// PyTorch SGD: `g = grad + wd·p`, `buf = μ·buf + g`, `p = p - lr·buf` (dampening 0).
pub fn sgd_step(s: &Sgd, param: &[f32], grad: &[f32], buf: &[f32], shape: &Shape) -> Result<Vec<HostTensor>> {
    let (mut p, mut b) = (Vec::with_capacity(param.len()), Vec::with_capacity(param.len()));
    for ((&w, &g), &m) in param.iter().zip(grad).zip(buf) {
        let (w, m) = (w as f64, m as f64);
        let g = g as f64 + s.weight_decay as f64 * w;
        let m = s.momentum as f64 * m + g;
        b.push(m as f32);
        p.push((w - s.lr as f64 * m) as f32);
    }
    Ok(vec![HostTensor::f32(shape.clone(), p)?, HostTensor::f32(shape.clone(), b)?])
}

/// PyTorch Adam with L2 weight decay and bias correction at 1-based `step`.
pub fn adam_step(a: &Adam, [param, grad, m, v]: [&[f32]; 4], shape: &Shape) -> Result<Vec<HostTensor>> {
    let (b1, b2, t) = (a.beta1 as f64, a.beta2 as f64, a.step as i32);
    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let n = param.len();
    let (mut p_out, mut m_out, mut v_out) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let w = param[i] as f64;
        let g = grad[i] as f64 + a.weight_decay as f64 * w;
        let mi = b1 * m[i] as f64 + (1.0 - b1) * g;
        let vi = b2 * v[i] as f64 + (1.0 - b2) * g * g;
        let update = a.lr as f64 * (mi / c1) / ((vi / c2).sqrt() + a.eps as f64);
        p_out.push((w - update) as f32);
        m_out.push(mi as f32);
        v_out.push(vi as f32);
    }
    [p_out, m_out, v_out].into_iter().map(|d| HostTensor::f32(shape.clone(), d)).collect()
}
