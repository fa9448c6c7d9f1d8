//! Fusion changes kernels, never numbers: the reference CNN's training steps give the same
//! bits fused and unfused, on the GPU and on the CPU reference, with one kernel fewer per
//! fused pair (convolution and ReLU, pooling gradient and ReLU gradient, product and bias,
//! linear layer and ReLU, product and ReLU gradient); values the caller reads are never fused
//! away.

mod common;

use kiln::core::{Activation, Adam, Backend, DType, HostTensor, Op};
use kiln::graph::{Executor, Graph, Program, Store, Value, fuse};
use kiln::nn::{ModelSpec, Optimizer, build};

const BATCH: usize = 4;

/// The model's training step compiled fused or not, and the kernels it runs.
fn compile<B: Backend>(store: &mut Store<B>, model: &kiln::nn::Model, fused: bool) -> (Program<B>, usize) {
    let program = if fused {
        Program::compile(store, &model.graph, &[model.loss])
    } else {
        Program::compile_unfused(store, &model.graph, &[model.loss])
    }
    .expect("compile");
    let live = &program.plan().live;
    let nodes = program.graph().nodes().iter().enumerate();
    let kernels = nodes.filter(|&(i, n)| live[i] && n.op.role() == kiln::core::Role::Kernel).count();
    (program, kernels)
}

/// Losses of three steps and the parameters after them, compiled fused or not.
fn train<B: Backend>(backend: B, fused: bool) -> (Vec<u32>, Vec<Vec<u32>>, usize) {
    let mut model = build(&ModelSpec::named("cnn"), BATCH, 784, true, 5).expect("model");
    model.add_training(Optimizer::Adam(Adam::new(1e-2))).expect("training graph");
    let mut store = Store::new(backend);
    let (program, kernels) = compile(&mut store, &model, fused);
    let mut losses = Vec::new();
    for step in 0..3 {
        let images = HostTensor::f32(vec![BATCH, 784], common::random_vec(BATCH * 784, step)).expect("images");
        let labels = HostTensor::i32(vec![BATCH], vec![1, 7, 3, step as i32]).expect("labels");
        program.set(model.images, &images).expect("images");
        program.set(model.labels, &labels).expect("labels");
        let loss = program.run(&mut store, &[model.loss]).expect("step").remove(0);
        losses.push(loss.as_f32().expect("f32")[0].to_bits());
    }
    let names: Vec<&str> = model.params.iter().map(|&v| model.graph.node(v).name.as_str()).collect();
    let params = store.read(&names).expect("params");
    let bits = params.iter().map(|t| t.as_f32().expect("f32").iter().map(|v| v.to_bits()).collect()).collect();
    (losses, bits, kernels)
}

fn assert_fusion_keeps_the_numbers<B: Backend + Clone>(backend: B) {
    let (fused_losses, fused_params, fused_kernels) = train(backend.clone(), true);
    let (losses, params, kernels) = train(backend, false);
    assert_eq!(fused_losses, losses, "losses, fused and not");
    assert!(fused_params == params, "parameters differ fused and not");
    // Two convolution–ReLU pairs and two pooling–ReLU gradient pairs (a kernel fewer each), a
    // product, bias and ReLU (two fewer), a product and bias, and the gradient product into
    // the hidden layer's ReLU gradient (one fewer each).
    assert_eq!(fused_kernels + 8, kernels, "kernels fused {fused_kernels}, unfused {kernels}");
}

#[test]
fn fused_training_steps_give_the_same_bits_on_the_gpu() {
    assert_fusion_keeps_the_numbers(common::gpu());
}

#[test]
fn fused_training_steps_give_the_same_bits_on_the_cpu_reference() {
    assert_fusion_keeps_the_numbers(kiln::cpu::Cpu);
}

