//! The host side of `shaders/`: for each op family a `Params` struct mirroring the WGSL one,
//! one short function per entry point, and `GpuBackend`, which maps every `Op` to its kernel.

mod activation;
mod backend;
mod binary;
mod conv;
mod dropout;
mod embedding;
mod layout;
mod loss;
mod matmul;
mod norm;
mod optimizer;
mod pool;
mod precision;
mod random;
mod reduce;
mod softmax;
mod tune;

pub use backend::GpuBackend;
pub use matmul::{Epilogue, MatmulKernel, MatmulPlan};
pub use tune::TuneMode;

use kiln_core::{Bound, Result};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, PipelineKey, Upload, fold_workgroups};

/// A WGSL file of `shaders/`, embedded at build time, with the entry points the host calls,
/// the host size of each uniform struct it declares, and the adapter features it needs (a
/// module using a feature the device lacks fails to build, so those kernels have modules of
/// their own).
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    pub entry_points: &'static [&'static str],
    pub params: &'static [(&'static str, usize)],
    pub features: wgpu::Features,
}

macro_rules! shader {
    ($module:ident) => {
        Shader {
            name: stringify!($module),
            source: include_str!(concat!("../../../shaders/", stringify!($module), ".wgsl")),
            entry_points: $module::ENTRY_POINTS,
            params: $module::PARAMS,
            features: wgpu::Features::empty(),
        }
    };
}

pub const ACTIVATION: Shader = shader!(activation);
pub const BINARY: Shader = shader!(binary);
pub const CONV: Shader = shader!(conv);
pub const DROPOUT: Shader = shader!(dropout);
pub const EMBEDDING: Shader = shader!(embedding);
pub const LAYOUT: Shader = shader!(layout);
pub const LOSS: Shader = shader!(loss);
pub const MATMUL: Shader = shader!(matmul);
/// matmul.wgsl with the kernels of matmul_lanes.wgsl, which need subgroups, appended.
pub const MATMUL_LANES: Shader = Shader {
    name: "matmul_lanes",
    source: concat!(include_str!("../../../shaders/matmul.wgsl"), include_str!("../../../shaders/matmul_lanes.wgsl")),
    entry_points: &matmul::LANES_ENTRY_POINTS,
    params: matmul::PARAMS,
    features: wgpu::Features::SUBGROUP,
};
pub const NORM: Shader = shader!(norm);
pub const OPTIMIZER: Shader = shader!(optimizer);
pub const POOL: Shader = shader!(pool);
pub const PRECISION: Shader = shader!(precision);
pub const RANDOM: Shader = shader!(random);
pub const REDUCE: Shader = shader!(reduce);
pub const SOFTMAX: Shader = shader!(softmax);

/// Every shader.
pub const SHADERS: &[Shader] = &[
    ACTIVATION,
    BINARY,
    CONV,
    DROPOUT,
    EMBEDDING,
    LAYOUT,
    LOSS,
    MATMUL,
    MATMUL_LANES,
    NORM,
    OPTIMIZER,
    POOL,
    PRECISION,
    RANDOM,
    REDUCE,
    SOFTMAX,
];

/// Everything one dispatch needs, gathered by the per-op functions.
pub(crate) struct Launch<'a> {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub params: &'a [u8],
    pub bindings: Vec<(u32, &'a GpuBuffer)>,
    pub workgroups: [u32; 3],
}

impl Launch<'_> {
    pub(crate) fn build(self, gpu: &Gpu) -> Result<Dispatch> {
        self.build_with_texels(gpu, vec![])
    }

    /// The dispatch, binding besides its buffers the texture views of `texels` (slot,
    /// upload that fills the texture first, view).
    pub(crate) fn build_with_texels(
        self,
        gpu: &Gpu,
        texels: Vec<(u32, Upload, wgpu::TextureView)>,
    ) -> Result<Dispatch> {
        let missing = self.shader.features - gpu.device().features();
        if !missing.is_empty() {
            return Err(kiln_core::Error::Unsupported(format!(
                "{} (shaders/{}.wgsl) needs the adapter feature {missing:?}, which {} lacks",
                self.entry,
                self.shader.name,
                gpu.info().name
            )));
        }
        let constants = self.constants.iter().map(|&(k, v)| (k, v.to_bits())).collect();
        let key = PipelineKey { shader: self.shader.name, entry: self.entry, constants };
        let pipeline = gpu.pipeline(&key, self.shader.source)?;
        let params = gpu.uniform(self.params, self.entry);
        let mut entries = vec![(0, params.as_entire_binding())];
        entries.extend(self.bindings.iter().map(|&(slot, b)| (slot, b.raw().as_entire_binding())));
        entries.extend(texels.iter().map(|(slot, _, view)| (*slot, wgpu::BindingResource::TextureView(view))));
        let bind_group = gpu.bind_group(&pipeline, &entries, self.entry)?;
        Ok(Dispatch {
            label: self.entry.into(),
            pipeline,
            bind_group,
            workgroups: self.workgroups,
            params: Some(params),
            uploads: texels.into_iter().map(|(_, upload, _)| upload).collect(),
        })
    }
}

