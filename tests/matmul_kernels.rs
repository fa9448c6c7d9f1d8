//! Every matmul kernel, whichever the adapter would pick, against the CPU reference: all four
//! transpose layouts, batches with a shared operand, tiles that overhang the edges, and long
//! products split into slices of K.

mod common;

use kiln::core::{Backend, Bound, DType, HostTensor, MatMul, Shape};
use kiln::cpu::Tensor;
use kiln::kernels::{Epilogue, MatmulKernel, MatmulPlan};

/// Checks one product; returns how many dispatches it took.
fn check(kernel: Option<MatmulKernel>, m: MatMul, a: &HostTensor, b: &HostTensor) -> usize {
    check_plan(m, a, b, |gpu, y| MatmulPlan::new(gpu, m, kernel, &a.shape, &b.shape, y).expect("plan"))
}

/// Checks the product the plan `plan` makes for the output shape it is given.
fn check_plan(
    m: MatMul,
    a: &HostTensor,
    b: &HostTensor,
    plan: impl FnOnce(&kiln::gpu::Gpu, &Shape) -> MatmulPlan,
) -> usize {
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
    let plan = plan(gpu, &sy);
    let kernel = plan.choice();
    let partial = plan.scratch_bytes().map(|bytes| gpu.alloc(bytes, "partial sums").expect("alloc"));
    let prepared = plan
        .kernel(gpu, &bound(&ba, &a.shape), &bound(&bb, &b.shape), &bound(&by, &sy), partial.as_ref())
        .expect("kernel");
    let dispatches = prepared.dispatches.len();
    let bytes = backend.run(&[prepared], &[(&by, sy.bytes())]).expect("run");
    let got = HostTensor::from_bytes(sy, DType::F32, &bytes[0]).expect("decode");
    let error = common::relative_error(got.as_f32().expect("f32"), want.as_f32().expect("f32"));
    assert!(error < 1e-5, "{kernel} {m:?} {} · {}: off by {error:.2e}", a.shape, b.shape);
    dispatches
}

fn bound<'a>(buffer: &'a kiln::gpu::GpuBuffer, shape: &'a Shape) -> Bound<'a, kiln::gpu::GpuBuffer> {
    Bound { buffer, shape, dtype: DType::F32 }
}

fn t(shape: &[usize], seed: u64) -> HostTensor {
    HostTensor::f32(shape.to_vec(), common::random_vec(shape.iter().product(), seed)).expect("tensor")
}

/// The kernels this adapter runs. Lavapipe runs every one: its subgroups are 8 wide.
fn available(gpu: &kiln::gpu::Gpu) -> Vec<MatmulKernel> {
    let lavapipe = gpu.info().device_type == wgpu::DeviceType::Cpu && gpu.info().backend == wgpu::Backend::Vulkan;
    MatmulKernel::ALL
        .into_iter()
        .filter(|kernel| match kernel.unavailable(gpu) {
            Some(reason) if lavapipe => panic!("lavapipe should run every kernel: {reason}"),
            Some(_) => false,
            None => true,
        })
        .collect()
}

#[test]
fn every_kernel_in_every_layout() {
    // M, K, N multiples of 4 (so every kernel applies) but not of the 16×16 tile.
    let (m, k, n) = (20, 12, 36);
    for kernel in available(common::gpu().gpu()) {
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

/// Whatever the tuner picks computes the product: every candidate plan (kernel and slices of
/// K) of shapes aligned and not, batched and not, in every layout.
#[test]
fn every_candidate_of_the_tuner_matches_the_reference() {
    let gpu = common::gpu();
    let mut tried = std::collections::BTreeSet::new();
    for (batch, m, k, n) in [(0, 20, 12, 36), (0, 36, 520, 20), (2, 8, 300, 12), (0, 17, 133, 9), (3, 5, 70, 66)] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let mm = MatMul { trans_a, trans_b };
            let mut a = if trans_a { vec![k, m] } else { vec![m, k] };
            let b = if trans_b { vec![n, k] } else { vec![k, n] };
            if batch > 0 {
                a.insert(0, batch);
            }
            let (a, b) = (t(&a, 9), t(&b, 10));
            let y = Shape::new(if batch > 0 { vec![batch, m, n] } else { vec![m, n] });
            let plans = MatmulPlan::candidates(gpu.gpu(), mm, &a.shape, &b.shape, &y).expect("candidates");
            assert!(plans.len() >= 2, "{m}×{k}×{n}: {} candidates", plans.len());
            for plan in plans {
                tried.insert(plan.choice());
                check_plan(mm, &a, &b, |_, _| plan);
            }
        }
    }
    for kernel in available(gpu.gpu()).into_iter().filter(|&k| k != MatmulKernel::Naive) {
        assert!(tried.iter().any(|c| c.starts_with(&format!("{}/", kernel.entry()))), "{kernel:?} never tried");
        assert!(
            tried.iter().any(|c| c.starts_with(&format!("{}/", kernel.entry())) && !c.ends_with("/1")),
            "{kernel:?} never tried with K in slices"
        );
    }
    for rows in ["/rows4", "/rows2"] {
        assert!(tried.iter().any(|c| c.ends_with(rows)), "no candidate in workgroups {rows}");
    }
}

