use kiln_core::{Backend, Error, Op, Result, Scratch, ScratchRequest, Shape, Spec, Timing};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, Timer, size_class};

use crate::conv::ConvOp;
use crate::loss::PerSample;
use crate::norm::NormOp;
use crate::optimizer::Update;
use crate::softmax::SoftmaxOp;
use crate::{
    B, Epilogue, GpuKernel, MatmulPlan, activation, binary, conv, dropout, embedding, layout, loss, norm, optimizer,
    pool, precision, random, reduce, softmax,
};

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
    type Kernel = GpuKernel;

    fn name(&self) -> String {
        self.gpu.description()
    }

    fn allocation_bytes(&self, bytes: u64) -> u64 {
        size_class(bytes)
    }

    fn shared_bytes(&self) -> u64 {
        self.gpu.texel_bytes()
    }

    fn alloc(&self, bytes: u64, label: &str) -> Result<GpuBuffer> {
        self.gpu.alloc(bytes, label)
    }

    fn write(&self, buffer: &GpuBuffer, bytes: &[u8]) -> Result<()> {
        self.gpu.write(buffer, bytes)
    }

    fn scratch(&self, op: &Op, inputs: &[Spec<'_>], outputs: &[Spec<'_>]) -> Result<Vec<ScratchRequest>> {
        let gpu = &self.gpu;
        let shapes: Vec<&Shape> = inputs.iter().map(|s| s.shape).collect();
        let out = outputs.first().map(|s| s.shape);
        // The convolutions' columns may be shared (see `conv::scratch`); every other buffer is
        // the kernel's own.
        let conv = |conv: ConvOp<'_>| match out {
            Some(out) => conv::scratch(gpu, conv, &shapes, out),
            None => Ok(vec![]),
        };
        let bytes: Vec<u64> = match op {
            Op::MatMul(m) | Op::Linear { matmul: m, .. } | Op::MatMulReluBackward(m) => match out {
                Some(y) => {
                    MatmulPlan::new(gpu, *m, None, shapes[0], shapes[1], y)?.scratch_bytes().into_iter().collect()
                }
                None => vec![],
            },
            Op::Conv2d(c) | Op::Conv2dRelu(c) => return conv(ConvOp::Forward(c)),
            Op::Conv2dBackwardInput { conv: c, .. } => return conv(ConvOp::BackwardInput(c)),
            Op::Conv2dBackwardWeight { conv: c, .. } => return conv(ConvOp::BackwardWeight(c)),
            Op::ConvTranspose2d { conv: c, .. } => return conv(ConvOp::Transpose(c)),
            Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. } => norm::scratch(norm_op(op)?, shapes[0]),
            Op::Sum(r) => reduce::scratch(gpu, "sum", r, shapes[0], out.map_or(1, Shape::numel)),
            Op::Max(r) => reduce::scratch(gpu, "max_forward", r, shapes[0], out.map_or(1, Shape::numel)),
            Op::MaxBackward(r) => reduce::scratch(gpu, "max_backward", r, shapes[0], shapes[1].numel()),
            Op::Softmax { axis } => softmax::scratch(gpu, SoftmaxOp::Softmax, *axis, shapes[0]),
            Op::LogSoftmax { axis } => softmax::scratch(gpu, SoftmaxOp::LogSoftmax, *axis, shapes[0]),
            Op::SoftmaxBackward { axis } => softmax::scratch(gpu, SoftmaxOp::SoftmaxBackward, *axis, shapes[0]),
            Op::LogSoftmaxBackward { axis } => softmax::scratch(gpu, SoftmaxOp::LogSoftmaxBackward, *axis, shapes[0]),
            Op::CrossEntropyPerSample => loss::scratch(gpu, PerSample::CrossEntropy, shapes[0]),
            Op::CrossEntropyPerSampleBackward => loss::scratch(gpu, PerSample::CrossEntropyBackward, shapes[0]),
            Op::Input
            | Op::Variable
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::BroadcastTo { .. }
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::NllPerSample
            | Op::NllPerSampleBackward
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::Dropout(_)
            | Op::DropoutBackward(_)
            | Op::RandomNormal { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. }
            | Op::LossScaleUpdate(_)
            | Op::SgdStep(_)
            | Op::AdamStep(_)
            | Op::AdagradStep(_)
            | Op::RmspropStep(_)
            | Op::Assign => vec![],
        };
        Ok(bytes.into_iter().map(ScratchRequest::own).collect())
    }

    fn prepare(
        &self,
        op: &Op,
        inputs: &[B<'_>],
        outputs: &[B<'_>],
        requested: &[Scratch<'_, GpuBuffer>],
    ) -> Result<GpuKernel> {
        if let Some(t) = inputs.iter().chain(outputs).find(|t| t.shape.numel() > u32::MAX as usize) {
            return Err(Error::attribute(op.name(), format!("tensor {} has more than 2^32 elements", t.shape)));
        }
        let scratch: &[&GpuBuffer] = &requested.iter().map(|s| s.buffer).collect::<Vec<_>>();
        // A convolution's columns come first among its scratch (see conv::scratch).
        let columns_filled = requested.first().is_some_and(|s| s.filled);
        let gpu = &self.gpu;
        let (x, out) = (|i: usize| &inputs[i], &outputs[0]);
        let single = |d: Result<Dispatch>| d.map(GpuKernel::from);
        match op {
            Op::Input | Op::Variable | Op::Reshape(_) => {
                Err(Error::attribute(op.name(), "has no kernel: the executor handles it"))
            }
            Op::MatMul(m) => {
                let plan = MatmulPlan::new(gpu, *m, None, x(0).shape, x(1).shape, out.shape)?;
                plan.kernel(gpu, x(0), x(1), out, scratch.first().copied())
            }
            Op::Linear { matmul, relu } => {
                let plan = MatmulPlan::new(gpu, *matmul, None, x(0).shape, x(1).shape, out.shape)?;
                let epilogue = Epilogue { bias: Some(x(2)), relu: *relu, ..Epilogue::default() };
                plan.kernel_with(gpu, x(0), x(1), out, scratch.first().copied(), epilogue)
            }
            Op::MatMulReluBackward(m) => {
                let plan = MatmulPlan::new(gpu, *m, None, x(0).shape, x(1).shape, out.shape)?;
                let epilogue = Epilogue { relu_mask: Some(x(2)), ..Epilogue::default() };
                plan.kernel_with(gpu, x(0), x(1), out, scratch.first().copied(), epilogue)
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div => single(binary::binary(gpu, op, x(0), x(1), out)),
            Op::Activation(a) => single(activation::activation(gpu, a, x(0), None, out)),
            Op::ActivationBackward(a) => single(activation::activation(gpu, a, x(0), Some(x(1)), out)),
            Op::Prelu => single(activation::prelu(gpu, x(0), x(1), out)),
            Op::PreluBackwardInput => single(activation::prelu_backward_input(gpu, x(0), x(1), x(2), out)),
            Op::PreluBackwardAlpha => single(activation::prelu_backward_alpha(gpu, x(0), x(1), out)),
            Op::Sum(r) => reduce::sum(gpu, r, x(0), out, scratch),
            Op::Max(r) => reduce::max(gpu, r, x(0), out, scratch),
            Op::MaxBackward(r) => reduce::max_backward(gpu, r, [x(0), x(1), x(2)], out, scratch),
            Op::BroadcastTo { scale, .. } => single(layout::broadcast_to(gpu, *scale, x(0), out)),
            Op::Transpose(perm) => single(layout::transpose(gpu, perm, x(0), out)),
            Op::Slice { axis, start, .. } => single(layout::slice(gpu, *axis, *start, x(0), out)),
            Op::SliceBackward { axis, start, .. } => single(layout::slice_backward(gpu, *axis, *start, x(0), out)),
            Op::Concat { axis } => layout::concat(gpu, *axis, inputs, out).map(GpuKernel::new),
            Op::Softmax { axis } => softmax::softmax(gpu, SoftmaxOp::Softmax, *axis, x(0), None, out, scratch),
            Op::LogSoftmax { axis } => softmax::softmax(gpu, SoftmaxOp::LogSoftmax, *axis, x(0), None, out, scratch),
            Op::SoftmaxBackward { axis } => {
                softmax::softmax(gpu, SoftmaxOp::SoftmaxBackward, *axis, x(0), Some(x(1)), out, scratch)
            }
            Op::LogSoftmaxBackward { axis } => {
                softmax::softmax(gpu, SoftmaxOp::LogSoftmaxBackward, *axis, x(0), Some(x(1)), out, scratch)
            }
            Op::CrossEntropyPerSample => {
                loss::per_sample(gpu, PerSample::CrossEntropy, [x(0), x(1)], None, out, scratch)
            }
            Op::CrossEntropyPerSampleBackward => {
                loss::per_sample(gpu, PerSample::CrossEntropyBackward, [x(0), x(1)], Some(x(2)), out, scratch)
            }
            Op::NllPerSample => loss::per_sample(gpu, PerSample::Nll, [x(0), x(1)], None, out, scratch),
            Op::NllPerSampleBackward => {
                loss::per_sample(gpu, PerSample::NllBackward, [x(0), x(1)], Some(x(2)), out, scratch)
            }
            Op::Loss(kind) => single(loss::elementwise(gpu, op.name(), *kind, x(0), x(1), None, out)),
            Op::LossBackward { kind, .. } => {
                single(loss::elementwise(gpu, op.name(), *kind, x(0), x(1), Some(x(2)), out))
            }
            Op::Conv2d(c) => conv::conv2d(gpu, c, false, [x(0), x(1)], inputs.get(2), out, scratch, columns_filled),
            Op::Conv2dRelu(c) => conv::conv2d(gpu, c, true, [x(0), x(1)], inputs.get(2), out, scratch, columns_filled),
            Op::Conv2dBackwardInput { conv, .. } => conv::conv2d_backward_input(gpu, conv, [x(0), x(1)], out, scratch),
            Op::Conv2dBackwardWeight { conv, .. } => {
                conv::conv2d_backward_weight(gpu, conv, [x(0), x(1)], out, scratch, columns_filled)
            }
            Op::ConvTranspose2d { conv, .. } => {
                conv::conv_transpose2d(gpu, conv, [x(0), x(1)], inputs.get(2), out, scratch)
            }
            Op::Pool2d(p) => single(pool::pool2d(gpu, p, x(0), out)),
            Op::Pool2dBackward(p) => single(pool::pool2d_backward(gpu, p, false, x(0), x(1), x(2), out)),
            Op::Pool2dBackwardRelu(p) => single(pool::pool2d_backward(gpu, p, true, x(0), x(1), x(2), out)),
            Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. } => norm::norm(gpu, norm_op(op)?, inputs, out, scratch),
            Op::Dropout(d) | Op::DropoutBackward(d) => single(dropout::dropout(gpu, op.name(), d, x(0), out)),
            Op::RandomNormal { noise, .. } => single(random::random_normal(gpu, noise, out)),
            Op::Embedding => single(embedding::embedding(gpu, "embedding", x(0), x(1), x(0).shape.dims()[0], out)),
            Op::EmbeddingBackward { vocab } => {
                single(embedding::embedding(gpu, "embedding_backward", x(1), x(0), *vocab, out))
            }
            Op::ClipFactor { max_norm } => single(optimizer::clip_factor(gpu, *max_norm, x(0), out)),
            Op::RoundHalf => single(precision::round_half(gpu, x(0), out)),
            Op::LossScaleFactor { max_norm } => single(precision::loss_scale_factor(gpu, *max_norm, x(0), x(1), out)),
            Op::LossScaleUpdate(l) => single(precision::loss_scale_update(gpu, l, [x(0), x(1), x(2)])),
            Op::SgdStep(s) => single(optimizer::update(gpu, Update::Sgd(s), 1, inputs)),
            Op::AdamStep(a) => single(optimizer::update(gpu, Update::Adam(a), 2, inputs)),
            Op::AdagradStep(a) => single(optimizer::update(gpu, Update::Adagrad(a), 1, inputs)),
            Op::RmspropStep(r) => single(optimizer::update(gpu, Update::Rmsprop(r), 1, inputs)),
            Op::Assign => single(layout::assign(gpu, x(0), x(1))),
        }
    }

    fn refresh(&self, kernel: &GpuKernel, op: &Op) -> Result<()> {
        // Only attributes past the first word (the element count) change between runs.
        let bytes = match op {
            Op::Dropout(d) | Op::DropoutBackward(d) => dropout::params(d, 0),
            Op::RandomNormal { noise, .. } => random::params(noise, 0),
            Op::SgdStep(s) => optimizer::params(Update::Sgd(s), 0),
            Op::AdamStep(a) => optimizer::params(Update::Adam(a), 0),
            Op::AdagradStep(a) => optimizer::params(Update::Adagrad(a), 0),
            Op::RmspropStep(r) => optimizer::params(Update::Rmsprop(r), 0),
            Op::Input
            | Op::Variable
            | Op::MatMul(_)
            | Op::Linear { .. }
            | Op::MatMulReluBackward(_)
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Activation(_)
            | Op::ActivationBackward(_)
            | Op::Prelu
            | Op::PreluBackwardInput
            | Op::PreluBackwardAlpha
            | Op::Sum(_)
            | Op::Max(_)
            | Op::MaxBackward(_)
            | Op::BroadcastTo { .. }
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Slice { .. }
            | Op::SliceBackward { .. }
            | Op::Concat { .. }
            | Op::Softmax { .. }
            | Op::SoftmaxBackward { .. }
            | Op::LogSoftmax { .. }
            | Op::LogSoftmaxBackward { .. }
            | Op::CrossEntropyPerSample
            | Op::CrossEntropyPerSampleBackward
            | Op::NllPerSample
            | Op::NllPerSampleBackward
            | Op::Loss(_)
            | Op::LossBackward { .. }
            | Op::Conv2d(_)
            | Op::Conv2dRelu(_)
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::ConvTranspose2d { .. }
            | Op::Pool2d(_)
            | Op::Pool2dBackward(_)
            | Op::Pool2dBackwardRelu(_)
            | Op::BatchNormStats
            | Op::BatchNorm { .. }
            | Op::BatchNormBackwardReduce { .. }
            | Op::BatchNormBackwardInput { .. }
            | Op::BatchNormRunningUpdate { .. }
            | Op::LayerNormStats
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardParams { .. }
            | Op::Embedding
            | Op::EmbeddingBackward { .. }
            | Op::ClipFactor { .. }
            | Op::RoundHalf
            | Op::LossScaleFactor { .. }
            | Op::LossScaleUpdate(_)
            | Op::Assign => return Err(Error::attribute(op.name(), "has no attributes that change between runs")),
        };
        let params = kernel.dispatches.first().and_then(|d| d.params.as_ref());
        if let Some(params) = params {
            self.gpu.queue().write_buffer(params, 4, &bytes[4..]);
        }
        Ok(())
    }

    fn profile(&self, kernels: &[GpuKernel]) -> Result<Timing> {
        let dispatches: Vec<&Dispatch> = kernels.iter().flat_map(|k| &k.dispatches).collect();
        let profile = self.gpu.profile(&dispatches)?;
        let mut seconds = profile.seconds.into_iter();
        let timed = kernels
            .iter()
            .map(|k| k.dispatches.iter().map(|d| (d.label.clone(), seconds.next().unwrap_or(0.0))).collect())
            .collect();
        let timer = match profile.timer {
            Timer::Timestamps { period_ns } => format!("GPU timestamps ({period_ns} ns per tick)"),
            Timer::WallClock => "host wall-clock of the submission, shared evenly (no timestamp support)".into(),
        };
        Ok(Timing { kernels: timed, timer, wall_seconds: profile.wall_seconds })
    }

    fn run(&self, kernels: &[GpuKernel], reads: &[(&GpuBuffer, u64)]) -> Result<Vec<Vec<u8>>> {
        let dispatches: Vec<&Dispatch> = kernels.iter().flat_map(|k| &k.dispatches).collect();
        self.gpu.run(&dispatches, reads)
    }

    fn run_async(
        &self,
        kernels: &[GpuKernel],
        reads: &[(&GpuBuffer, u64)],
    ) -> Result<impl Future<Output = Result<Vec<Vec<u8>>>> + use<>> {
        let dispatches: Vec<&Dispatch> = kernels.iter().flat_map(|k| &k.dispatches).collect();
        self.gpu.run_async(&dispatches, reads)
    }
}

/// The normalisation family's own view of `op`.
fn norm_op(op: &Op) -> Result<NormOp> {
    Ok(match *op {
        Op::BatchNormStats => NormOp::BatchNormStats,
        Op::BatchNorm { eps } => NormOp::BatchNorm { eps },
        Op::BatchNormBackwardReduce { eps } => NormOp::BatchNormBackwardReduce { eps },
        Op::BatchNormBackwardInput { eps, training } => NormOp::BatchNormBackwardInput { eps, training },
        Op::BatchNormRunningUpdate { momentum, count } => NormOp::BatchNormRunningUpdate { momentum, count },
        Op::LayerNormStats => NormOp::LayerNormStats,
        Op::LayerNorm { eps } => NormOp::LayerNorm { eps },
        Op::LayerNormBackwardInput { eps } => NormOp::LayerNormBackwardInput { eps },
        Op::LayerNormBackwardParams { eps } => NormOp::LayerNormBackwardParams { eps },
        Op::Input
        | Op::Variable
        | Op::MatMul(_)
        | Op::Linear { .. }
        | Op::MatMulReluBackward(_)
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Activation(_)
        | Op::ActivationBackward(_)
        | Op::Prelu
        | Op::PreluBackwardInput
        | Op::PreluBackwardAlpha
        | Op::Sum(_)
        | Op::Max(_)
        | Op::MaxBackward(_)
        | Op::BroadcastTo { .. }
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Slice { .. }
        | Op::SliceBackward { .. }
        | Op::Concat { .. }
        | Op::Softmax { .. }
        | Op::SoftmaxBackward { .. }
        | Op::LogSoftmax { .. }
        | Op::LogSoftmaxBackward { .. }
        | Op::CrossEntropyPerSample
        | Op::CrossEntropyPerSampleBackward
        | Op::NllPerSample
        | Op::NllPerSampleBackward
        | Op::Loss(_)
        | Op::LossBackward { .. }
        | Op::Conv2d(_)
        | Op::Conv2dRelu(_)
        | Op::Conv2dBackwardInput { .. }
        | Op::Conv2dBackwardWeight { .. }
        | Op::ConvTranspose2d { .. }
        | Op::Pool2d(_)
        | Op::Pool2dBackward(_)
        | Op::Pool2dBackwardRelu(_)
        | Op::Dropout(_)
        | Op::DropoutBackward(_)
        | Op::RandomNormal { .. }
        | Op::Embedding
        | Op::EmbeddingBackward { .. }
        | Op::ClipFactor { .. }
        | Op::RoundHalf
        | Op::LossScaleFactor { .. }
        | Op::LossScaleUpdate(_)
        | Op::SgdStep(_)
        | Op::AdamStep(_)
        | Op::AdagradStep(_)
        | Op::RmspropStep(_)
        | Op::Assign => return Err(Error::attribute(op.name(), "is not a normalisation")),
    })
}
