//! Kiln's datasets — an IDX reader (the MNIST family's format, raw or gzip) and Fashion-MNIST
//! — and optimizers as graph rewrites over a parameter store.

pub mod dataset;
pub mod idx;
pub mod optim;

pub use dataset::{DEFAULT_DIR, Dataset, FashionMnist, shuffled_indices};
pub use idx::{IdxArray, IdxError, read_idx};
pub use optim::{GradientSink, Optimizer, ParamGroup, apply_gradients, gradient_name, minimize, store_gradients};
