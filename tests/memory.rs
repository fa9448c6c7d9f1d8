//! Device memory is what the plan says: compiling a training step allocates, through the
//! pool, exactly the store's bytes and the program's planned buffers (kernel scratch
//! included), and the plan shares its buffers between values never live at once.

use kiln::gpu::Gpu;
use kiln::graph::{Program, Store};
use kiln::kernels::GpuBackend;
use kiln::nn::{ModelSpec, Optimizer, build};

fn allocations_match_the_plan(model: &str) {
    // A device of its own, so that no other test's buffers come and go meanwhile.
    let gpu = Gpu::new_blocking().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let mut classifier = build(&ModelSpec::named(model), 64, 784, true, 1).expect("model");
    classifier.add_training(Optimizer::Adam(kiln::core::Adam::new(1e-3))).expect("training graph");
    let (before, _) = gpu.buffer_bytes();
    let mut store = Store::new(GpuBackend::new(gpu.clone()));
    let program = Program::compile(&mut store, &classifier.graph, &[classifier.loss]).expect("compile");
    let (after, _) = gpu.buffer_bytes();
    let plan = program.plan();
    assert_eq!(
        after - before,
        store.bytes() + plan.program_bytes,
        "{model}: allocated bytes against the store ({}) and the plan ({})",
        store.bytes(),
        plan.program_bytes
    );
    let scratch_buffers: usize = plan.scratch.iter().map(Vec::len).sum();
    assert!(scratch_buffers > 0, "{model}: the convolutions' scratch is planned");
    // No assignment of buffers needs less than the inputs and the peak of live values and
    // scratch; sharing by liveness stays close to that (size classes round each buffer up).
    let floor = plan.input_bytes + plan.peak_step_bytes;
    assert!(plan.program_bytes <= floor * 13 / 10, "{model}: {} planned bytes, floor {floor}", plan.program_bytes);
    let unshared: u64 = classifier.graph.nodes().iter().map(|n| n.shape.bytes()).sum::<u64>();
    println!(
        "{model}: store {} bytes, program {} bytes (inputs {}, peak of live step values and scratch {}), \
         every value in a buffer of its own {unshared} bytes, texel textures {} bytes",
        store.bytes(),
        plan.program_bytes,
        plan.input_bytes,
        plan.peak_step_bytes,
        gpu.texel_bytes()
    );
    drop(program);
    drop(store);
    assert_eq!(gpu.buffer_bytes().0, before, "{model}: dropping the program and store returns every buffer");
}

#[test]
fn the_cnn_step_allocates_what_its_plan_says() {
    allocations_match_the_plan("cnn");
}

#[test]
fn the_mobilenet_step_allocates_what_its_plan_says() {
    allocations_match_the_plan("mobilenet");
}
