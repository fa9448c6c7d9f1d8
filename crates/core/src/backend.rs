use crate::{DType, Op, Result, Shape};

/// A buffer bound to a kernel, with the shape and dtype of the tensor it holds.
pub struct Bound<'a, B> {
    pub buffer: &'a B,
    pub shape: &'a Shape,
    pub dtype: DType,
}

/// The shape and dtype of a tensor a kernel will be bound to, before any buffer exists.
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    pub shape: &'a Shape,
    pub dtype: DType,
}

impl<'a, B> From<&Bound<'a, B>> for Spec<'a> {
    fn from(bound: &Bound<'a, B>) -> Self {
        Spec { shape: bound.shape, dtype: bound.dtype }
    }
}

/// A scratch buffer a kernel asks for besides its inputs and outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScratchRequest {
    pub bytes: u64,
    /// For a buffer that holds a function of one input alone (a convolution's columns of its
    /// input): that input's position among the op's inputs, and a key naming the function.
    /// The kernels of one program asking for the same key of the same value share one buffer,
    /// which the first of them fills and the others read as it is.
    pub derived_from: Option<(usize, String)>,
}

impl ScratchRequest {
    /// A buffer of `bytes` for this kernel alone.
    pub fn own(bytes: u64) -> Self {
        ScratchRequest { bytes, derived_from: None }
    }

    /// A buffer of `bytes` holding the function `key` of input `input`, shared as described.
    pub fn derived(bytes: u64, input: usize, key: String) -> Self {
        ScratchRequest { bytes, derived_from: Some((input, key)) }
    }
}

/// A scratch buffer as `prepare` receives it.
pub struct Scratch<'a, B> {
    pub buffer: &'a B,
    /// Whether an earlier kernel of the program fills it (a shared request, see
    /// `ScratchRequest::derived_from`) and nothing writes it in between: the kernel reads it.
    pub filled: bool,
}

/// The seam between the graph executor and a device. The closed `Op` enum carries the variety,
/// so the seam stays small: allocate, write, plan and prepare a kernel once, run a step, read.
/// A backend is a handle to its device, cheap to clone.
pub trait Backend: Clone {
    type Buffer;
    /// A kernel bound to its buffers, prepared once and run every step.
    type Kernel;

    /// Human-readable name of the device, for logs and reports.
    fn name(&self) -> String;
    /// The bytes a request for `bytes` actually takes on the device (a pool's size class).
    fn allocation_bytes(&self, bytes: u64) -> u64;
    fn alloc(&self, bytes: u64, label: &str) -> Result<Self::Buffer>;
    /// Device bytes the backend holds for all programs at once, outside any store or plan
    /// (the GPU's texel textures, shared by every texel-fed kernel).
    fn shared_bytes(&self) -> u64;
    fn write(&self, buffer: &Self::Buffer, bytes: &[u8]) -> Result<()>;
    /// The scratch buffers `op`'s kernel needs besides its inputs and outputs (a convolution's
    /// columns, say), in the order `prepare` takes them. The memory plan places them like any
    /// other value, live only while the kernel runs, or where shared (see `ScratchRequest`)
    /// from the first kernel using one to the last.
    fn scratch(&self, op: &Op, inputs: &[Spec<'_>], outputs: &[Spec<'_>]) -> Result<Vec<ScratchRequest>>;
    /// Binds `op` to its inputs, outputs and the scratch buffers `scratch` asked for.
    /// Optimizer updates list their state as outputs, which alias inputs: they update in place.
    fn prepare(
        &self,
        op: &Op,
        inputs: &[Bound<'_, Self::Buffer>],
        outputs: &[Bound<'_, Self::Buffer>],
        scratch: &[Scratch<'_, Self::Buffer>],
    ) -> Result<Self::Kernel>;
    /// Refreshes the per-step attributes of a prepared kernel (the optimizer's step count).
    fn refresh(&self, kernel: &Self::Kernel, op: &Op) -> Result<()>;
    /// Runs `kernels` in order as one submission, then reads back `reads` (buffer, bytes).
    fn run(&self, kernels: &[Self::Kernel], reads: &[(&Self::Buffer, u64)]) -> Result<Vec<Vec<u8>>>;
    /// `run` for a host where nothing may block (a browser's page): submits now, and the
    /// future resolves to the bytes once the device has finished. A backend that computes on
    /// the host as it submits has them at once.
    fn run_async(
        &self,
        kernels: &[Self::Kernel],
        reads: &[(&Self::Buffer, u64)],
    ) -> Result<impl Future<Output = Result<Vec<Vec<u8>>>> + use<Self>> {
        Ok(std::future::ready(self.run(kernels, reads)))
    }
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
