//! The divergence finder names the first node a wrong kernel computes: here a backend whose
//! max-pool backward kernel is secretly an average-pool one.

mod common;

use kiln::core::{Backend, Bound, Op, PoolKind, Result, Scratch, ScratchRequest, Spec};
use kiln::cpu::Cpu;
use kiln::diverge::{find_divergence, sample_training_graph};

/// The CPU backend with one op's kernel replaced by another's.
#[derive(Clone)]
struct Swapped {
    from: Op,
    to: Op,
}

impl Backend for Swapped {
    type Buffer = <Cpu as Backend>::Buffer;
    type Kernel = <Cpu as Backend>::Kernel;

    fn name(&self) -> String {
        "cpu with a swapped kernel".into()
    }

    fn allocation_bytes(&self, bytes: u64) -> u64 {
        Cpu.allocation_bytes(bytes)
    }

    fn shared_bytes(&self) -> u64 {
        Cpu.shared_bytes()
    }

    fn alloc(&self, bytes: u64, label: &str) -> Result<Self::Buffer> {
        Cpu.alloc(bytes, label)
    }

    fn scratch(&self, op: &Op, inputs: &[Spec<'_>], outputs: &[Spec<'_>]) -> Result<Vec<ScratchRequest>> {
        Cpu.scratch(op, inputs, outputs)
    }

    fn write(&self, buffer: &Self::Buffer, bytes: &[u8]) -> Result<()> {
        Cpu.write(buffer, bytes)
    }

    fn prepare(
        &self,
        op: &Op,
        inputs: &[Bound<'_, Self::Buffer>],
        outputs: &[Bound<'_, Self::Buffer>],
        scratch: &[Scratch<'_, Self::Buffer>],
    ) -> Result<Self::Kernel> {
        Cpu.prepare(if *op == self.from { &self.to } else { op }, inputs, outputs, scratch)
    }

    fn refresh(&self, kernel: &Self::Kernel, op: &Op) -> Result<()> {
        Cpu.refresh(kernel, op)
    }

    fn run(&self, kernels: &[Self::Kernel], reads: &[(&Self::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        Cpu.run(kernels, reads)
    }

    fn profile(&self, kernels: &[Self::Kernel]) -> Result<kiln::core::Timing> {
        Cpu.profile(kernels)
    }
}

#[test]
fn a_correct_backend_agrees_at_every_node() {
    let (graph, feeds) = sample_training_graph("cnn", 3).expect("graph");
    let report = find_divergence(common::gpu(), &graph, &feeds, 1e-4).expect("runs");
    assert!(report.first.is_none(), "{:?}", report.first.map(|i| &report.nodes[i]));
    assert!(report.nodes.len() > 50, "every value is compared: {}", report.nodes.len());
}

#[test]
fn a_wrong_kernel_is_named_at_its_own_node() {
    let (graph, feeds) = sample_training_graph("cnn", 3).expect("graph");
    let max_backward = graph
        .nodes()
        .iter()
        .find_map(|n| {
            if let Op::Pool2dBackward(p) = n.op
                && p.kind == PoolKind::Max
            {
                Some(p)
            } else {
                None
            }
        })
        .expect("the cnn max-pools");
    let avg = kiln::core::Pool2d { kind: PoolKind::Avg { count_include_pad: true }, ..max_backward };
    let backend = Swapped { from: Op::Pool2dBackward(max_backward), to: Op::Pool2dBackward(avg) };
    let report = find_divergence(backend, &graph, &feeds, 1e-4).expect("runs");
    let first = &report.nodes[report.first.expect("a divergence")];
    assert_eq!(first.op, "max_pool2d_backward", "{first:?}");
    let earlier = &report.nodes[..report.first.expect("a divergence")];
    assert!(earlier.iter().all(|n| n.error < 1e-4), "every node before it agrees");
}