/// The rewrite itself: the pair becomes conv2d_relu and a view; a convolution read by the
/// caller, or used by anything but its ReLU, stays as it is.
#[test]
fn only_a_convolution_whose_sole_use_is_its_relu_fuses() {
    let mut g = Graph::new();
    let x = g.input("x", vec![2, 3, 8, 8], DType::F32);
    let w = g.variable("w", vec![4, 3, 3, 3]);
    let conv = |g: &mut Graph| g.push(Op::Conv2d(Default::default()), &[x, w]).expect("conv");
    let relu = |g: &mut Graph, v: Value| g.push(Op::Activation(Activation::Relu), &[v]).expect("relu");
    let (a, b, c) = (conv(&mut g), conv(&mut g), conv(&mut g));
    let (ra, rb, rc) = (relu(&mut g, a), relu(&mut g, b), relu(&mut g, c));
    let also_b = g.push(Op::Add, &[b, rb]).expect("add");
    let fused = fuse(&g, &[ra, also_b, c, rc]);
    assert!(matches!(fused.node(a).op, Op::Conv2dRelu(_)), "a: {:?}", fused.node(a).op);
    assert!(matches!(fused.node(ra).op, Op::Reshape(_)), "its ReLU becomes a view");
    assert!(matches!(fused.node(b).op, Op::Conv2d(_)), "b has another use");
    assert!(matches!(fused.node(c).op, Op::Conv2d(_)), "c is read by the caller");
    assert_eq!(fused.nodes().len(), g.nodes().len(), "node indices are kept");
}

/// A product plus a bias per column fuses into `linear`, with the ReLU after it into
/// `linear_relu`; a bias of another shape, or a product read elsewhere, does not.
#[test]
fn a_product_and_its_bias_per_column_fuse() {
    let mut g = Graph::new();
    let x = g.input("x", vec![6, 8], DType::F32);
    let w = g.variable("w", vec![5, 8]);
    let b = g.variable("b", vec![5]);
    let full = g.variable("full", vec![6, 5]);
    let product =
        |g: &mut Graph| g.matmul_with(x, w, kiln::core::MatMul { trans_a: false, trans_b: true }).expect("xw");
    let (p1, p2, p3, p4) = (product(&mut g), product(&mut g), product(&mut g), product(&mut g));
    let plain = g.add(p1, b).expect("add");
    let biased = g.add(p2, b).expect("add");
    let relu = g.push(Op::Activation(Activation::Relu), &[biased]).expect("relu");
    let not_per_column = g.add(p3, full).expect("add");
    let shared = g.add(p4, b).expect("add");
    let fused = fuse(&g, &[plain, relu, not_per_column, shared, p4]);
    let linear = |relu| Op::Linear { matmul: kiln::core::MatMul { trans_a: false, trans_b: true }, relu };
    assert_eq!(fused.node(plain).op, linear(false));
    assert_eq!(fused.node(plain).inputs, [x, w, b]);
    assert_eq!(fused.node(biased).op, linear(true));
    assert!(matches!(fused.node(relu).op, Op::Reshape(_)));
    assert_eq!(fused.node(not_per_column).op, Op::Add);
    assert_eq!(fused.node(shared).op, Op::Add, "its product is read by the caller");
}

/// An MLP's training steps (two linear_relu layers and a linear one) give the same bits fused
/// and unfused, on the GPU and on the CPU reference.
#[test]
fn fused_mlp_steps_give_the_same_bits() {
    fn mlp_steps<B: Backend>(backend: B, fused: bool) -> (Vec<u32>, usize) {
        let mut model = kiln::nn::mlp(BATCH, &[20, 16, 12, 4], 3).expect("model");
        model.add_training(Optimizer::Adam(Adam::new(1e-2))).expect("training graph");
        let mut store = Store::new(backend);
        let (program, kernels) = compile(&mut store, &model, fused);
        let mut bits = Vec::new();
        for step in 0..3 {
            let images = HostTensor::f32(vec![BATCH, 20], common::random_vec(BATCH * 20, step)).expect("x");
            program.set(model.images, &images).expect("images");
            program.set(model.labels, &HostTensor::i32(vec![BATCH], vec![0, 3, 1, 2]).expect("y")).expect("labels");
            bits.push(program.run(&mut store, &[model.loss]).expect("step")[0].as_f32().expect("f32")[0].to_bits());
        }
        let names: Vec<&str> = model.params.iter().map(|&v| model.graph.node(v).name.as_str()).collect();
        for t in store.read(&names).expect("params") {
            bits.extend(t.as_f32().expect("f32").iter().map(|v| v.to_bits()));
        }
        (bits, kernels)
    }
    for (fused, unfused) in [
        (mlp_steps(common::gpu(), true), mlp_steps(common::gpu(), false)),
        (mlp_steps(kiln::cpu::Cpu, true), mlp_steps(kiln::cpu::Cpu, false)),
    ] {
        assert!(fused.0 == unfused.0, "losses or parameters differ fused and not");
        // Two product, bias and ReLU triples (two kernels fewer each), one product and bias,
        // two gradient products and the ReLU gradients after them (one fewer each).
        assert_eq!(fused.1 + 7, unfused.1, "kernels fused {}, unfused {}", fused.1, unfused.1);
    }
}

