//! Bad input is rejected with an error naming the op and the shapes — when the graph is built,
//! or, for environment limits, before wgpu sees the request.

mod common;

use kiln::core::{DType, Error, HostTensor, Sgd};
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
    let text = message(g.sgd_step(p, grad, buf, Sgd { lr: 0.1, momentum: 0.0, weight_decay: 0.0 }));
    assert!(text.contains("sgd_step") && text.contains("must be a variable"), "{text}");
}

#[test]
fn out_of_range_labels_are_an_error_on_cpu_and_nan_on_gpu() {
    let logits = HostTensor::f32(vec![2, 3], vec![0.0; 6]).expect("logits");
    let labels = HostTensor::i32(vec![2], vec![1, 3]).expect("labels");
    let text = message(kiln::cpu::eval(&kiln::core::Op::CrossEntropyPerSample, &[&logits, &labels]));
    assert!(text.contains("label 3 out of range for 3 classes"), "{text}");

    let mut g = Graph::new();
    let x = g.input("x", vec![2, 3], DType::F32);
    let y = g.input("y", vec![2], DType::I32);
    let loss = g.cross_entropy(x, y).expect("builds");
    let mut exec = kiln::graph::Executor::compile(common::gpu(), &g, &[loss]).expect("compile");
    exec.set(x, &logits).expect("x");
    exec.set(y, &labels).expect("y");
    let value = exec.run(&[loss]).expect("runs")[0].as_f32().expect("f32")[0];
    assert!(value.is_nan(), "a bad label must not give a plausible loss, got {value}");
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
