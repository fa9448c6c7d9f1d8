//! Bad input is rejected with an error naming the op and the shapes — when the graph is built,
//! or, for environment limits, before wgpu sees the request.

mod common;

use kiln::core::{Backend, Bound, DType, Error, HostTensor, Op, Sgd};
use kiln::graph::Graph;

fn message(result: Result<impl std::fmt::Debug, Error>) -> String {
    result.expect_err("must be rejected").to_string()
}

#[test]
fn graph_build_rejects_impossible_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", vec![3, 4], DType::F32);
    let b = g.input("b", vec![5, 6], DType::F32);
    let labels = g.input("labels", vec![3], DType::I32);
    let cases = [
        (message(g.matmul(a, b)), ["matmul", "inner dimensions", "[3, 4]", "[5, 6]"]),
        (message(g.add(a, b)), ["add", "do not broadcast", "[3, 4]", "[5, 6]"]),
        (message(g.reshape(a, vec![5])), ["reshape", "element count", "[3, 4]", "[5]"]),
        (message(g.transpose(a, &[0, 0])), ["transpose", "perm", "[0, 0]", "[3, 4]"]),
        (message(g.softmax(a, 2)), ["softmax", "axis 2", "out of range", "[3, 4]"]),
        (message(g.sum(a, &[1, -1], false)), ["sum", "repeat", "[1, -1]", "[3, 4]"]),
        (message(g.cross_entropy(b, labels)), ["cross_entropy", "labels [N]", "[5, 6]", "[3]"]),
        (message(g.cross_entropy(a, a)), ["cross_entropy", "i32 labels", "F32", "F32"]),
        (message(g.mse_loss(a, b)), ["mse_loss", "differ", "[3, 4]", "[5, 6]"]),
    ];
    for (text, needles) in cases {
        for needle in needles {
            assert!(text.contains(needle), "`{text}` does not mention `{needle}`");
        }
    }
}

#[test]
fn optimizer_updates_need_variables() {
    let mut g = Graph::new();
    let p = g.input("p", vec![4], DType::F32);
    let grad = g.input("g", vec![4], DType::F32);
    let buf = g.variable("buf", vec![4]);
    let text = message(g.sgd_step(p, grad, buf, Sgd::new(0.1, 0.0, 0.0)));
    assert!(text.contains("sgd_step") && text.contains("must be a variable"), "{text}");
}

#[test]
fn out_of_range_labels_are_refused_when_fed_on_both_backends() {
    let labels = HostTensor::i32(vec![2], vec![1, 3]).expect("labels");
    let mut g = Graph::new();
    let x = g.input("x", vec![2, 3], DType::F32);
    let y = g.input("labels", vec![2], DType::I32);
    let loss = g.cross_entropy(x, y).expect("builds");
    let on_cpu = kiln::graph::Executor::compile(kiln::cpu::Cpu, &g, &[loss]).expect("compile");
    let on_gpu = kiln::graph::Executor::compile(common::gpu(), &g, &[loss]).expect("compile");
    for text in [message(on_cpu.set(y, &labels)), message(on_gpu.set(y, &labels))] {
        assert!(
            text.contains("cross_entropy_per_sample") && text.contains("index 3") && text.contains("0..3"),
            "{text}"
        );
    }
}