/// Grid for `n` invocations of a 64-wide 1-D kernel, folded over y past the per-axis limit.
pub(crate) fn grid_1d(gpu: &Gpu, n: usize) -> [u32; 3] {
    fold_workgroups((n as u32).div_ceil(64), gpu.limits().max_compute_workgroups_per_dimension)
}

/// Passes kept back from an adapter's loop limit for the short fixed loops every kernel may
/// also run (over a tensor's rank, over a 4×4 block, a tree of 64 partial sums).
const LOOP_MARGIN: usize = 256;

/// The loop passes an invocation may take on this adapter, all its loops together; `None`
/// where there is no limit. Mesa's CPU drivers (lavapipe, llvmpipe) count one pass per loop
/// iteration plus one per loop entered (the test that leaves it), over every loop of an
/// invocation, and end every loop once 65,535 are spent, carrying on with a wrong result.
pub(crate) fn loop_budget(gpu: &Gpu) -> Option<usize> {
    gpu.loop_limit().map(|limit| limit - LOOP_MARGIN)
}

/// Refuses a kernel whose invocations would take `passes` loop passes (each loop's iterations
/// plus one, summed) past the adapter's budget, naming the op and the shapes, rather than
/// return a truncated result. Kernels whose loops follow a size split that size first (long K,
/// long rows); this is the guard behind them.
pub(crate) fn check_loops(gpu: &Gpu, op: &str, passes: usize, shapes: &[&kiln_core::Shape]) -> Result<()> {
    match loop_budget(gpu) {
        Some(budget) if passes > budget => {
            let shapes: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
            Err(kiln_core::Error::Unsupported(format!(
                "{op} on {}: its kernel would loop {passes} times per invocation, past this adapter's budget of {budget} \
                 (Mesa's CPU drivers end shader loops there); use smaller tensors or a GPU",
                shapes.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

/// Packs up to 8 dims into the WGSL `array<vec4u, 2>` layout.
pub(crate) fn pack8(values: &[usize]) -> [u32; 8] {
    let mut packed = [0u32; 8];
    for (slot, &v) in packed.iter_mut().zip(values) {
        *slot = v as u32;
    }
    packed
}

pub(crate) type B<'a> = Bound<'a, GpuBuffer>;

/// A prepared op: its dispatches in order. Scratch buffers belong to the memory plan, which
/// shares them between kernels never live at once.
pub struct GpuKernel {
    pub dispatches: Vec<Dispatch>,
}

impl From<Dispatch> for GpuKernel {
    fn from(dispatch: Dispatch) -> Self {
        GpuKernel { dispatches: vec![dispatch] }
    }
}

impl GpuKernel {
    pub(crate) fn new(dispatches: Vec<Dispatch>) -> Self {
        GpuKernel { dispatches }
    }

    /// This kernel's dispatches, then `next`'s.
    pub(crate) fn then(mut self, next: impl Into<GpuKernel>) -> Self {
        self.dispatches.extend(next.into().dispatches);
        self
    }
}

/// The scratch buffer a kernel was given, checked to hold `bytes`: the plan and the kernel
/// must agree on what a kernel needs, or it would write past a buffer it shares.
pub(crate) fn fits<'a>(buffer: Option<&'a GpuBuffer>, bytes: u64, what: &str) -> Result<&'a GpuBuffer> {
    match buffer {
        Some(buffer) if buffer.size() >= bytes => Ok(buffer),
        Some(buffer) => Err(kiln_core::Error::data(
            what,
            format!("a {}-byte scratch buffer was planned where {bytes} bytes are needed", buffer.size()),
        )),
        None => Err(kiln_core::Error::data(what, "no scratch buffer was planned for it")),
    }
}
