//! Noise drawn on the device (`random_normal`): standard normal by its moments and quantiles,
//! independent between neighbours and between runs, reproducible from its seed, the same
//! values on the GPU as on the CPU reference, and counted in the parameter store so that
//! every program drawing from one seed continues one sequence.

mod common;

use kiln::core::Backend;
use kiln::graph::{Executor, Graph, Program, Store};

const N: usize = 1 << 20;

/// `runs` consecutive draws of `n` values from the generator seeded by `seed`.
fn draws<B: Backend>(backend: B, n: usize, seed: u32, runs: usize) -> Vec<Vec<f32>> {
    let mut g = Graph::new();
    let z = g.random_normal(vec![n], seed).expect("random_normal");
    let mut exec = Executor::compile(backend, &g, &[z]).expect("compile");
    (0..runs).map(|_| exec.run(&[z]).expect("run").remove(0).as_f32().expect("f32").to_vec()).collect()
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

/// Pearson's correlation of `a` and `b`.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - ma) * (y as f64 - mb)).sum();
    let var = |v: &[f32], m: f64| v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt()
}

#[test]
fn noise_has_the_moments_and_quantiles_of_a_standard_normal() {
    let z = draws(common::gpu(), N, 11, 1).remove(0);
    let n = N as f64;
    let moment = |k: i32| z.iter().map(|&x| (x as f64).powi(k)).sum::<f64>() / n;
    // Five standard errors of each sample moment of N(0, 1).
    let (m1, m2, m3, m4) = (moment(1), moment(2), moment(3), moment(4));
    assert!(m1.abs() < 5.0 / n.sqrt(), "mean {m1}");
    assert!((m2 - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {m2}");
    assert!(m3.abs() < 5.0 * (15.0 / n).sqrt(), "third moment {m3}");
    assert!((m4 - 3.0).abs() < 5.0 * (96.0 / n).sqrt(), "fourth moment {m4}");
    // Φ at a few points, each within five binomial standard errors.
    for (x, phi) in [(-1.959964, 0.025), (-1.0, 0.158655), (0.0, 0.5), (1.0, 0.841345), (2.575829, 0.995)] {
        let below = z.iter().filter(|&&v| (v as f64) < x).count() as f64 / n;
        assert!((below - phi).abs() < 5.0 * (phi * (1.0 - phi) / n).sqrt(), "P(z < {x}) = {below}, want {phi}");
    }
    assert!(z.iter().all(|v| v.is_finite() && v.abs() < 6.0), "24-bit uniforms bound |z| by 5.77");
}

#[test]
fn neighbours_and_runs_are_independent_and_a_seed_reproduces_them() {
    let runs = draws(common::gpu(), N, 3, 2);
    let bound = 5.0 / (N as f64).sqrt();
    let neighbours = correlation(&runs[0][..N - 1], &runs[0][1..]);
    assert!(neighbours.abs() < bound, "adjacent elements correlate: {neighbours}");
    let between = correlation(&runs[0], &runs[1]);
    assert!(between.abs() < bound, "consecutive runs correlate: {between}");
    assert_ne!(runs[0], runs[1], "each run draws afresh");
    assert_eq!(draws(common::gpu(), N, 3, 2), runs, "the same seed gives the same runs");
    let other = draws(common::gpu(), N, 4, 1).remove(0);
    let across = correlation(&runs[0], &other);
    assert!(across.abs() < bound, "another seed gives independent noise: {across}");
}

#[test]
fn the_gpu_draws_the_cpu_references_values() {
    let (gpu, cpu) = (draws(common::gpu(), 100_000, 5, 3), draws(kiln::cpu::Cpu, 100_000, 5, 3));
    for (run, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        // f32 logarithm and cosine against f64 rounded once: a few ulps of |z| at most (near u₁ = 1
        // too, where the kernel takes ln u₁ from a series).
        let worst = g.iter().zip(c).map(|(&a, &b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "run {run}: GPU and CPU differ by {worst} relative");
    }
}

#[test]
fn programs_drawing_from_one_seed_continue_one_sequence() {
    let build = |n: usize| {
        let mut g = Graph::new();
        let z = g.random_normal(vec![n], 9).expect("random_normal");
        (g, z)
    };
    let mut store = Store::new(common::gpu());
    let (g, z) = build(64);
    let first = Program::compile(&mut store, &g, &[z]).expect("compile");
    let a = first.run(&mut store, &[z]).expect("run").remove(0);
    let second = Program::compile(&mut store, &g, &[z]).expect("compile");
    let b = second.run(&mut store, &[z]).expect("run").remove(0);
    assert_eq!(store.counter("noise.00000009.step"), 2, "the store counts both runs");
    let reference = draws(common::gpu(), 64, 9, 2);
    assert_eq!(a.as_f32().expect("f32"), &reference[0][..]);
    assert_eq!(b.as_f32().expect("f32"), &reference[1][..], "the second program draws the sequence's next run");
}

#[test]
fn a_draw_past_the_counters_range_is_refused_when_built() {
    let mut g = Graph::new();
    let text = g.random_normal(vec![1 << 16, 1 << 15], 1).expect_err("2³¹ elements").to_string();
    assert!(text.contains("random_normal") && text.contains("too many elements"), "{text}");
    assert!(g.random_normal(vec![0, 4], 1).is_err(), "an empty draw is refused like any empty tensor");
}
