//! One microbenchmark per kernel family, forward and backward, on the adapter Kiln picks:
//! each runs a small graph (the op and its vector-Jacobian product) as one submission and
//! waits for the device.
//!     cargo bench --bench kernels

use criterion::{Criterion, criterion_group, criterion_main};
use kiln::core::{Activation, Conv2d, DType, HostTensor, LossKind, Pool2d, PoolKind, Result};
use kiln::gpu::Gpu;
use kiln::graph::{Executor, Graph, Value, grad_with};
use kiln::kernels::GpuBackend;

type Build = fn(&mut Graph, &[Value]) -> Result<Value>;

/// A family's benchmark: input shapes and the op.
struct Family {
    name: &'static str,
    inputs: Vec<Vec<usize>>,
    build: Build,
}

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "matmul 256³",
            inputs: vec![vec![256, 256], vec![256, 256]],
            build: |g, x| g.matmul(x[0], x[1]),
        },
        Family {
            name: "conv2d 16×32→64 14²",
            inputs: vec![vec![16, 32, 14, 14], vec![64, 32, 3, 3]],
            build: |g, x| g.conv2d(x[0], x[1], None, Conv2d { padding: [1, 1], ..Conv2d::default() }),
        },
        Family {
            name: "depthwise 8×128 28²",
            inputs: vec![vec![8, 128, 28, 28], vec![128, 1, 3, 3]],
            build: |g, x| g.conv2d(x[0], x[1], None, Conv2d { padding: [1, 1], groups: 128, ..Conv2d::default() }),
        },
        Family {
            name: "max_pool2d 16×32 28²",
            inputs: vec![vec![16, 32, 28, 28]],
            build: |g, x| {
                g.pool2d(x[0], Pool2d { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] })
            },
        },
        Family {
            name: "gelu 1M",
            inputs: vec![vec![1 << 20]],
            build: |g, x| g.activation(x[0], Activation::Gelu { tanh: false }),
        },
        Family { name: "softmax 1024×1000", inputs: vec![vec![1024, 1000]], build: |g, x| g.softmax(x[0], -1) },
        Family {
            name: "layer_norm 4096×256",
            inputs: vec![vec![4096, 256], vec![256], vec![256]],
            build: |g, x| g.layer_norm(x[0], x[1], x[2], 1e-5),
        },
        Family {
            name: "batch_norm 64×32 28²",
            inputs: vec![vec![64, 32, 28, 28], vec![32], vec![32]],
            build: |g, x| Ok(g.batch_norm(x[0], x[1], x[2], 1e-5)?.0),
        },
        Family {
            name: "huber_loss 1M",
            inputs: vec![vec![1 << 20], vec![1 << 20]],
            build: |g, x| g.pointwise_loss(LossKind::Huber { delta: 1.0 }, x[0], x[1]),
        },
    ]
}

fn compile(backend: &GpuBackend, family: &Family) -> Executor<GpuBackend> {
    let mut g = Graph::new();
    let inputs: Vec<Value> =
        family.inputs.iter().enumerate().map(|(i, s)| g.input(&format!("x{i}"), s.clone(), DType::F32)).collect();
    let y = (family.build)(&mut g, &inputs).expect("builds");
    let dy = g.input("dy", g.shape(y).clone(), DType::F32);
    let grads = grad_with(&mut g, &[(y, dy)], &inputs).expect("grad");
    let exec = Executor::compile(backend.clone(), &g, &grads).expect("compile");
    for (i, node) in g.nodes().iter().enumerate() {
        if node.op == kiln::core::Op::Input {
            let n = node.shape.numel();
            let data = (0..n).map(|j| ((j * 7919 + i) % 1000) as f32 / 1000.0 + 0.5).collect();
            exec.set(Value(i), &HostTensor::f32(node.shape.clone(), data).expect("tensor")).expect("input");
        }
    }
    exec
}

fn kernels(c: &mut Criterion) {
    let gpu = match Gpu::new_blocking() {
        Ok(gpu) => gpu,
        Err(e) => panic!("the kernel benchmarks need an adapter: {e}"),
    };
    let backend = GpuBackend::new(gpu.clone());
    let mut group = c.benchmark_group(format!("forward+backward on {}", gpu.info().name));
    group.sample_size(10);
    for family in families() {
        let mut exec = compile(&backend, &family);
        group.bench_function(family.name, |bench| bench.iter(|| exec.run(&[]).expect("run")));
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
