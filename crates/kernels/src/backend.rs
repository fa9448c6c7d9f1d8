use kiln_core::{Backend, Error, Op, Result};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer};

use crate::{B, activation, binary, layout, loss, matmul, optimizer, reduce, softmax};

/// The GPU backend: every `Op` maps to a WGSL entry point of `shaders/`.
#[derive(Clone)]
pub struct GpuBackend {
    gpu: Gpu,
}

impl GpuBackend {
    pub fn new(gpu: Gpu) -> Self {
        GpuBackend { gpu }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}

impl Backend for GpuBackend {
    type Buffer = GpuBuffer;
    type Kernel = Dispatch;

    fn name(&self) -> String {
        self.gpu.description()
    }

    fn alloc(&self, bytes: u64, label: &str) -> Result<GpuBuffer> {
        self.gpu.alloc(bytes, label)
    }

    fn write(&self, buffer: &GpuBuffer, bytes: &[u8]) -> Result<()> {
        self.gpu.write(buffer, bytes)
    }

    fn prepare(&self, op: &Op, inputs: &[B<'_>], outputs: &[B<'_>]) -> Result<Dispatch> {
        if let Some(t) = inputs.iter().chain(outputs).find(|t| t.shape.numel() > u32::MAX as usize) {
            return Err(Error::attribute(op.name(), format!("tensor {} has more than 2^32 elements", t.shape)));
        }
        let gpu = &self.gpu;
        let (x, out) = (|i: usize| &inputs[i], &outputs[0]);
        match op {
            Op::Input | Op::Variable | Op::Reshape(_) => {
                Err(Error::attribute(op.name(), "has no kernel: the executor handles it"))
            }
            Op::MatMul(m) => matmul::matmul_dispatch(gpu, *m, None, x(0), x(1), out),
            Op::Add | Op::Sub | Op::Mul | Op::Div => binary::binary(gpu, op, x(0), x(1), out),
            Op::Relu | Op::Sigmoid | Op::Tanh => activation::activation(gpu, op, x(0), None, out),
            Op::ReluBackward | Op::SigmoidBackward | Op::TanhBackward => {
                activation::activation(gpu, op, x(0), Some(x(1)), out)
            }
            Op::Sum(r) => reduce::sum(gpu, r, x(0), out),
            Op::BroadcastTo { scale, .. } => layout::broadcast_to(gpu, *scale, x(0), out),
            Op::Transpose(perm) => layout::transpose(gpu, perm, x(0), out),
            Op::Softmax { axis } | Op::LogSoftmax { axis } => softmax::softmax(gpu, op, *axis, x(0), None, out),
            Op::SoftmaxBackward { axis } | Op::LogSoftmaxBackward { axis } => {
                softmax::softmax(gpu, op, *axis, x(0), Some(x(1)), out)
            }
            Op::CrossEntropyPerSample => loss::cross_entropy(gpu, op, x(0), x(1), None, out),
            Op::CrossEntropyPerSampleBackward => loss::cross_entropy(gpu, op, x(0), x(1), Some(x(2)), out),
            Op::SgdStep(s) => optimizer::sgd_step(gpu, s, inputs),
            Op::AdamStep(a) => optimizer::adam_step(gpu, a, inputs),
        }
    }

    fn refresh(&self, kernel: &Dispatch, op: &Op) -> Result<()> {
        // Only Adam's bias corrections change between steps; `n` (the first word) stays.
        if let (Op::AdamStep(a), Some(params)) = (op, &kernel.params) {
            let bytes = optimizer::adam_params(a, 0);
            self.gpu.queue().write_buffer(params, 4, &bytes[4..]);
        }
        Ok(())
    }

    fn run(&self, kernels: &[Dispatch], reads: &[(&GpuBuffer, u64)]) -> Result<Vec<Vec<u8>>> {
        let dispatches: Vec<&Dispatch> = kernels.iter().collect();
        self.gpu.run(&dispatches, reads)
    }
}
