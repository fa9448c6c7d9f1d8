use crate::{DType, Error, Result, Shape};

/// Element storage of a host tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

/// A tensor in host memory: what callers feed and read, and what the CPU path computes on.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Shape,
    pub data: TensorData,
}

impl HostTensor {
    pub fn f32(shape: impl Into<Shape>, data: Vec<f32>) -> Result<Self> {
        Self::new(shape.into(), TensorData::F32(data))
    }

    pub fn i32(shape: impl Into<Shape>, data: Vec<i32>) -> Result<Self> {
        Self::new(shape.into(), TensorData::I32(data))
    }

    pub fn zeros(shape: Shape, dtype: DType) -> Self {
        let n = shape.numel();
        let data = match dtype {
            DType::F32 => TensorData::F32(vec![0.0; n]),
            DType::I32 => TensorData::I32(vec![0; n]),
        };
        HostTensor { shape, data }
    }

    fn new(shape: Shape, data: TensorData) -> Result<Self> {
        let len = match &data {
            TensorData::F32(v) => v.len(),
            TensorData::I32(v) => v.len(),
        };
        if len != shape.numel() {
            return Err(Error::shape("tensor", "element count does not match shape", shape.numel(), len));
        }
        Ok(HostTensor { shape, data })
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I32(_) => DType::I32,
        }
    }

    /// The float elements, or an error naming the tensor's actual dtype.
    pub fn as_f32(&self) -> Result<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Ok(v),
            TensorData::I32(_) => Err(Error::data("tensor", "expected f32 data, found i32")),
        }
    }

    pub fn as_i32(&self) -> Result<&[i32]> {
        match &self.data {
            TensorData::I32(v) => Ok(v),
            TensorData::F32(_) => Err(Error::data("tensor", "expected i32 data, found f32")),
        }
    }

    /// Raw little-endian bytes, as uploaded to a device buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    pub fn from_bytes(shape: Shape, dtype: DType, bytes: &[u8]) -> Result<Self> {
        let words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
        let data = match dtype {
            DType::F32 => TensorData::F32(words.map(f32::from_le_bytes).collect()),
            DType::I32 => TensorData::I32(words.map(i32::from_le_bytes).collect()),
        };
        Self::new(shape, data)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
}
