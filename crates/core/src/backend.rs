use crate::{DType, Op, Result, Shape};

/// A buffer bound to a kernel, with the shape and dtype of the tensor it holds.
pub struct Bound<'a, B> {
    pub buffer: &'a B,
    pub shape: &'a Shape,
    pub dtype: DType,
}

/// The seam between the graph executor and a device. The closed `Op` enum carries the variety,
/// so the seam stays small: allocate, write, prepare a kernel once, run a step, read.
pub trait Backend {
    type Buffer;
    /// A kernel bound to its buffers, prepared once and run every step.
    type Kernel;

    /// Human-readable name of the device, for logs and reports.
    fn name(&self) -> String;
    fn alloc(&self, bytes: u64, label: &str) -> Result<Self::Buffer>;
    fn write(&self, buffer: &Self::Buffer, bytes: &[u8]) -> Result<()>;
    /// Binds `op` to its inputs and outputs. Optimizer updates list their state as outputs,
    /// which alias inputs: they update in place.
    fn prepare(
        &self,
        op: &Op,
        inputs: &[Bound<'_, Self::Buffer>],
        outputs: &[Bound<'_, Self::Buffer>],
    ) -> Result<Self::Kernel>;
    /// Refreshes the per-step attributes of a prepared kernel (the optimizer's step count).
    fn refresh(&self, kernel: &Self::Kernel, op: &Op) -> Result<()>;
    /// Runs `kernels` in order as one submission, then reads back `reads` (buffer, bytes).
    fn run(&self, kernels: &[Self::Kernel], reads: &[(&Self::Buffer, u64)]) -> Result<Vec<Vec<u8>>>;
    /// Runs `kernels` once, timing each dispatch.
    fn profile(&self, kernels: &[Self::Kernel]) -> Result<Timing>;
}

/// A step run with every dispatch timed.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Per kernel, in order: each of its dispatches' label and seconds.
    pub kernels: Vec<Vec<(String, f64)>>,
    /// How the times were taken, e.g. "GPU timestamps (1 ns per tick)".
    pub timer: String,
    /// Host wall-clock of the whole step.
    pub wall_seconds: f64,
}
