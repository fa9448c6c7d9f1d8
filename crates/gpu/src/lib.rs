//! Kiln's device and buffer manager. It picks an adapter, owns pooled buffers, caches
//! pipelines, records dispatches, reads results back with a deadline, and turns every wgpu
//! validation, out-of-memory and device-lost event into a `kiln_core::Error`. It knows nothing
//! of operators.

mod adapter;
mod context;
mod dispatch;
mod dump;
mod errors;
mod pool;
mod profile;
mod readback;
mod texels;

pub use adapter::{AdapterChoice, describe};
pub use context::{Gpu, PipelineKey, timeout_from_env};
pub use dispatch::{Dispatch, fold_workgroups};
pub use pool::{GpuBuffer, size_class};
pub use profile::{Profile, Timer};
pub use readback::Readback;
pub use texels::{TEXELS_PER_ROW, Upload};