/// Every candidate also stores a bias per column and its ReLU right (`linear`), ReLU's
/// gradient at a tensor of y's shape (`matmul_relu_backward`), and the ReLU of a bias per row
/// (a convolution's per-sample products), K whole or summed in slices, against the CPU
/// reference's fused ops (for the bias per row, its product plus the bias, then the ReLU).
#[test]
fn every_candidate_finishes_with_a_bias_relu_or_relu_gradient() {
    use kiln::core::Op;
    let backend = common::gpu();
    let gpu = backend.gpu();
    for (m, k, n) in [(20, 12, 36), (36, 520, 20), (17, 133, 9)] {
        for trans_b in [false, true] {
            let mm = MatMul { trans_a: false, trans_b };
            let (a, b) = (t(&[m, k], 11), t(&if trans_b { [n, k] } else { [k, n] }, 12));
            let (bias, mask, row_bias) = (t(&[n], 13), t(&[m, n], 14), t(&[m], 15));
            let fused = [
                (Op::Linear { matmul: mm, relu: false }, &bias),
                (Op::Linear { matmul: mm, relu: true }, &bias),
                (Op::MatMulReluBackward(mm), &mask),
                (Op::MatMul(mm), &row_bias),
            ];
            for (op, third) in fused {
                let host = [&a, &b, third].map(Tensor::from_host);
                let operands = if let Op::MatMul(_) = op { &host.each_ref()[..2] } else { &host.each_ref()[..] };
                let mut want = kiln::cpu::eval(&op, operands).expect("cpu")[0].to_host(DType::F32).expect("f32");
                if let Op::MatMul(_) = op {
                    let rows = row_bias.as_f32().expect("f32");
                    let y = want.as_f32().expect("f32").iter().enumerate().map(|(i, v)| (v + rows[i / n]).max(0.0));
                    want = HostTensor::f32(want.shape.clone(), y.collect()).expect("y");
                }
                let upload = |t: &HostTensor| {
                    let buffer = gpu.alloc(t.shape.bytes(), "operand").expect("alloc");
                    gpu.write(&buffer, &t.to_bytes()).expect("write");
                    buffer
                };
                let (ba, bb, bthird) = (upload(&a), upload(&b), upload(third));
                let by = gpu.alloc(want.shape.bytes(), "y").expect("alloc");
                for plan in MatmulPlan::candidates(gpu, mm, &a.shape, &b.shape, &want.shape).expect("candidates") {
                    let partial = plan.scratch_bytes().map(|bytes| gpu.alloc(bytes, "partial sums").expect("alloc"));
                    let third_bound = bound(&bthird, &third.shape);
                    let epilogue = match op {
                        Op::Linear { relu, .. } => Epilogue { bias: Some(&third_bound), relu, ..Epilogue::default() },
                        Op::MatMul(_) => Epilogue { row_bias: Some(&third_bound), relu: true, ..Epilogue::default() },
                        _ => Epilogue { relu_mask: Some(&third_bound), ..Epilogue::default() },
                    };
                    let (ya, yb, yy) = (bound(&ba, &a.shape), bound(&bb, &b.shape), bound(&by, &want.shape));
                    let kernel = plan.kernel_with(gpu, &ya, &yb, &yy, partial.as_ref(), epilogue).expect("kernel");
                    let bytes = backend.run(&[kernel], &[(&by, want.shape.bytes())]).expect("run");
                    let got = HostTensor::from_bytes(want.shape.clone(), DType::F32, &bytes[0]).expect("decode");
                    let (got, want) = (got.as_f32().expect("f32"), want.as_f32().expect("f32"));
                    let zeros = got.iter().filter(|&&v| v == 0.0).count();
                    assert!(zeros < got.len(), "{} {}: all zero", plan.choice(), op.name());
                    let error = common::relative_error(got, want);
                    assert!(error < 1e-5, "{} {mm:?} {}: off by {error:.2e}", plan.choice(), op.name());
                }
            }
        }
    }
}

