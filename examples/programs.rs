//! Many programs over one parameter store: a training program at batch 64 and an evaluation
//! program at batch 1000 read and write the same device buffers, with no copy through the
//! host; then a fine-tune that freezes the hidden layer and trains only the classifier head
//! with another optimizer, in the same store.
//!     cargo run --release --example programs [-- /path/to/fashion-mnist]

use kiln::core::{Adam, Backend, HostTensor, Result, Sgd};
use kiln::graph::{Program, Store};
use kiln::kernels::GpuBackend;
use kiln::nn::{
    DEFAULT_DIR, Dataset, FashionMnist, Model, ModelSpec, Optimizer, ParamGroup, argmax, build, minimize,
    shuffled_indices,
};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 1000;

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_DIR.into());
    let data = FashionMnist::load(dir.as_ref())?;
    let pixels = data.train.image_size();
    let gpu = kiln::gpu::Gpu::new_blocking()?;
    println!("on {}", gpu.description());
    let mut store = Store::new(GpuBackend::new(gpu));

    // Training: every parameter of the MLP with Adam.
    let mut train = build(&ModelSpec::named("mlp"), BATCH, pixels, true, 1)?;
    let everything = ParamGroup { params: train.params.clone(), optimizer: Optimizer::Adam(Adam::new(1e-3)) };
    minimize(&mut train.graph, train.loss, &[everything], None)?;
    let train_program = Program::compile(&mut store, &train.graph, &[train.loss])?;

    // Evaluation at batch 1000 in eval mode: a second graph binding the same weights by name.
    let eval = build(&ModelSpec::named("mlp"), EVAL_BATCH, pixels, false, 1)?;
    let eval_program = Program::compile(&mut store, &eval.graph, &[eval.logits])?;

    steps(&mut store, &train_program, &train, &data.train, 400, 1)?;
    let accuracy = evaluate(&mut store, &eval_program, &eval, &data.test)?;
    println!("after 400 steps of Adam: test accuracy {accuracy:.4}");

    // Fine-tune: the hidden layer frozen, the head trained by SGD with momentum.
    let mut tune = build(&ModelSpec::named("mlp"), BATCH, pixels, true, 1)?;
    let head: Vec<_> = tune.params.iter().copied().filter(|&p| tune.graph.node(p).name.starts_with("fc1")).collect();
    let sgd = Optimizer::Sgd(Sgd::new(0.03, 0.9, 0.0));
    minimize(&mut tune.graph, tune.loss, &[ParamGroup { params: head, optimizer: sgd }], None)?;
    let tune_program = Program::compile(&mut store, &tune.graph, &[tune.loss])?;
    let hidden_before = store.read(&["fc0.weight"])?;
    steps(&mut store, &tune_program, &tune, &data.train, 200, 2)?;
    let unchanged = store.read(&["fc0.weight"])? == hidden_before;
    let accuracy = evaluate(&mut store, &eval_program, &eval, &data.test)?;
    println!("after 200 steps of the head alone: test accuracy {accuracy:.4}; hidden layer unchanged: {unchanged}");
    println!(
        "device memory: store {} KiB, training program {} KiB, evaluation program {} KiB",
        store.bytes() / 1024,
        train_program.plan().program_bytes / 1024,
        eval_program.plan().program_bytes / 1024
    );
    Ok(())
}

/// `count` training steps on a shuffle of `set` seeded by `seed`.
fn steps<B: Backend>(
    store: &mut Store<B>,
    program: &Program<B>,
    model: &Model,
    set: &Dataset,
    count: usize,
    seed: u64,
) -> Result<()> {
    for indices in shuffled_indices(set.len(), seed).chunks_exact(BATCH).take(count) {
        let (images, labels) = set.batch(indices);
        program.set(model.images, &HostTensor::f32(vec![BATCH, set.image_size()], images)?)?;
        program.set(model.labels, &HostTensor::i32(vec![BATCH], labels)?)?;
        program.run(store, &[])?;
    }
    Ok(())
}

/// The fraction of `set` the evaluation program classifies right, 1000 images a submission.
fn evaluate<B: Backend>(store: &mut Store<B>, program: &Program<B>, model: &Model, set: &Dataset) -> Result<f64> {
    let mut correct = 0;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks_exact(EVAL_BATCH) {
        let (images, labels) = set.batch(chunk);
        program.set(model.images, &HostTensor::f32(vec![EVAL_BATCH, set.image_size()], images)?)?;
        program.set(model.labels, &HostTensor::i32(vec![EVAL_BATCH], labels.clone())?)?;
        let logits = program.run(store, &[model.logits])?.remove(0);
        let rows = logits.as_f32()?.chunks(10);
        correct += rows.zip(&labels).filter(|(row, label)| argmax(row) == **label as usize).count();
    }
    Ok(correct as f64 / set.len() as f64)
}
