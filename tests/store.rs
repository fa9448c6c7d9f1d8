//! Many programs over one parameter store: an evaluation program at another batch size sees
//! the training program's weights with no copy; chosen updates leave frozen parameters
//! bit-identical and match a host reference; a step split at the gradient equals the fused
//! step; misuse gets errors of its own. Each on the GPU and the CPU backend.

mod common;

use kiln::core::{Adam, Backend, Error, HostTensor, Sgd};
use kiln::graph::{Executor, Graph, Program, Store};
use kiln::nn::{GradientSink, Optimizer, ParamGroup, apply_gradients, minimize, store_gradients};
use kiln::nn::{Model, mlp};

const SIZES: [usize; 3] = [12, 9, 4];

fn batch(rows: usize, seed: u64) -> (HostTensor, HostTensor) {
    let images = HostTensor::f32(vec![rows, SIZES[0]], common::random_vec(rows * SIZES[0], seed)).expect("images");
    let labels = (0..rows).map(|i| ((i * 7 + seed as usize) % SIZES[2]) as i32).collect();
    (images, HostTensor::i32(vec![rows], labels).expect("labels"))
}

fn feed<B: Backend>(program: &Program<B>, model: &Model, rows: usize, seed: u64) {
    let (images, labels) = batch(rows, seed);
    program.set(model.images, &images).expect("images");
    program.set(model.labels, &labels).expect("labels");
}

/// The parameters' names, in the model's order.
fn names(model: &Model) -> Vec<String> {
    model.params.iter().map(|&p| model.graph.node(p).name.clone()).collect()
}

fn read<B: Backend>(store: &Store<B>, names: &[String]) -> Vec<Vec<f32>> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store.read(&refs).expect("read").iter().map(|t| t.as_f32().expect("f32").to_vec()).collect()
}

fn two_programs_share_the_weights<B: Backend>(backend: B) {
    let mut store = Store::new(backend.clone());
    let mut train = mlp(8, &SIZES, 5).expect("model");
    minimize(&mut train.graph, train.loss, &[ParamGroup { params: train.params.clone(), optimizer: ADAM }], None)
        .expect("training graph");
    let train_program = Program::compile(&mut store, &train.graph, &[train.loss]).expect("compile");
    let eval = mlp(5, &SIZES, 99).expect("eval model");
    let eval_program = Program::compile(&mut store, &eval.graph, &[eval.logits]).expect("compile");
    for step in 0..3 {
        feed(&train_program, &train, 8, step);
        train_program.run(&mut store, &[train.loss]).expect("step");
    }
    feed(&eval_program, &eval, 5, 42);
    let logits = eval_program.run(&mut store, &[eval.logits]).expect("eval").remove(0);
    // The reference: the trained weights read back and set into a graph of its own.
    let mut reference = Executor::compile(kiln::cpu::Cpu, &eval.graph, &[eval.logits]).expect("reference");
    let trained = store.read_all().expect("read");
    for &p in &eval.params {
        reference.set(p, &trained[&eval.graph.node(p).name]).expect("set");
    }
    let (images, labels) = batch(5, 42);
    reference.set(eval.images, &images).expect("images");
    reference.set(eval.labels, &labels).expect("labels");
    let want = reference.run(&[eval.logits]).expect("run").remove(0);
    let error = common::relative_error(logits.as_f32().expect("f32"), want.as_f32().expect("f32"));
    assert!(error < 1e-5, "the evaluation program does not see the trained weights: {error:.2e}");
    let untrained = mlp(5, &SIZES, 5).expect("model");
    assert_ne!(
        trained["fc0.weight"],
        untrained.graph.node(untrained.params[0]).init.clone().expect("init"),
        "training changed the weights the evaluation program reads"
    );
}

const ADAM: Optimizer = Optimizer::Adam(Adam::new(1e-2));

#[test]
fn an_evaluation_program_at_another_batch_reads_the_trained_weights_gpu() {
    two_programs_share_the_weights(common::gpu());
}

#[test]
fn an_evaluation_program_at_another_batch_reads_the_trained_weights_cpu() {
    two_programs_share_the_weights(kiln::cpu::Cpu);
}

/// The MLP 12-9-4 (ReLU, cross-entropy) with its forward and backward pass by hand, in f64.
struct HostMlp {
    /// fc0.weight [9,12], fc0.bias [9], fc1.weight [4,9], fc1.bias [4], as in the model.
    params: Vec<Vec<f64>>,
    /// Per parameter: SGD's momentum buffer, or Adam's m and v.
    state: Vec<[Vec<f64>; 2]>,
}

