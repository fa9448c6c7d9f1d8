//! Matmul kernels at 1024³ on the same adapter: the naive one-output-per-invocation baseline,
//! the register-blocked scalar kernel, and the vec4 kernels with a 4×4 block and a 16×16 tile
//! per invocation. Throughput is in
//! FLOPs (2n³ per product), so criterion's "elem/s" reads as FLOP/s.
//!     cargo bench --bench matmul

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::core::{Bound, DType, MatMul, Shape};
use kiln::gpu::Gpu;
use kiln::kernels::{MatmulKernel, MatmulPlan};

const N: usize = 1024;

fn matmul(c: &mut Criterion) {
    let gpu = match Gpu::new_blocking() {
        Ok(gpu) => gpu,
        Err(e) => panic!("the matmul benchmark needs an adapter: {e}"),
    };
    let shape = Shape::new([N, N]);
    let ones: Vec<u8> = (0..N * N).flat_map(|i| ((i % 7) as f32 * 0.25).to_le_bytes()).collect();
    let alloc = |label: &str| gpu.alloc(shape.bytes(), label).expect("buffer");
    let (a, b, y) = (alloc("a"), alloc("b"), alloc("y"));
    gpu.write(&a, &ones).expect("write a");
    gpu.write(&b, &ones).expect("write b");
    let bound = |buffer| Bound { buffer, shape: &shape, dtype: DType::F32 };
    let mut group = c.benchmark_group(format!("matmul_{N} on {}", gpu.info().name));
    group.sample_size(10).throughput(Throughput::Elements(2 * (N as u64).pow(3)));
    for kernel in MatmulKernel::ALL {
        let plan = MatmulPlan::new(&gpu, MatMul::default(), Some(kernel), &shape, &shape, &shape).expect("plan");
        let partial = plan.scratch_bytes().map(|bytes| gpu.alloc(bytes, "partial sums").expect("alloc"));
        let prepared = plan.kernel(&gpu, &bound(&a), &bound(&b), &bound(&y), partial.as_ref()).expect("kernel");
        let dispatches: Vec<_> = prepared.dispatches.iter().collect();
        // Reading 4 bytes back ends each run only when the product is complete on the device.
        group.bench_function(format!("{kernel:?}"), |bench| {
            bench.iter(|| gpu.run(&dispatches, &[(&y, 4)]).expect("run"))
        });
    }
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
