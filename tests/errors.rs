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
    let kernel = backend.prepare(&Op::CrossEntropyPerSample, &inputs, &outputs).expect("prepare");
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
fn an_adapter_that_is_not_there_says_how_to_get_one() {
    let choice = kiln::gpu::AdapterChoice { backend: None, name: Some("no such adapter".into()) };
    let text = message(pollster::block_on(choice.pick()).map(|_| ()));
    assert!(text.contains("apt-get install mesa-vulkan-drivers") && text.contains("KILN_ADAPTER"), "{text}");
}

#[test]
fn an_unknown_backend_is_named() {
    let choice = kiln::gpu::AdapterChoice { backend: Some("glide".into()), name: None };
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
}