impl HostMlp {
    fn from(model: &Model) -> Self {
        let params: Vec<Vec<f64>> = model
            .params
            .iter()
            .map(|&p| {
                let init = model.graph.node(p).init.clone().expect("init");
                init.as_f32().expect("f32").iter().map(|&v| v as f64).collect()
            })
            .collect();
        let state = params.iter().map(|p| [vec![0.0; p.len()], vec![0.0; p.len()]]).collect();
        HostMlp { params, state }
    }

    /// Gradients of the mean cross-entropy over the batch.
    fn gradients(&self, images: &[f32], labels: &[i32]) -> Vec<Vec<f64>> {
        let [i, h, c] = SIZES;
        let (w0, b0, w1, b1) = (&self.params[0], &self.params[1], &self.params[2], &self.params[3]);
        let mut grads: Vec<Vec<f64>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        let rows = labels.len();
        for (x, &label) in images.chunks(i).zip(labels) {
            let z0: Vec<f64> =
                (0..h).map(|j| b0[j] + (0..i).map(|k| w0[j * i + k] * x[k] as f64).sum::<f64>()).collect();
            let hidden: Vec<f64> = z0.iter().map(|&v| v.max(0.0)).collect();
            let z1: Vec<f64> = (0..c).map(|j| b1[j] + (0..h).map(|k| w1[j * h + k] * hidden[k]).sum::<f64>()).collect();
            let top = z1.iter().copied().fold(f64::MIN, f64::max);
            let total: f64 = z1.iter().map(|v| (v - top).exp()).sum();
            let dz1: Vec<f64> =
                (0..c).map(|j| ((z1[j] - top).exp() / total - f64::from(j as i32 == label)) / rows as f64).collect();
            for j in 0..c {
                grads[3][j] += dz1[j];
                for k in 0..h {
                    grads[2][j * h + k] += dz1[j] * hidden[k];
                }
            }
            for k in 0..h {
                let dz0 = if z0[k] > 0.0 { (0..c).map(|j| w1[j * h + k] * dz1[j]).sum::<f64>() } else { 0.0 };
                grads[1][k] += dz0;
                for m in 0..i {
                    grads[0][k * i + m] += dz0 * x[m] as f64;
                }
            }
        }
        grads
    }

    /// One step: parameter `p` is updated by `optimizers[p]` at 1-based step `t`, or frozen.
    fn step(&mut self, images: &[f32], labels: &[i32], optimizers: &[Option<Optimizer>], t: i32) {
        let grads = self.gradients(images, labels);
        for (p, grad) in grads.iter().enumerate() {
            let [first, second] = &mut self.state[p];
            for (e, &g) in grad.iter().enumerate() {
                let param = &mut self.params[p][e];
                match optimizers[p] {
                    None => {}
                    Some(Optimizer::Sgd(s)) => {
                        first[e] = s.momentum as f64 * first[e] + g;
                        *param -= s.lr as f64 * first[e];
                    }
                    Some(Optimizer::Adam(a)) => {
                        let (b1, b2) = (a.beta1 as f64, a.beta2 as f64);
                        first[e] = b1 * first[e] + (1.0 - b1) * g;
                        second[e] = b2 * second[e] + (1.0 - b2) * g * g;
                        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                        *param -= a.lr as f64 * (first[e] / c1) / ((second[e] / c2).sqrt() + a.eps as f64);
                    }
                    Some(other) => panic!("no host reference for {other:?}"),
                }
            }
        }
    }
}

/// Trains the MLP for `steps` steps with `groups` (indices into its parameters) on `backend`
/// and on the host; checks frozen parameters bit for bit and updated ones within 1e-5.
fn chosen_updates<B: Backend>(backend: B, groups: &[(&[usize], Optimizer)], steps: u64) {
    let mut model = mlp(6, &SIZES, 11).expect("model");
    let initial: Vec<HostTensor> =
        model.params.iter().map(|&p| model.graph.node(p).init.clone().expect("init")).collect();
    let mut host = HostMlp::from(&model);
    let mut per_param = vec![None; model.params.len()];
    let param_groups: Vec<ParamGroup> = groups
        .iter()
        .map(|&(indices, optimizer)| {
            for &i in indices {
                per_param[i] = Some(optimizer);
            }
            ParamGroup { params: indices.iter().map(|&i| model.params[i]).collect(), optimizer }
        })
        .collect();
    minimize(&mut model.graph, model.loss, &param_groups, None).expect("training graph");
    let mut store = Store::new(backend);
    let program = Program::compile(&mut store, &model.graph, &[model.loss]).expect("compile");
    for step in 0..steps {
        feed(&program, &model, 6, step);
        program.run(&mut store, &[model.loss]).expect("step");
        let (images, labels) = batch(6, step);
        host.step(images.as_f32().expect("f32"), labels.as_i32().expect("i32"), &per_param, step as i32 + 1);
    }
    for (i, got) in read(&store, &names(&model)).iter().enumerate() {
        match per_param[i] {
            None => assert_eq!(got, initial[i].as_f32().expect("f32"), "frozen parameter {i} changed"),
            Some(_) => {
                let want: Vec<f32> = host.params[i].iter().map(|&v| v as f32).collect();
                let error = common::relative_error(got, &want);
                assert!(error < 1e-5, "parameter {i} is off the host reference by {error:.2e}");
                assert_ne!(got, initial[i].as_f32().expect("f32"), "parameter {i} did not change");
            }
        }
    }
}

