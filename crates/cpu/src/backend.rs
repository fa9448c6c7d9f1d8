use std::cell::RefCell;
use std::rc::Rc;

use std::time::Instant;

use kiln_core::{Backend, Bound, DType, Error, HostTensor, Op, Result, Scratch, ScratchRequest, Shape, Spec, Timing};

use crate::Tensor;

/// The CPU backend: buffers are host byte vectors holding f32 (as a device's would), kernels
/// are the reference functions evaluated in f64.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

pub type CpuBuffer = Rc<RefCell<Vec<u8>>>;

type Slot = (CpuBuffer, Shape, DType);

pub struct CpuKernel {
    op: RefCell<Op>,
    inputs: Vec<Slot>,
    outputs: Vec<CpuBuffer>,
}

fn slot(bound: &Bound<'_, CpuBuffer>) -> Slot {
    (bound.buffer.clone(), bound.shape.clone(), bound.dtype)
}

impl Backend for Cpu {
    type Buffer = CpuBuffer;
    type Kernel = CpuKernel;

    fn name(&self) -> String {
        "cpu (reference)".into()
    }

    fn allocation_bytes(&self, bytes: u64) -> u64 {
        bytes
    }

    fn shared_bytes(&self) -> u64 {
        0
    }

    /// Host memory, refused with an error (not an abort) when the system has none to give.
    fn alloc(&self, bytes: u64, label: &str) -> Result<CpuBuffer> {
        let mut buffer = Vec::new();
        let refused = || Error::OutOfMemory { context: format!(" allocating {bytes} bytes for `{label}` on the CPU") };
        let len = usize::try_from(bytes).map_err(|_| refused())?;
        buffer.try_reserve_exact(len).map_err(|_| refused())?;
        buffer.resize(len, 0);
        Ok(Rc::new(RefCell::new(buffer)))
    }

    fn write(&self, buffer: &CpuBuffer, bytes: &[u8]) -> Result<()> {
        buffer.borrow_mut()[..bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// The reference functions need no scratch.
    fn scratch(&self, _op: &Op, _inputs: &[Spec<'_>], _outputs: &[Spec<'_>]) -> Result<Vec<ScratchRequest>> {
        Ok(vec![])
    }

    fn prepare(
        &self,
        op: &Op,
        inputs: &[Bound<'_, CpuBuffer>],
        outputs: &[Bound<'_, CpuBuffer>],
        _scratch: &[Scratch<'_, CpuBuffer>],
    ) -> Result<CpuKernel> {
        let inputs = inputs.iter().map(slot).collect();
        let outputs = outputs.iter().map(|b| b.buffer.clone()).collect();
        Ok(CpuKernel { op: RefCell::new(op.clone()), inputs, outputs })
    }

    fn refresh(&self, kernel: &CpuKernel, op: &Op) -> Result<()> {
        *kernel.op.borrow_mut() = op.clone();
        Ok(())
    }

    fn profile(&self, kernels: &[CpuKernel]) -> Result<Timing> {
        let start = Instant::now();
        let mut timed = Vec::with_capacity(kernels.len());
        for kernel in kernels {
            let begin = Instant::now();
            self.run(std::slice::from_ref(kernel), &[])?;
            timed.push(vec![(kernel.op.borrow().name().to_string(), begin.elapsed().as_secs_f64())]);
        }
        Ok(Timing {
            kernels: timed,
            timer: "host wall-clock per kernel".into(),
            wall_seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn run(&self, kernels: &[CpuKernel], reads: &[(&CpuBuffer, u64)]) -> Result<Vec<Vec<u8>>> {
        for kernel in kernels {
            let inputs = kernel
                .inputs
                .iter()
                .map(|(buffer, shape, dtype)| {
                    let bytes = &buffer.borrow()[..shape.bytes() as usize];
                    HostTensor::from_bytes(shape.clone(), *dtype, bytes).map(|t| Tensor::from_host(&t))
                })
                .collect::<Result<Vec<_>>>()?;
            let results = crate::eval(&kernel.op.borrow(), &inputs.iter().collect::<Vec<_>>())?;
            for (buffer, result) in kernel.outputs.iter().zip(results) {
                self.write(buffer, &result.to_host(DType::F32)?.to_bytes())?;
            }
        }
        Ok(reads.iter().map(|(buffer, bytes)| buffer.borrow()[..*bytes as usize].to_vec()).collect())
    }
}
