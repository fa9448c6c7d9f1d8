//! Kiln's vocabulary: shapes, the closed set of operators with their shape rules, host tensors,
//! the small `Backend` seam that the CPU and GPU paths implement, and the error type.

mod backend;
mod error;
mod op;
mod shape;
mod tensor;

pub use backend::{Backend, Bound, Scratch, ScratchRequest, Spec, Timing};
pub use error::{Error, Result};
pub use op::{
    Activation, Adagrad, Adam, Conv2d, Dropout, LossKind, LossScale, LrSchedule, MatMul, Noise, Op, Pool2d, PoolKind,
    Precision, Reduce, Rmsprop, Role, RunCounter, Sgd, mix32,
};
pub use shape::{DType, Shape, broadcast_shapes, contiguous_strides};
pub use tensor::{HostTensor, TensorData};

/// Highest tensor rank the kernels index; checked when a graph is built.
pub const MAX_RANK: usize = 8;