/// A ReLU's gradient of a product used by nothing else fuses into `matmul_relu_backward`; one
/// of a product the caller reads, or that has another use, does not.
#[test]
fn a_relu_gradient_of_a_product_fuses() {
    let mut g = Graph::new();
    let dz = g.input("dz", vec![6, 5], DType::F32);
    let w = g.variable("w", vec![5, 8]);
    let h = g.input("h", vec![6, 8], DType::F32);
    let product = |g: &mut Graph| g.matmul(dz, w).expect("dz·w");
    let (p1, p2, p3) = (product(&mut g), product(&mut g), product(&mut g));
    let relu_gradient =
        |g: &mut Graph, d: Value| g.push(Op::ActivationBackward(Activation::Relu), &[h, d]).expect("relu gradient");
    let (r1, r2, r3) = (relu_gradient(&mut g, p1), relu_gradient(&mut g, p2), relu_gradient(&mut g, p3));
    let also_p3 = g.push(Op::Activation(Activation::Relu), &[p3]).expect("relu");
    let fused = fuse(&g, &[r1, r2, p2, r3, also_p3]);
    let plain = kiln::core::MatMul { trans_a: false, trans_b: false };
    assert_eq!(fused.node(r1).op, Op::MatMulReluBackward(plain));
    assert_eq!(fused.node(r1).inputs, [dz, w, h]);
    assert_eq!(fused.node(r2).op, Op::ActivationBackward(Activation::Relu), "p2 is read by the caller");
    assert_eq!(fused.node(r3).op, Op::ActivationBackward(Activation::Relu), "p3 has another use");
}