const SGD_MOMENTUM: Optimizer = Optimizer::Sgd(Sgd::new(0.1, 0.9, 0.0));
const SLOW_ADAM: Optimizer = Optimizer::Adam(Adam { beta1: 0.5, ..Adam::new(2e-3) });

#[test]
fn frozen_layers_stay_bit_identical_gpu() {
    chosen_updates(common::gpu(), &[(&[2, 3], ADAM)], 5);
}

#[test]
fn frozen_layers_stay_bit_identical_cpu() {
    chosen_updates(kiln::cpu::Cpu, &[(&[2, 3], ADAM)], 5);
}

#[test]
fn two_optimizers_each_with_their_own_state_gpu() {
    chosen_updates(common::gpu(), &[(&[0, 1], SGD_MOMENTUM), (&[2, 3], SLOW_ADAM)], 4);
}

#[test]
fn two_optimizers_each_with_their_own_state_cpu() {
    chosen_updates(kiln::cpu::Cpu, &[(&[0, 1], SGD_MOMENTUM), (&[2, 3], SLOW_ADAM)], 4);
}

#[test]
fn a_parameter_in_two_groups_is_refused() {
    let mut model = mlp(2, &SIZES, 1).expect("model");
    let groups = [
        ParamGroup { params: model.params.clone(), optimizer: ADAM },
        ParamGroup { params: vec![model.params[0]], optimizer: SGD_MOMENTUM },
    ];
    let message = minimize(&mut model.graph, model.loss, &groups, None).expect_err("refused").to_string();
    assert!(message.contains("fc0.weight") && message.contains("more than one group"), "{message}");
}

/// The full-batch step fused in one program, and the same step split at the gradient: two
/// half-batch gradient programs (the first assigns `<param>.grad`, the second adds to it,
/// each loss halved so the sum is the full batch's mean), then an update program.
fn split_step_equals_fused_step<B: Backend>(backend: B) {
    const FULL: usize = 16;
    let mut fused = mlp(FULL, &SIZES, 21).expect("model");
    let all = |m: &Model| vec![ParamGroup { params: m.params.clone(), optimizer: ADAM }];
    let groups = all(&fused);
    minimize(&mut fused.graph, fused.loss, &groups, None).expect("fused");
    let mut fused_store = Store::new(backend.clone());
    let fused_program = Program::compile(&mut fused_store, &fused.graph, &[fused.loss]).expect("compile");

    let mut store = Store::new(backend);
    let half = |sink| {
        let mut m = mlp(FULL / 2, &SIZES, 21).expect("model");
        let halved = m.graph.scale(m.loss, 0.5).expect("scale");
        store_gradients(&mut m.graph, halved, &m.params.clone(), sink).expect("gradients");
        m
    };
    let (first, second) = (half(GradientSink::Assign), half(GradientSink::Accumulate));
    let first_program = Program::compile(&mut store, &first.graph, &[first.loss]).expect("compile");
    let second_program = Program::compile(&mut store, &second.graph, &[second.loss]).expect("compile");
    let update = apply_gradients(&first.graph, &all(&first), None).expect("update graph");
    let update_program = Program::compile(&mut store, &update, &[]).expect("compile");

    for step in 0..3 {
        let (images, labels) = batch(FULL, step);
        fused_program.set(fused.images, &images).expect("images");
        fused_program.set(fused.labels, &labels).expect("labels");
        fused_program.run(&mut fused_store, &[]).expect("fused step");
        for (program, model, rows) in
            [(&first_program, &first, 0..FULL / 2), (&second_program, &second, FULL / 2..FULL)]
        {
            let pixels = &images.as_f32().expect("f32")[rows.start * SIZES[0]..rows.end * SIZES[0]];
            let part = HostTensor::f32(vec![FULL / 2, SIZES[0]], pixels.to_vec()).expect("images");
            program.set(model.images, &part).expect("images");
            let part = HostTensor::i32(vec![FULL / 2], labels.as_i32().expect("i32")[rows].to_vec()).expect("labels");
            program.set(model.labels, &part).expect("labels");
            program.run(&mut store, &[]).expect("gradient pass");
        }
        update_program.run(&mut store, &[]).expect("update");
    }
    let params = names(&fused);
    for (name, (got, want)) in params.iter().zip(read(&store, &params).iter().zip(read(&fused_store, &params))) {
        let error = common::relative_error(got, &want);
        assert!(error < 1e-5, "{name}: the split step is off the fused one by {error:.2e}");
    }
    assert_eq!(store.counter("fc0.weight.step"), 3, "the update program counts Adam's steps");
}

