use kiln_core::{DType, Error, HostTensor, Result, Shape};

/// A tensor on the reference path: every element as f64. Labels and token ids are integers
/// and exact in f64, so one element type serves every op, and the whole graph can run in f64
/// (gradient checks) or round to f32 between ops (the CPU backend).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(shape: impl Into<Shape>, data: Vec<f64>) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape("tensor", "element count does not match shape", shape.numel(), data.len()));
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        Tensor { data: vec![0.0; shape.numel()], shape }
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn from_host(t: &HostTensor) -> Self {
        let data = match &t.data {
            kiln_core::TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            kiln_core::TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        };
        Tensor { shape: t.shape.clone(), data }
    }

    /// Rounds to a host tensor of `dtype`.
    pub fn to_host(&self, dtype: DType) -> Result<HostTensor> {
        match dtype {
            DType::F32 => HostTensor::f32(self.shape.clone(), self.data.iter().map(|&x| x as f32).collect()),
            DType::I32 => HostTensor::i32(self.shape.clone(), self.data.iter().map(|&x| x as i32).collect()),
        }
    }

    /// The elements as indices below `bound`, or an error naming `op` and the bad value, as
    /// in "label 3 out of range for 3 classes" (`what` = label, `of` = classes).
    pub fn indices(&self, op: &str, what: &str, bound: usize, of: &str) -> Result<Vec<usize>> {
        self.data
            .iter()
            .map(|&v| {
                if v >= 0.0 && v < bound as f64 && v.fract() == 0.0 {
                    Ok(v as usize)
                } else {
                    Err(Error::attribute(op, format!("{what} {v} out of range for {bound} {of}")))
                }
            })
            .collect()
    }
}

/// Splits a shape around `axis` into (outer, length, inner).
pub fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// Visits every multi-index of `dims` in row-major order.
pub fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    let total: usize = dims.iter().product();
    let mut index = vec![0usize; dims.len()];
    for _ in 0..total {
        f(&index);
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
}
