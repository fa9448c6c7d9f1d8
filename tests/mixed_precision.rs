//! Mixed precision: products take binary16-rounded operands, the GPU's rounding is the CPU
//! reference's bit for bit, and dynamic loss scaling skips a step whose gradients are not
//! finite (no parameter or optimizer state moves, the scale halves) and grows the scale after
//! enough finite steps.

mod common;

use kiln::core::{Adam, Backend, DType, HostTensor, LossScale, Op, Precision};
use kiln::graph::{Executor, Graph, Store};
use kiln::nn::{LOSS_SCALE, LOSS_SCALE_GOOD_STEPS, ModelSpec, Optimizer, ParamGroup, build_in, minimize_scaled};

/// `values` rounded to binary16 by a `round_half` kernel on `backend`.
fn rounded<B: Backend>(backend: B, values: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input("x", vec![values.len()], DType::F32);
    let y = g.push(Op::RoundHalf, &[x]).expect("round_half");
    let mut exec = Executor::compile(backend, &g, &[y]).expect("compile");
    exec.set(x, &HostTensor::f32(vec![values.len()], values.to_vec()).expect("x")).expect("set");
    exec.run(&[y]).expect("run").remove(0).as_f32().expect("f32").to_vec()
}

fn same_bits(got: &[f32], want: &[f32]) -> bool {
    got.iter().zip(want).all(|(g, w)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()))
}

/// Edge cases, with the binary16 value each must become (ties to even throughout).
const EDGES: [(f32, f32); 16] = [
    (0.0, 0.0),
    (-0.0, -0.0),
    (1.0 + 1.0 / 2048.0, 1.0),                // a tie: to the even 1
    (1.0 + 3.0 / 2048.0, 1.0 + 4.0 / 2048.0), // a tie: to the even 1 + 2^-9
    (1.0 + 1.5 / 2048.0, 1.0 + 2.0 / 2048.0), // past the tie: up
    (65504.0, 65504.0),                       // the largest finite half
    (65519.996, 65504.0),                     // below the halfway point to 2^16
    (65520.0, f32::INFINITY),                 // the halfway point: to "even" infinity
    (-1e10, f32::NEG_INFINITY),
    (f32::INFINITY, f32::INFINITY),
    (6.103_515_6e-5, 6.103_515_6e-5), // 2^-14, the smallest normal half
    (5.960_464_5e-8, 5.960_464_5e-8), // 2^-24, the smallest subnormal
    (2.980_232_2e-8, 0.0),            // 2^-25, a tie: to the even 0
    (8.940_697e-8, 1.192_092_9e-7),   // 3·2^-25, a tie: to the even 2^-23
    (1e-9, 0.0),
    (-3.0e-6, -2.980_232_2e-6), // a subnormal: 50·2^-24
];

fn assert_rounds_like_the_reference<B: Backend + Clone>(backend: B) {
    let inputs: Vec<f32> = EDGES.iter().map(|e| e.0).chain([f32::NAN]).collect();
    let want: Vec<f32> = EDGES.iter().map(|e| e.1).chain([f32::NAN]).collect();
    // 17 values: the scalar kernel; their first 16: the four-wide one.
    let got = rounded(backend.clone(), &inputs);
    assert!(same_bits(&got, &want), "got {got:?}\nwant {want:?}");
    let got = rounded(backend, &inputs[..16]);
    assert!(same_bits(&got, &want[..16]), "four-wide: got {got:?}");
}

#[test]
fn round_half_rounds_edge_cases_to_nearest_even_on_the_gpu() {
    assert_rounds_like_the_reference(common::gpu());
}

#[test]
fn round_half_rounds_edge_cases_to_nearest_even_on_the_cpu_reference() {
    assert_rounds_like_the_reference(kiln::cpu::Cpu);
}

/// Values over every binary16 magnitude, overflow and underflow included: the GPU's bits are
/// the CPU reference's (the `half` crate's).
#[test]
fn round_half_on_the_gpu_matches_the_cpu_reference_bit_for_bit() {
    let values: Vec<f32> =
        common::random_vec(40_000, 3).iter().enumerate().map(|(i, &v)| v * 2f32.powi((i % 60) as i32 - 34)).collect();
    let (gpu, cpu) = (rounded(common::gpu(), &values), rounded(kiln::cpu::Cpu, &values));
    if let Some(i) = gpu.iter().zip(&cpu).position(|(g, c)| g.to_bits() != c.to_bits()) {
        panic!("{} became {} on the GPU, {} on the CPU", values[i], gpu[i], cpu[i]);
    }
}