/// The subgroup kernels where subgroups and workgroups overhang y: 100 rows (four tiles of 32,
/// the last with 4 rows), 600 columns (150 fours: 75 and 150 invocations, in workgroups of 64,
/// the last partly past the edge, its invocations fetching clamped texels for their
/// neighbours), batches with a shared operand, every layout.
#[test]
fn subgroup_kernels_where_subgroups_and_workgroups_overhang_the_edges() {
    let gpu = common::gpu();
    let lanes = [MatmulKernel::Lanes32x8, MatmulKernel::Lanes32x4];
    let lanes: Vec<_> = lanes.into_iter().filter(|k| available(gpu.gpu()).contains(k)).collect();
    let (m, k, n) = (100, 64, 600);
    for kernel in lanes {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let mm = MatMul { trans_a, trans_b };
            let a = if trans_a { vec![k, m] } else { vec![m, k] };
            let b = if trans_b { vec![n, k] } else { vec![k, n] };
            check(Some(kernel), mm, &t(&a, 21), &t(&b, 22));
            check(Some(kernel), mm, &t(&[[2].as_slice(), &a].concat(), 23), &t(&b, 24));
        }
    }
}

#[test]
fn long_products_with_few_tiles_are_summed_in_slices_of_k() {
    // 6 tiles of 16×16 (5 invocations of the subgroup kernels' 32×8) and K = 4132: the rules
    // cut K into 32 slices of 33 steps of k (the last one shorter), summed by a second
    // dispatch; each operand's texel copy fills 20 texture rows and part of a 21st. Whatever
    // the tuner picks computes the product too (other adapters: their usual kernel).
    let (m, k, n) = (20, 4132, 36);
    let gpu = common::gpu();
    let large_tiles = [MatmulKernel::Texels16, MatmulKernel::Lanes32x8, MatmulKernel::Lanes32x4];
    let large_tiles: Vec<_> = large_tiles.into_iter().filter(|k| available(gpu.gpu()).contains(k)).collect();
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let mm = MatMul { trans_a, trans_b };
        let a = if trans_a { vec![k, m] } else { vec![m, k] };
        let b = if trans_b { vec![n, k] } else { vec![k, n] };
        let (a, b) = (t(&a, 7), t(&b, 8));
        check(None, mm, &a, &b);
        for &kernel in &large_tiles {
            assert_eq!(check(Some(kernel), mm, &a, &b), 2, "{kernel:?}: the product and the sum of its slices");
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

/// Where the adapter has no subgroups (llvmpipe through OpenGL), asking for a subgroup kernel
/// is refused by name and reason, the tuner never offers one, and the rules' kernel computes
/// the product.
#[test]
fn adapters_without_subgroups_refuse_the_subgroup_kernels_and_compute_with_others() {
    let choice = kiln::gpu::AdapterChoice { backend: Some("gl".into()), ..Default::default() };
    let Ok(gpu) = pollster::block_on(kiln::gpu::Gpu::open(&choice)) else {
        eprintln!("no OpenGL adapter here: nothing to check");
        return;
    };
    if gpu.device().features().contains(wgpu::Features::SUBGROUP) {
        eprintln!("this OpenGL adapter has subgroups: nothing to check");
        return;
    }
    let (sa, sb, sy) = (Shape::new([20, 12]), Shape::new([12, 36]), Shape::new([20, 36]));
    for kernel in [MatmulKernel::Lanes32x8, MatmulKernel::Lanes32x4] {
        let refused = MatmulPlan::new(&gpu, MatMul::default(), Some(kernel), &sa, &sb, &sy).map(|_| ());
        let message = refused.expect_err("no subgroups").to_string();
        assert!(message.contains(kernel.entry()) && message.contains("no subgroups"), "{message}");
    }
    let plans = MatmulPlan::candidates(&gpu, MatMul::default(), &sa, &sb, &sy).expect("candidates");
    assert!(plans.iter().all(|p| !p.choice().starts_with("matmul_lanes")), "a subgroup kernel offered");
    let backend = kiln::kernels::GpuBackend::new(gpu);
    let (a, b) = (t(&[20, 12], 31), t(&[12, 36], 32));
    let upload = |t: &HostTensor| {
        let buffer = backend.gpu().alloc(t.shape.bytes(), "operand").expect("alloc");
        backend.gpu().write(&buffer, &t.to_bytes()).expect("write");
        buffer
    };
    let (ba, bb, by) = (upload(&a), upload(&b), backend.gpu().alloc(sy.bytes(), "y").expect("alloc"));
    let plan = MatmulPlan::new(backend.gpu(), MatMul::default(), None, &sa, &sb, &sy).expect("the rules' plan");
    let kernel =
        plan.kernel(backend.gpu(), &bound(&ba, &sa), &bound(&bb, &sb), &bound(&by, &sy), None).expect("kernel");
    let bytes = backend.run(&[kernel], &[(&by, sy.bytes())]).expect("run");
    let got = HostTensor::from_bytes(sy, DType::F32, &bytes[0]).expect("decode");
    let (ta, tb) = (Tensor::from_host(&a), Tensor::from_host(&b));
    let want = kiln::cpu::eval(&kiln::core::Op::MatMul(MatMul::default()), &[&ta, &tb]).expect("cpu")[0]
        .to_host(DType::F32)
        .expect("f32");
    let error = common::relative_error(got.as_f32().expect("f32"), want.as_f32().expect("f32"));
    assert!(error < 1e-5, "{}: off by {error:.2e}", plan.choice());
}

/// The subgroup kernels with a batch sharing A run on along the columns (`/folded`): samples of
/// 7 fours of columns (the two fours of a 32×8 invocation straddle samples) and of 49, grids
/// overhanging the last sample, every layout; and the forward convolution's epilogue, a bias per
/// row and its ReLU, on each sample.
#[test]
fn subgroup_kernels_fold_a_batch_sharing_a_into_the_columns() {
    let backend = common::gpu();
    let gpu = backend.gpu();
    let lanes = [MatmulKernel::Lanes32x8, MatmulKernel::Lanes32x4];
    let expected = lanes.iter().filter(|k| available(gpu).contains(k)).count();
    for (batch, m, k, n) in [(3, 40, 36, 28), (5, 64, 72, 196)] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let mm = MatMul { trans_a, trans_b };
            let a = t(&if trans_a { [k, m] } else { [m, k] }, 31);
            let b = t(&if trans_b { [batch, n, k] } else { [batch, k, n] }, 32);
            let y = Shape::new([batch, m, n]);
            let candidates = MatmulPlan::candidates(gpu, mm, &a.shape, &b.shape, &y).expect("candidates");
            let folded: Vec<_> = candidates.into_iter().filter(|p| p.choice().ends_with("/folded")).collect();
            assert_eq!(folded.len(), expected, "{mm:?} {batch}×{m}×{k}×{n}");
            for plan in folded {
                check_plan(mm, &a, &b, |_, _| plan);
            }
        }
        let mm = MatMul::default();
        let (a, b, row_bias) = (t(&[m, k], 33), t(&[batch, k, n], 34), t(&[m], 35));
        let host = [&a, &b].map(Tensor::from_host);
        let product = kiln::cpu::eval(&kiln::core::Op::MatMul(mm), &host.each_ref()).expect("cpu")[0]
            .to_host(DType::F32)
            .expect("f32");
        let rows = row_bias.as_f32().expect("f32");
        let want: Vec<f32> =
            product.as_f32().expect("f32").iter().enumerate().map(|(i, v)| (v + rows[i / n % m]).max(0.0)).collect();
        let upload = |t: &HostTensor| {
            let buffer = gpu.alloc(t.shape.bytes(), "operand").expect("alloc");
            gpu.write(&buffer, &t.to_bytes()).expect("write");
            buffer
        };
        let (ba, bb, bbias) = (upload(&a), upload(&b), upload(&row_bias));
        let by = gpu.alloc(product.shape.bytes(), "y").expect("alloc");
        let candidates = MatmulPlan::candidates(gpu, mm, &a.shape, &b.shape, &product.shape).expect("candidates");
        for plan in candidates.into_iter().filter(|p| p.choice().ends_with("/folded")) {
            let bias = bound(&bbias, &row_bias.shape);
            let epilogue = Epilogue { row_bias: Some(&bias), relu: true, ..Epilogue::default() };
            let (ya, yb, yy) = (bound(&ba, &a.shape), bound(&bb, &b.shape), bound(&by, &product.shape));
            let kernel = plan.kernel_with(gpu, &ya, &yb, &yy, None, epilogue).expect("kernel");
            let bytes = backend.run(&[kernel], &[(&by, product.shape.bytes())]).expect("run");
            let got = HostTensor::from_bytes(product.shape.clone(), DType::F32, &bytes[0]).expect("decode");
            let error = common::relative_error(got.as_f32().expect("f32"), &want);
            assert!(error < 1e-5, "{} with a bias per row: off by {error:.2e}", plan.choice());
        }
    }
}
