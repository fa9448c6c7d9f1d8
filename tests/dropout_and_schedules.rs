//! The ops whose attributes move every run: dropout's mask (drawn on the GPU from a seeded
//! hash, statistically sound, fresh each run, reproducible, the identity in eval mode) and
//! optimizer learning-rate schedules (the same trajectory on GPU and CPU, following the
//! schedule's formula).

mod common;

use kiln::core::{Backend, DType, HostTensor, LrSchedule, Sgd};
use kiln::graph::{Executor, Graph};

const N: usize = 200_000;

/// Two runs of dropout with probability `p` on a vector of ones.
fn two_masks(p: f32, seed: u32) -> (Vec<f32>, Vec<f32>) {
    let mut g = Graph::new();
    let x = g.input("x", vec![N], DType::F32);
    let y = g.dropout(x, p, seed, true).expect("dropout");
    let mut exec = Executor::compile(common::gpu(), &g, &[y]).expect("compile");
    exec.set(x, &HostTensor::f32(vec![N], vec![1.0; N]).expect("ones")).expect("x");
    let mut run = || exec.run(&[y]).expect("run").remove(0).as_f32().expect("f32").to_vec();
    (run(), run())
}

#[test]
fn dropout_drops_a_fraction_p_and_keeps_the_mean() {
    for p in [0.1f32, 0.5, 0.8] {
        let (first, _) = two_masks(p, 42);
        let dropped = first.iter().filter(|&&v| v == 0.0).count() as f64 / N as f64;
        let sigma = (p as f64 * (1.0 - p as f64) / N as f64).sqrt();
        assert!((dropped - p as f64).abs() < 5.0 * sigma, "p = {p}: dropped {dropped}");
        let scale = 1.0 / (1.0 - p);
        assert!(first.iter().all(|&v| v == 0.0 || (v - scale).abs() < 1e-6), "survivors are scaled by 1/(1-p)");
        let mean = first.iter().map(|&v| v as f64).sum::<f64>() / N as f64;
        assert!((mean - 1.0).abs() < 5.0 * sigma / (1.0 - p as f64), "p = {p}: mean {mean}");
        // Neighbours are independent: P(both dropped) ≈ p².
        let pairs = first.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64 / (N - 1) as f64;
        assert!((pairs - (p * p) as f64).abs() < 0.01, "p = {p}: adjacent drops {pairs}");
    }
}

#[test]
fn each_run_draws_a_fresh_mask_and_a_seed_reproduces_it() {
    let (first, second) = two_masks(0.5, 7);
    let same = first.iter().zip(&second).filter(|(a, b)| (**a == 0.0) == (**b == 0.0)).count() as f64 / N as f64;
    assert!((same - 0.5).abs() < 0.01, "consecutive runs agree on {same} of the mask (independent: 0.5)");
    let (again, _) = two_masks(0.5, 7);
    assert_eq!(first, again, "the same seed and run give the same mask");
    let (other, _) = two_masks(0.5, 8);
    assert_ne!(first, other, "another seed gives another mask");
}

#[test]
fn dropout_matches_the_cpu_mask_and_is_the_identity_in_eval_mode() {
    let mut g = Graph::new();
    let x = g.input("x", vec![1000], DType::F32);
    let y = g.dropout(x, 0.3, 5, true).expect("dropout");
    let ones = HostTensor::f32(vec![1000], vec![1.0; 1000]).expect("ones");
    let mut on_gpu = Executor::compile(common::gpu(), &g, &[y]).expect("compile");
    let mut on_cpu = Executor::compile(kiln::cpu::Cpu, &g, &[y]).expect("compile");
    for _ in 0..3 {
        on_gpu.set(x, &ones).expect("x");
        on_cpu.set(x, &ones).expect("x");
        assert_eq!(on_gpu.run(&[y]).expect("gpu"), on_cpu.run(&[y]).expect("cpu"), "GPU and CPU draw the same masks");
    }
    let mut eval = Graph::new();
    let x = eval.input("x", vec![4], DType::F32);
    assert_eq!(eval.dropout(x, 0.3, 5, false).expect("eval"), x, "eval mode adds no node");
}

#[test]
fn schedules_follow_their_formulas() {
    let step = LrSchedule::Step { every: 10, gamma: 0.5 };
    let rates: Vec<f64> = [1, 10, 11, 21].iter().map(|&t| step.at(0.1, t)).collect();
    let want = [0.1f32 as f64, 0.1f32 as f64, 0.05f32 as f64, 0.025f32 as f64];
    for (got, want) in rates.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "step schedule: {rates:?}");
    }
    let cosine = LrSchedule::Cosine { warmup: 0, total: 100, min_lr: 0.0 };
    assert!((cosine.at(1.0, 1) - 1.0).abs() < 1e-12);
    assert!((cosine.at(1.0, 51) - 0.5).abs() < 1e-12);
    assert!(cosine.at(1.0, 101).abs() < 1e-12 && cosine.at(1.0, 500).abs() < 1e-12, "holds at min_lr after total");
    // Warm-up: lr·t/10 for ten steps, then the cosine over the 90 left.
    let warm = LrSchedule::Cosine { warmup: 10, total: 100, min_lr: 0.0 };
    let rates: Vec<f64> = [1, 5, 10, 11, 56, 101].iter().map(|&t| warm.at(1.0, t)).collect();
    let want = [0.1, 0.5, 1.0, 1.0, 0.5, 0.0];
    assert!(rates.iter().zip(want).all(|(got, want)| (got - want).abs() < 1e-12), "warm-up then cosine: {rates:?}");
}

/// The weight after each of six SGD steps with gradient 1.
fn trajectory<B: Backend>(backend: B, sgd: Sgd) -> Vec<f32> {
    let mut g = Graph::new();
    let w = g.variable_init("w", HostTensor::f32(vec![1], vec![1.0]).expect("w"));
    let grad = g.input("g", vec![1], DType::F32);
    let buf = g.variable("buf", vec![1]);
    g.sgd_step(w, grad, buf, sgd).expect("sgd");
    let mut exec = Executor::compile(backend, &g, &[]).expect("compile");
    exec.set(grad, &HostTensor::f32(vec![1], vec![1.0]).expect("g")).expect("g");
    (0..6)
        .map(|_| {
            exec.run(&[]).expect("run");
            exec.read(&[w]).expect("read")[0].as_f32().expect("f32")[0]
        })
        .collect()
}

#[test]
fn a_scheduled_optimizer_takes_the_same_steps_on_gpu_and_cpu() {
    let schedule = LrSchedule::Cosine { warmup: 0, total: 4, min_lr: 0.01 };
    let sgd = Sgd { schedule, ..Sgd::new(0.5, 0.0, 0.0) };
    let (gpu, cpu) = (trajectory(common::gpu(), sgd), trajectory(kiln::cpu::Cpu, sgd));
    let mut w = 1.0f64;
    for (t, (&on_gpu, &on_cpu)) in gpu.iter().zip(&cpu).enumerate() {
        w -= schedule.at(0.5, t as u32 + 1);
        assert!(
            (on_gpu as f64 - w).abs() < 1e-5 && (on_cpu as f64 - w).abs() < 1e-6,
            "step {t}: {on_gpu} {on_cpu} vs {w}"
        );
    }
}
