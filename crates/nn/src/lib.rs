//! Kiln's datasets: an IDX reader (the MNIST family's format, raw or gzip) and Fashion-MNIST.

pub mod dataset;
pub mod idx;

pub use dataset::{DEFAULT_DIR, Dataset, FashionMnist, shuffled_indices};
pub use idx::{IdxArray, IdxError, read_idx};