#[test]
fn a_step_split_at_the_gradient_equals_the_fused_step_gpu() {
    split_step_equals_fused_step(common::gpu());
}

#[test]
fn a_step_split_at_the_gradient_equals_the_fused_step_cpu() {
    split_step_equals_fused_step(kiln::cpu::Cpu);
}

#[test]
fn a_variable_of_another_shape_is_refused_naming_both_shapes() {
    let mut store = Store::new(kiln::cpu::Cpu);
    let small = mlp(4, &[12, 9, 4], 1).expect("model");
    Program::compile(&mut store, &small.graph, &[small.logits]).expect("compile");
    let wide = mlp(4, &[12, 7, 4], 1).expect("model");
    let error = Program::compile(&mut store, &wide.graph, &[wide.logits]).err().expect("refused");
    assert!(matches!(error, Error::VariableMismatch { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("fc0.weight") && message.contains("[9, 12]") && message.contains("[7, 12]"), "{message}");
}

#[test]
fn misuse_gets_errors_of_its_own() {
    let model = mlp(4, &SIZES, 1).expect("model");
    let mut store = Store::new(kiln::cpu::Cpu);
    let program = Program::compile(&mut store, &model.graph, &[model.logits]).expect("compile");
    let unset = program.run(&mut store, &[model.logits]).expect_err("inputs never set");
    assert!(matches!(&unset, Error::InputNotSet { input } if input == "images"), "{unset:?}");
    feed(&program, &model, 4, 1);
    let not_output = program.run(&mut store, &[model.loss]).expect_err("loss not compiled as an output");
    assert!(matches!(not_output, Error::NotAnOutput { .. }), "{not_output:?}");
    let mut other = Store::new(kiln::cpu::Cpu);
    let wrong = program.run(&mut other, &[model.logits]).expect_err("another store");
    assert!(matches!(wrong, Error::WrongStore { .. }), "{wrong:?}");
    let variable = program.set(model.params[0], &HostTensor::zeros(vec![9, 12].into(), kiln::core::DType::F32));
    assert!(matches!(variable, Err(Error::NotSettable { .. })), "{variable:?}");
    let mut sealed = Store::new(kiln::cpu::Cpu);
    sealed.seal();
    let missing = Program::compile(&mut sealed, &model.graph, &[model.logits]).err().expect("sealed");
    assert!(matches!(&missing, Error::MissingVariable { variable, .. } if variable == "fc0.weight"), "{missing:?}");
}

#[test]
fn counters_advance_with_the_updates_that_run() {
    let mut model = mlp(4, &SIZES, 1).expect("model");
    let groups = [ParamGroup { params: model.params[2..].to_vec(), optimizer: ADAM }];
    minimize(&mut model.graph, model.loss, &groups, None).expect("training graph");
    let mut store = Store::new(kiln::cpu::Cpu);
    let program = Program::compile(&mut store, &model.graph, &[]).expect("compile");
    feed(&program, &model, 4, 1);
    for _ in 0..2 {
        program.run(&mut store, &[]).expect("step");
    }
    assert_eq!(store.counter("fc1.weight.step"), 2);
    assert_eq!(store.counter("fc0.weight.step"), 0, "a frozen parameter takes no steps");
    assert_eq!(program.counters(), ["fc1.bias.step", "fc1.weight.step"]);
}

/// A graph of one assignment and its read: `a` computed into `target`, no copy.
#[test]
fn an_assignment_writes_the_store_variable() {
    let mut g = Graph::new();
    let x = g.input("x", vec![3], kiln::core::DType::F32);
    let target = g.variable("target", vec![3]);
    let doubled = g.scale(x, 2.0).expect("scale");
    g.assign(target, doubled).expect("assign");
    let mut store = Store::new(common::gpu());
    let program = Program::compile(&mut store, &g, &[]).expect("compile");
    assert!(program.plan().elided.iter().any(|&e| e), "the value is computed straight into the variable");
    program.set(x, &HostTensor::f32(vec![3], vec![1.0, -2.0, 0.5]).expect("x")).expect("x");
    program.run(&mut store, &[]).expect("run");
    assert_eq!(store.read(&["target"]).expect("read")[0].as_f32().expect("f32"), [2.0, -4.0, 1.0]);
}