/// Under `Precision::Mixed` every product reads rounded operands, each value rounded once
/// however many products read it; an f32 graph has no rounding at all.
#[test]
fn mixed_graphs_round_every_product_operand_once() {
    let count = |precision: Precision| {
        let mut model = build_in(&ModelSpec::named("cnn"), 2, 784, true, 1, precision).expect("model");
        model.add_training(Optimizer::Adam(Adam::new(1e-3))).expect("training");
        let g = &model.graph;
        let rounds = g.nodes().iter().filter(|n| n.op == Op::RoundHalf).count();
        for node in g.nodes() {
            for &i in node.op.product_operands() {
                let operand = &g.node(node.inputs[i]).op;
                assert_eq!(
                    *operand == Op::RoundHalf,
                    precision == Precision::Mixed,
                    "{} reads {operand:?}",
                    node.op.name()
                );
            }
        }
        let rounded: Vec<_> = g.nodes().iter().filter(|n| n.op == Op::RoundHalf).map(|n| n.inputs[0]).collect();
        let mut distinct = rounded.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), rounded.len(), "a value rounded twice");
        rounds
    };
    assert_eq!(count(Precision::F32), 0);
    // Forward: the images, three activations and four weights; backward: the gradient entering
    // each of the four layers (the products of a layer's two gradients share it).
    assert_eq!(count(Precision::Mixed), 12);
}

const BATCH: usize = 4;

/// A mixed-precision CNN with loss scaling on `backend`: its store after `steps` steps with the
/// scale first set to `scale`, and the parameters' names.
fn scaled_steps<B: Backend>(backend: B, scale: f32, growth_interval: u32, steps: usize) -> (Store<B>, Vec<String>) {
    let mut model = build_in(&ModelSpec::named("cnn"), BATCH, 784, true, 5, Precision::Mixed).expect("model");
    let group = ParamGroup { params: model.params.clone(), optimizer: Optimizer::Adam(Adam::new(1e-2)) };
    let scaling = LossScale { growth_interval };
    minimize_scaled(&mut model.graph, model.loss, &[group], None, scaling).expect("training");
    let mut store = Store::new(backend);
    let program = kiln::graph::Program::compile(&mut store, &model.graph, &[model.loss]).expect("compile");
    store.write(LOSS_SCALE, &HostTensor::f32(vec![], vec![scale]).expect("scale")).expect("scale");
    for step in 0..steps {
        let images = HostTensor::f32(vec![BATCH, 784], common::random_vec(BATCH * 784, step as u64)).expect("x");
        program.set(model.images, &images).expect("images");
        program.set(model.labels, &HostTensor::i32(vec![BATCH], vec![1, 7, 3, 0]).expect("y")).expect("labels");
        program.run(&mut store, &[model.loss]).expect("step");
    }
    let names = model.params.iter().map(|&v| model.graph.node(v).name.clone()).collect();
    (store, names)
}

fn scale_and_count<B: Backend>(store: &Store<B>) -> (f32, f32) {
    let read = store.read(&[LOSS_SCALE, LOSS_SCALE_GOOD_STEPS]).expect("read");
    (read[0].as_f32().expect("f32")[0], read[1].as_f32().expect("f32")[0])
}

fn assert_overflow_skips_the_step<B: Backend + Clone>(backend: B) {
    // 2^100: the scaled gradients overflow binary16 and the products make them infinite.
    let huge = 2f32.powi(100);
    let (before, names) = scaled_steps(backend.clone(), huge, 2000, 0);
    let (after, _) = scaled_steps(backend, huge, 2000, 1);
    let state: Vec<String> = names.iter().flat_map(|n| [n.clone(), format!("{n}.m"), format!("{n}.v")]).collect();
    let state: Vec<&str> = state.iter().map(String::as_str).collect();
    let (was, is) = (before.read(&state).expect("before"), after.read(&state).expect("after"));
    for ((name, a), b) in state.iter().zip(&was).zip(&is) {
        assert!(a.as_f32().expect("f32") == b.as_f32().expect("f32"), "{name} moved in a skipped step");
    }
    assert_eq!(scale_and_count(&after), (huge / 2.0, 0.0));
}

#[test]
fn a_step_with_overflowing_gradients_is_skipped_and_halves_the_scale_on_the_gpu() {
    assert_overflow_skips_the_step(common::gpu());
}

#[test]
fn a_step_with_overflowing_gradients_is_skipped_and_halves_the_scale_on_the_cpu_reference() {
    assert_overflow_skips_the_step(kiln::cpu::Cpu);
}

/// Finite steps count up and, at the growth interval, double the scale and start again; the
/// parameters train as in f32 within binary16 operands' error, on the GPU and the CPU alike.
#[test]
fn finite_steps_grow_the_scale_and_train_alike_on_gpu_and_cpu() {
    let (gpu, names) = scaled_steps(common::gpu(), 1024.0, 2, 3);
    let (cpu, _) = scaled_steps(kiln::cpu::Cpu, 1024.0, 2, 3);
    assert_eq!(scale_and_count(&gpu), (2048.0, 1.0));
    assert_eq!(scale_and_count(&cpu), (2048.0, 1.0));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (g, c) = (gpu.read(&names).expect("gpu"), cpu.read(&names).expect("cpu"));
    for ((name, g), c) in names.iter().zip(&g).zip(&c) {
        let error = common::relative_error(g.as_f32().expect("f32"), c.as_f32().expect("f32"));
        assert!(error < 1e-3, "{name}: GPU and CPU differ by {error:e}");
    }
}

