//! Kiln: a deep-learning compute engine on WebGPU. This facade re-exports the crates (the
//! library a host application uses is `kiln::nn` over `kiln::graph`), holds the developer's
//! tools (golden-case checking from `kiln-golden`, the divergence finder, benchmarks, the profiler, the operator
//! matrix), and the command line's own module tree (`cli`).

pub mod bench;
pub mod check;
pub mod cli;
pub mod diverge;
pub mod profile;
pub mod support;

pub use kiln_golden::{golden, ops};

pub use kiln_core as core;
pub use kiln_cpu as cpu;
pub use kiln_gpu as gpu;
pub use kiln_graph as graph;
pub use kiln_kernels as kernels;
pub use kiln_nn as nn;