#[test]
fn out_of_range_labels_are_an_error_in_the_cpu_kernel_and_nan_in_the_gpu_kernel() {
    let logits = HostTensor::f32(vec![2, 3], vec![0.0; 6]).expect("logits");
    let labels = HostTensor::i32(vec![2], vec![1, 3]).expect("labels");
    let (tl, ty) = (kiln::cpu::Tensor::from_host(&logits), kiln::cpu::Tensor::from_host(&labels));
    let text = message(kiln::cpu::eval(&Op::CrossEntropyPerSample, &[&tl, &ty]));
    assert!(text.contains("label 3 out of range for 3 classes"), "{text}");

    // Past the executor's check (a buffer written directly), the kernel gives NaN, never a
    // plausible loss.
    let backend = common::gpu();
    let upload = |t: &HostTensor| {
        let buffer = backend.alloc(t.shape.bytes(), "operand").expect("alloc");
        backend.write(&buffer, &t.to_bytes()).expect("write");
        buffer
    };
    let (bl, by, bo) = (upload(&logits), upload(&labels), backend.alloc(8, "losses").expect("alloc"));
    let out_shape = kiln::core::Shape::new([2]);
    let inputs = [
        Bound { buffer: &bl, shape: &logits.shape, dtype: DType::F32 },
        Bound { buffer: &by, shape: &labels.shape, dtype: DType::I32 },
    ];
    let outputs = [Bound { buffer: &bo, shape: &out_shape, dtype: DType::F32 }];
    let kernel = backend.prepare(&Op::CrossEntropyPerSample, &inputs, &outputs, &[]).expect("prepare");
    let bytes = backend.run(&[kernel], &[(&bo, 8)]).expect("run");
    let losses = HostTensor::from_bytes(out_shape, DType::F32, &bytes[0]).expect("decode");
    let losses = losses.as_f32().expect("f32");
    assert!(losses[0].is_finite() && losses[1].is_nan(), "{losses:?}");
}

#[test]
fn buffers_past_the_adapter_limit_are_refused_by_name() {
    let gpu = common::gpu();
    let limit = gpu.gpu().limits().max_buffer_size;
    let text = message(gpu.gpu().alloc(limit + 1, "huge activations").map(|_| ()));
    assert!(text.contains("huge activations") && text.contains("max_"), "{text}");
}

#[test]
fn an_adapter_that_is_not_there_is_named_beside_those_present() {
    let choice = kiln::gpu::AdapterChoice { name: Some("no such adapter".into()), ..Default::default() };
    let text = message(pollster::block_on(choice.pick()).map(|_| ()));
    let present = kiln::gpu::describe(common::gpu().gpu().info());
    assert!(text.contains("KILN_ADAPTER=no such adapter") && text.contains(&present), "{text}");
    assert!(!text.contains("apt-get"), "adapters exist: installing a driver is not the advice: {text}");
}

#[test]
fn an_unknown_backend_is_named() {
    let choice = kiln::gpu::AdapterChoice { backend: Some("glide".into()), ..Default::default() };
    let text = message(pollster::block_on(choice.pick()).map(|_| ()));
    assert!(text.contains("KILN_BACKEND=glide"), "{text}");
}

#[test]
fn a_run_with_an_input_never_set_is_refused() {
    let mut g = Graph::new();
    let x = g.input("pixels", vec![2], DType::F32);
    let y = g.relu(x).expect("relu");
    let mut exec = kiln::graph::Executor::compile(kiln::cpu::Cpu, &g, &[y]).expect("compile");
    let text = message(exec.run(&[y]));
    assert!(text.contains("`pixels` was never set"), "{text}");
    // An input no kernel of the run reads (labels of a loss that is not computed) need not be.
    let labels = g.input("labels", vec![2], DType::F32);
    let _unread_loss = g.sub(y, labels).expect("sub");
    let mut exec = kiln::graph::Executor::compile(kiln::cpu::Cpu, &g, &[y]).expect("compile");
    exec.set(x, &kiln::core::HostTensor::f32(vec![2], vec![-1.0, 2.0]).expect("x")).expect("set");
    assert_eq!(exec.run(&[y]).expect("runs without labels")[0].as_f32().expect("f32"), &[0.0, 2.0]);
}

