//! Every matmul kernel, whichever the adapter would pick, against the CPU reference: all four
//! transpose layouts, batches with a shared operand, tiles that overhang the edges, and long
//! products split into slices of K.

mod common;

use kiln::core::{Backend, Bound, DType, HostTensor, MatMul, Shape};
use kiln::cpu::Tensor;
use kiln::kernels::{MatmulKernel, MatmulPlan};

/// Checks one product; returns how many dispatches it took.
fn check(kernel: Option<MatmulKernel>, m: MatMul, a: &HostTensor, b: &HostTensor) -> usize {
    let (ta, tb) = (Tensor::from_host(a), Tensor::from_host(b));
    let want =
        kiln::cpu::eval(&kiln::core::Op::MatMul(m), &[&ta, &tb]).expect("cpu")[0].to_host(DType::F32).expect("f32");
    let backend = common::gpu();
    let gpu = backend.gpu();
    let upload = |t: &HostTensor| {
        let buffer = gpu.alloc(t.shape.bytes(), "operand").expect("alloc");
        gpu.write(&buffer, &t.to_bytes()).expect("write");
        buffer
    };
    let (ba, bb, by) = (upload(a), upload(b), gpu.alloc(want.shape.bytes(), "y").expect("alloc"));
    let sy = want.shape.clone();
    let plan = MatmulPlan::new(gpu, m, kernel, &a.shape, &b.shape, &sy).expect("plan");
    let partial = plan.scratch_bytes().map(|bytes| gpu.alloc(bytes, "partial sums").expect("alloc"));
    let prepared = plan
        .kernel(gpu, &bound(&ba, &a.shape), &bound(&bb, &b.shape), &bound(&by, &sy), partial.as_ref())
        .expect("kernel");
    let dispatches = prepared.dispatches.len();
    let bytes = backend.run(&[prepared], &[(&by, sy.bytes())]).expect("run");
    let got = HostTensor::from_bytes(sy, DType::F32, &bytes[0]).expect("decode");
    let error = common::relative_error(got.as_f32().expect("f32"), want.as_f32().expect("f32"));
    assert!(error < 1e-5, "{kernel:?} {m:?} {} · {}: off by {error:.2e}", a.shape, b.shape);
    dispatches
}

fn bound<'a>(buffer: &'a kiln::gpu::GpuBuffer, shape: &'a Shape) -> Bound<'a, kiln::gpu::GpuBuffer> {
    Bound { buffer, shape, dtype: DType::F32 }
}

fn t(shape: &[usize], seed: u64) -> HostTensor {
    HostTensor::f32(shape.to_vec(), common::random_vec(shape.iter().product(), seed)).expect("tensor")
}

#[test]
fn every_kernel_in_every_layout() {
    // M, K, N multiples of 4 (so every kernel applies) but not of the 16×16 tile.
    let (m, k, n) = (20, 12, 36);
    for kernel in MatmulKernel::ALL {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let mm = MatMul { trans_a, trans_b };
            let a = if trans_a { vec![k, m] } else { vec![m, k] };
            let b = if trans_b { vec![n, k] } else { vec![k, n] };
            check(Some(kernel), mm, &t(&a, 1), &t(&b, 2));
            check(Some(kernel), mm, &t(&[[3].as_slice(), &a].concat(), 3), &t(&b, 4));
            check(Some(kernel), mm, &t(&a, 5), &t(&[[2].as_slice(), &b].concat(), 6));
        }
    }
}

#[test]
fn long_products_with_few_tiles_are_summed_in_slices_of_k() {
    // 6 tiles of 16×16 and K = 4132: on a CPU adapter, 32 slices of 33 steps of k (the last
    // one shorter), summed by a second dispatch; each operand's texel copy fills 20 texture
    // rows and part of a 21st. Other adapters take their usual kernel.
    let (m, k, n) = (20, 4132, 36);
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = if trans_a { vec![k, m] } else { vec![m, k] };
        let b = if trans_b { vec![n, k] } else { vec![k, n] };
        let dispatches = check(None, MatMul { trans_a, trans_b }, &t(&a, 7), &t(&b, 8));
        if common::gpu().gpu().info().device_type == wgpu::DeviceType::Cpu {
            assert_eq!(dispatches, 2, "the product and the sum of its slices");
        }
    }
}

#[test]
fn vec4_kernels_refuse_unaligned_shapes() {
    let backend = common::gpu();
    let gpu = backend.gpu();
    let (sa, sb, sy) = (Shape::new([5, 4]), Shape::new([4, 4]), Shape::new([5, 4]));
    let result = MatmulPlan::new(gpu, MatMul::default(), Some(MatmulKernel::Vec4), &sa, &sb, &sy);
    let message = result.map(|_| ()).expect_err("M = 5").to_string();
    assert!(message.contains("matmul_vec4") && message.contains("multiples of 4"), "{message}");
}