/// A ReLU's gradient of a pooling's gradient at the same input fuses; one at another input,
/// or of a pooling gradient the caller reads, does not.
#[test]
fn a_relu_gradient_of_a_pooling_gradient_at_the_same_input_fuses() {
    use kiln::core::{Pool2d, PoolKind};
    let mut g = Graph::new();
    let x = g.input("x", vec![2, 3, 8, 8], DType::F32);
    let other = g.input("other", vec![2, 3, 8, 8], DType::F32);
    let pool = Pool2d { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let y = g.push(Op::Pool2d(pool), &[x]).expect("pool");
    let dy = g.input("dy", vec![2, 3, 4, 4], DType::F32);
    let pooled = |g: &mut Graph| g.push(Op::Pool2dBackward(pool), &[x, y, dy]).expect("pool gradient");
    let relu_gradient = |g: &mut Graph, at: Value, d: Value| {
        g.push(Op::ActivationBackward(Activation::Relu), &[at, d]).expect("relu gradient")
    };
    let (a, b, c) = (pooled(&mut g), pooled(&mut g), pooled(&mut g));
    let (ra, rb, rc) = (relu_gradient(&mut g, x, a), relu_gradient(&mut g, other, b), relu_gradient(&mut g, x, c));
    let fused = fuse(&g, &[ra, rb, rc, c]);
    assert!(matches!(fused.node(ra).op, Op::Pool2dBackwardRelu(_)), "ra: {:?}", fused.node(ra).op);
    assert_eq!(fused.node(ra).inputs, [x, y, dy]);
    assert!(matches!(fused.node(rb).op, Op::ActivationBackward(_)), "rb masks at another input");
    assert!(matches!(fused.node(rc).op, Op::ActivationBackward(_)), "c is read by the caller");
}

/// The fused ops against the CPU reference: conv2d_relu on each path a convolution takes
/// (lowered to a product, grouped, depthwise), with its gradients; pool2d_backward_relu with
/// windows that tile the input and windows that overlap, of every pooling kind.
#[test]
fn conv2d_relu_matches_the_reference_on_every_path() {
    use kiln::core::Conv2d;
    for (groups, channels, outputs) in [(1, 3, 8), (2, 4, 6), (4, 4, 8)] {
        let c = Conv2d { stride: [1, 2], padding: [1, 1], dilation: [1, 1], groups };
        let x = common::t(&[2, channels, 9, 10], 1);
        let w = common::t(&[outputs, channels / groups, 3, 3], 2);
        let b = common::t(&[outputs], 3);
        common::assert_parity(&format!("conv2d_relu, {groups} groups"), &[x, w, b], |g, v| {
            g.push(Op::Conv2dRelu(c), &[v[0], v[1], v[2]])
        });
    }
    use kiln::core::{Pool2d, PoolKind};
    for kind in [PoolKind::Max, PoolKind::Min, PoolKind::Avg { count_include_pad: false }] {
        for (kernel, stride) in [(2, 2), (3, 2)] {
            let pool = Pool2d { kind, kernel: [kernel, kernel], stride: [stride, stride], padding: [0, 0] };
            let on = |backend: &dyn Fn(&Graph, Value) -> HostTensor| {
                let mut g = Graph::new();
                let x = g.variable_init("x", common::t(&[2, 3, 9, 9], 4));
                let y = g.push(Op::Pool2d(pool), &[x]).expect("pool");
                let dy = g.push(Op::Activation(Activation::Sigmoid), &[y]).expect("dy");
                let dx = g.push(Op::Pool2dBackwardRelu(pool), &[x, y, dy]).expect("fused");
                backend(&g, dx)
            };
            let gpu = on(&|g, v| run(common::gpu(), g, v));
            let cpu = on(&|g, v| run(kiln::cpu::Cpu, g, v));
            let error = common::relative_error(gpu.as_f32().expect("f32"), cpu.as_f32().expect("f32"));
            assert!(error < 1e-5, "pool2d_backward_relu {pool:?}: off by {error:.2e}");
            let zeros = gpu.as_f32().expect("f32").iter().filter(|&&v| v == 0.0).count();
            // (A minimum is mostly negative: the mask may take all of it.)
            let some_pass = zeros < gpu.shape.numel() || kind == PoolKind::Min;
            assert!(zeros > 0 && some_pass, "{pool:?}: the mask neither all nor nothing");
        }
    }
}

/// Max and min pooling over 2×2 windows of stride 2 from vector loads (two windows per
/// invocation from vec4s on rows a multiple of 4 long, one from vec2s on other even rows), its
/// gradient and that gradient's ReLU mask give exactly the CPU reference's values, ties
/// included (the first tap in scan order wins), beside an odd row length that takes the
/// general kernels. (Values, not bits: the reference's mask multiplies
/// by 0, keeping the sign of a negative gradient's zero, where the kernels select +0.)
#[test]
fn pooling_in_pairs_of_2x2_windows_matches_the_reference_exactly() {
    use kiln::core::{Pool2d, PoolKind};
    for kind in [PoolKind::Max, PoolKind::Min] {
        for shape in [[2, 3, 8, 12], [1, 2, 4, 4], [2, 3, 8, 10], [1, 2, 2, 2], [2, 3, 9, 9]] {
            let pool = Pool2d { kind, kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
            // Half-steps: many windows hold equal taps, and zeros for the mask.
            let x = common::random_vec(shape.iter().product(), 21).iter().map(|v| (v * 2.0).round() / 2.0).collect();
            let x = HostTensor::f32(shape.to_vec(), x).expect("x");
            let pooled = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
            let on = |backend: &dyn Fn(&Graph, Value) -> HostTensor| {
                let mut g = Graph::new();
                let x = g.variable_init("x", x.clone());
                let y = g.push(Op::Pool2d(pool), &[x]).expect("pool");
                let dy = g.variable_init("dy", common::t(&pooled, 22));
                let dx = g.push(Op::Pool2dBackward(pool), &[x, y, dy]).expect("gradient");
                let masked = g.push(Op::Pool2dBackwardRelu(pool), &[x, y, dy]).expect("masked gradient");
                [y, dx, masked].map(|v| backend(&g, v).as_f32().expect("f32").to_vec())
            };
            let gpu: [Vec<f32>; 3] = on(&|g, v| run(common::gpu(), g, v));
            let cpu: [Vec<f32>; 3] = on(&|g, v| run(kiln::cpu::Cpu, g, v));
            for (what, (gpu, cpu)) in ["pool", "gradient", "masked gradient"].iter().zip(gpu.iter().zip(&cpu)) {
                assert!(gpu == cpu, "{kind:?} {shape:?}: {what} differs from the reference");
            }
        }
    }
}

fn run<B: Backend>(backend: B, g: &Graph, v: Value) -> HostTensor {
    Executor::compile(backend, g, &[v]).expect("compile").run(&[v]).expect("run").remove(0)
}
