//! Kiln: a deep-learning compute engine on WebGPU. This facade re-exports the crates and holds
//! what the `kiln` command line shares with tests: golden-case checking and model training.

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod diverge;
pub mod files;
pub mod golden;
pub mod models;
pub mod ops;
pub mod plot;
pub mod predict;
pub mod profile;
pub mod support;
pub mod train;

pub use kiln_core as core;
pub use kiln_cpu as cpu;
pub use kiln_gpu as gpu;
pub use kiln_graph as graph;
pub use kiln_kernels as kernels;
pub use kiln_nn as nn;