/// The scale and count after one `loss_scale_update` on `backend` from `scale`, `count` and a
/// step's `factor`.
fn updated<B: Backend>(backend: B, scaling: LossScale, scale: f32, count: f32, factor: f32) -> (f32, f32) {
    let mut g = Graph::new();
    let s = g.variable_init(LOSS_SCALE, HostTensor::f32(vec![], vec![scale]).expect("scale"));
    let n = g.variable_init(LOSS_SCALE_GOOD_STEPS, HostTensor::f32(vec![], vec![count]).expect("count"));
    let f = g.input("factor", vec![], DType::F32);
    g.push(Op::LossScaleUpdate(scaling), &[s, n, f]).expect("update");
    let mut store = Store::new(backend);
    let program = kiln::graph::Program::compile(&mut store, &g, &[]).expect("compile");
    program.set(f, &HostTensor::f32(vec![], vec![factor]).expect("factor")).expect("factor");
    program.run(&mut store, &[]).expect("run");
    scale_and_count(&store)
}

/// The update's rules at their edges, alike on the GPU and the CPU reference: a skipped step
/// halves the scale down to 1 and restarts the count; a finite one counts, and at the interval
/// doubles the scale up to 2^24.
#[test]
fn the_scale_update_follows_its_rules_within_bounds() {
    let scaling = LossScale { growth_interval: 3 };
    let cases = [
        ((1024.0, 2.0, 0.0), (512.0, 0.0)),
        ((1.0, 1.0, 0.0), (1.0, 0.0)),
        ((1024.0, 0.0, 1.0 / 1024.0), (1024.0, 1.0)),
        ((1024.0, 2.0, 1.0 / 1024.0), (2048.0, 0.0)),
        ((LossScale::MAX, 2.0, 1.0 / LossScale::MAX), (LossScale::MAX, 0.0)),
    ];
    for ((scale, count, factor), want) in cases {
        assert_eq!(updated(common::gpu(), scaling, scale, count, factor), want, "GPU from {scale}, {count}, {factor}");
        assert_eq!(updated(kiln::cpu::Cpu, scaling, scale, count, factor), want, "CPU from {scale}, {count}, {factor}");
    }
}

/// The factor of a step from `Σg²` and `scale`, with or without clipping, on `backend`.
fn factor<B: Backend>(backend: B, max_norm: Option<f32>, total: f32, scale: f32) -> f32 {
    let mut g = Graph::new();
    let t = g.input("total", vec![], DType::F32);
    let s = g.input("scale", vec![], DType::F32);
    let f = g.push(Op::LossScaleFactor { max_norm }, &[t, s]).expect("factor");
    let mut exec = Executor::compile(backend, &g, &[f]).expect("compile");
    exec.set(t, &HostTensor::f32(vec![], vec![total]).expect("total")).expect("total");
    exec.set(s, &HostTensor::f32(vec![], vec![scale]).expect("scale")).expect("scale");
    exec.run(&[f]).expect("run").remove(0).as_f32().expect("f32")[0]
}

/// A step's factor unscales, clips the unscaled gradients where asked, and is 0 (a skipped
/// step) for an infinite or NaN sum however it would clip.
#[test]
fn the_step_factor_unscales_clips_and_skips() {
    // Σg² = 64 at scale 2: unscaled norm 4, clipped to 1 by min(1, 1 / (4 + 1e-6)).
    let clipped = (1.0 / (4.0 + 1e-6)) / 2.0;
    let cases = [
        (None, 64.0, 2.0, 0.5),
        (Some(10.0), 64.0, 2.0, 0.5),
        (Some(1.0), 64.0, 2.0, clipped),
        (None, f32::INFINITY, 2.0, 0.0),
        (Some(1.0), f32::INFINITY, 2.0, 0.0),
        (Some(1.0), f32::NAN, 2.0, 0.0),
    ];
    for (max_norm, total, scale, want) in cases {
        for (device, got) in [
            ("GPU", factor(common::gpu(), max_norm, total, scale)),
            ("CPU", factor(kiln::cpu::Cpu, max_norm, total, scale)),
        ] {
            let close = (got as f64 - want).abs() <= 1e-6 * want.abs();
            assert!(close && got.is_finite(), "{device}: {max_norm:?}, Σg² {total}, scale {scale}: {got}, want {want}");
        }
    }
}

/// `kiln train --precision mixed` trains and says after each epoch where the loss scale stands.
#[test]
fn the_command_line_trains_mixed_and_reports_the_scale() {
    let data = common::synthetic_data();
    let data = data.to_str().expect("utf-8");
    let args =
        ["train", "--model", "mlp", "--precision", "mixed", "--steps", "3", "--validation", "200", "--data", data];
    let (ok, out, err) = common::kiln(&args);
    assert!(ok, "{out}{err}");
    assert!(err.contains("loss scale 65536, 3 finite steps since it last changed"), "{err}");
}
