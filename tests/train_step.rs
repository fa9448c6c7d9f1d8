//! Graph level: the same training step on the GPU and the CPU gives the same parameters, and
//! training lowers the loss.

mod common;

use kiln::core::{Adagrad, Adam, Backend, DType, HostTensor, LrSchedule, Rmsprop, Sgd};
use kiln::graph::Executor;
use kiln::nn::{Optimizer, mlp};

const BATCH: usize = 8;

fn batch(inputs: usize, classes: usize, seed: u64) -> (HostTensor, HostTensor) {
    let images = HostTensor::f32(vec![BATCH, inputs], common::random_vec(BATCH * inputs, seed)).expect("images");
    let labels = (0..BATCH).map(|i| ((i * 7 + seed as usize) % classes) as i32).collect();
    (images, HostTensor::i32(vec![BATCH], labels).expect("labels"))
}

/// Parameters after `steps` steps of an MLP with `sizes` under `optimizer`, and the losses.
fn train<B: Backend>(backend: B, sizes: &[usize], optimizer: Optimizer, steps: u64) -> (Vec<HostTensor>, Vec<f32>) {
    let mut model = mlp(BATCH, sizes, 3).expect("model");
    model.add_training(optimizer).expect("backward graph");
    let mut exec = Executor::compile(backend, &model.graph, &[model.loss]).expect("compile");
    let mut losses = Vec::new();
    for step in 0..steps {
        let (images, labels) = batch(sizes[0], sizes[sizes.len() - 1], step % 3);
        exec.set(model.images, &images).expect("images");
        exec.set(model.labels, &labels).expect("labels");
        losses.push(exec.run(&[model.loss]).expect("step")[0].as_f32().expect("f32")[0]);
    }
    (exec.read(&model.params).expect("params"), losses)
}

fn assert_same_training(sizes: &[usize], optimizer: Optimizer, steps: u64) {
    let (gpu_params, gpu_losses) = train(common::gpu(), sizes, optimizer, steps);
    let (cpu_params, cpu_losses) = train(kiln::cpu::Cpu, sizes, optimizer, steps);
    for (i, (g, c)) in gpu_params.iter().zip(&cpu_params).enumerate() {
        let error = common::relative_error(g.as_f32().expect("f32"), c.as_f32().expect("f32"));
        assert!(error < 1e-4, "parameter {i} of {sizes:?} differs by {error:.2e} after {steps} steps");
    }
    let loss_error = common::relative_error(&gpu_losses, &cpu_losses);
    assert!(loss_error < 1e-4, "losses differ: gpu {gpu_losses:?} cpu {cpu_losses:?}");
}

const SGD: Optimizer = Optimizer::Sgd(Sgd::new(0.1, 0.9, 1e-3));
const ADAM: Optimizer = Optimizer::Adam(Adam::new(1e-2));

#[test]
fn one_sgd_step_matches_on_gpu_and_cpu() {
    assert_same_training(&[20, 12, 5], SGD, 1);
}

#[test]
fn one_step_matches_with_4_aligned_shapes() {
    assert_same_training(&[16, 32, 8], SGD, 1);
}

#[test]
fn adam_steps_match_including_the_step_count() {
    assert_same_training(&[13, 9, 3], ADAM, 4);
}

/// Every rule, with weight decay, on parameters the GPU updates four elements at a time (the
/// 16·12 and 12·5 weights, the 12 biases) and one at a time (the 5 biases).
#[test]
fn every_optimizer_matches_on_gpu_and_cpu_in_fours_and_singles() {
    let schedule = LrSchedule::Constant;
    let (lr, weight_decay) = (1e-2, 1e-2);
    let optimizers = [
        Optimizer::Sgd(Sgd::new(0.1, 0.9, weight_decay)),
        Optimizer::Adam(Adam { weight_decay, ..Adam::new(lr) }),
        Optimizer::Adam(Adam { weight_decay, decoupled: true, ..Adam::new(lr) }),
        Optimizer::Adagrad(Adagrad { lr, eps: 1e-10, weight_decay, schedule, step: 1 }),
        Optimizer::Rmsprop(Rmsprop { lr, alpha: 0.99, eps: 1e-8, weight_decay, schedule, step: 1 }),
    ];
    for optimizer in optimizers {
        assert_same_training(&[16, 12, 5], optimizer, 3);
    }
}

#[test]
fn training_lowers_the_loss() {
    let (_, losses) = train(common::gpu(), &[16, 32, 4], ADAM, 60);
    let (first, last) = (losses[..3].iter().sum::<f32>(), losses[losses.len() - 3..].iter().sum::<f32>());
    assert!(last < 0.5 * first, "loss did not fall: {losses:?}");
}

#[test]
fn feeding_a_wrong_shape_is_an_error() {
    let model = mlp(BATCH, &[4, 3], 1).expect("model");
    let exec = Executor::compile(kiln::cpu::Cpu, &model.graph, &[model.loss]).expect("compile");
    let wrong = HostTensor::zeros(vec![BATCH, 5].into(), DType::F32);
    let message = exec.set(model.images, &wrong).expect_err("wrong shape").to_string();
    assert!(message.contains("[8, 4]") && message.contains("[8, 5]"), "{message}");
}

#[test]
fn variables_start_at_zero_in_buffers_reused_from_the_pool() {
    let backend = common::gpu();
    for fill in [7.0f32, 0.0] {
        // The first graph leaves 7s in its buffers; the second must still see a zero variable.
        let mut g = kiln::graph::Graph::new();
        let state = g.variable("state", vec![1000]);
        let x = g.input("x", vec![1000], DType::F32);
        let y = g.add(state, x).expect("add");
        let mut exec = Executor::compile(backend.clone(), &g, &[y]).expect("compile");
        exec.set(x, &HostTensor::f32(vec![1000], vec![fill; 1000]).expect("x")).expect("x");
        let got = exec.run(&[y]).expect("run").remove(0);
        assert!(
            got.as_f32().expect("f32").iter().all(|&v| v == fill),
            "stale state: {:?}",
            &got.as_f32().expect("f32")[..4]
        );
        let leftover = exec.set(state, &HostTensor::f32(vec![1000], vec![7.0; 1000]).expect("7s"));
        leftover.expect("state");
    }
}