#[test]
fn impossible_layer_configurations_are_refused_when_the_graph_is_built() {
    use kiln::core::{Conv2d, Pool2d, PoolKind};
    let mut g = Graph::new();
    let x = g.input("x", vec![2, 6, 5, 5], DType::F32);
    let w3 = g.input("w3", vec![4, 3, 3, 3], DType::F32);
    let w7 = g.input("w7", vec![4, 6, 7, 7], DType::F32);
    let w_bad = g.input("w_bad", vec![4, 5, 3, 3], DType::F32);
    let bias = g.input("b", vec![5], DType::F32);
    let w_t = g.input("w_t", vec![6, 2, 3, 3], DType::F32);

    let ids = g.input("ids", vec![3], DType::I32);
    let table = g.input("table", vec![4], DType::F32);
    let groups4 = Conv2d { groups: 4, ..Conv2d::default() };
    let pool = |kernel, padding| Pool2d { kind: PoolKind::Max, kernel, stride: [1, 1], padding };
    let cases = [
        (
            message(g.conv2d(x, w7, None, Conv2d::default())),
            vec!["conv2d", "larger than the padded input", "[2, 6, 5, 5]"],
        ),
        (message(g.conv2d(x, w3, None, groups4)), vec!["conv2d", "input channels (6)", "not divisible by groups (4)"]),
        (message(g.conv2d(x, w_bad, None, Conv2d::default())), vec!["conv2d", "6 input channels", "[4, 5, 3, 3]"]),
        (
            message(g.conv2d(x, w3, Some(bias), Conv2d { groups: 2, ..Conv2d::default() })),
            vec!["conv2d", "bias", "[4]", "[5]"],
        ),
        (
            message(g.conv2d(x, w3, None, Conv2d { stride: [0, 1], ..Conv2d::default() })),
            vec!["conv2d", "stride [0, 1]"],
        ),
        (
            message(g.conv_transpose2d(
                x,
                w_t,
                None,
                Conv2d { stride: [2, 2], groups: 2, ..Conv2d::default() },
                [2, 0],
            )),
            vec!["conv_transpose2d", "output_padding [2, 0]", "stride [2, 2]"],
        ),
        (
            message(g.pool2d(x, pool([7, 7], [0, 0]))),
            vec!["max_pool2d", "larger than the padded input", "[2, 6, 5, 5]"],
        ),
        (message(g.pool2d(x, pool([2, 2], [2, 0]))), vec!["max_pool2d", "padding [2, 0]", "half of kernel [2, 2]"]),
        (message(g.embedding(table, ids)), vec!["embedding", "table [V,D]", "[4]"]),
        (message(g.batch_norm(x, bias, bias, 1e-5)), vec!["batch_norm", "gamma", "[6]", "[5]"]),
        (message(g.layer_norm(x, table, table, 1e-5)), vec!["layer_norm", "gamma", "[5]", "[4]"]),
        (message(g.slice(x, 1, 4, 3)), vec!["slice", "4..7", "axis 1", "[2, 6, 5, 5]"]),
        (message(g.dropout(x, 1.5, 0, true)), vec!["dropout", "p = 1.5"]),
        (message(g.attention(x, x, w3, false)), vec!["attention", "q [B,H,T,D]", "[4, 3, 3, 3]"]),
    ];
    for (text, needles) in cases {
        for needle in needles {
            assert!(text.contains(needle), "`{text}` does not mention `{needle}`");
        }
    }
}

#[test]
fn labels_and_ids_out_of_range_are_refused_when_fed() {
    let mut g = Graph::new();
    let table = g.input("table", vec![10, 4], DType::F32);
    let ids = g.input("tokens", vec![3], DType::I32);
    let y = g.embedding(table, ids).expect("embedding");
    let exec = kiln::graph::Executor::compile(kiln::cpu::Cpu, &g, &[y]).expect("compile");
    let text = message(exec.set(ids, &HostTensor::i32(vec![3], vec![0, 10, 2]).expect("ids")));
    assert!(text.contains("embedding") && text.contains("index 10 in `tokens`") && text.contains("0..10"), "{text}");
    let text = message(exec.set(ids, &HostTensor::i32(vec![3], vec![0, -1, 2]).expect("ids")));
    assert!(text.contains("index -1"), "{text}");
}
