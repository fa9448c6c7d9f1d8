//! A host application that owns its wgpu device trains and evaluates a model with Kiln's
//! library alone (no command-line code): it opens an adapter and a device as any wgpu program
//! does, hands them to Kiln, builds the MLP of the model zoo, trains it a few hundred steps with
//! Adam over one parameter store, and evaluates it on the 10,000 test images with a second
//! program over the same store.
//!     cargo run --release --example host_app [-- /path/to/fashion-mnist]

use kiln_core::{Adam, HostTensor, Result};
use kiln_gpu::Gpu;
use kiln_graph::{Program, Store};
use kiln_kernels::GpuBackend;
use kiln_nn::{Dataset, FashionMnist, ModelSpec, Optimizer, argmax, build, shuffled_indices};

const BATCH: usize = 64;
const EVAL_BATCH: usize = 500;

/// Trains for `steps` steps and returns the test accuracy.
pub fn run(device: wgpu::Device, queue: wgpu::Queue, data: &FashionMnist, steps: usize) -> Result<f64> {
    let mut store = Store::new(GpuBackend::new(Gpu::from_device(device, queue)?));
    let pixels = data.train.image_size();
    let spec = ModelSpec::named("mlp");
    let mut model = build(&spec, BATCH, pixels, true, 1)?;
    model.add_training(Optimizer::Adam(Adam::new(1e-3)))?;
    let train = Program::compile(&mut store, &model.graph, &[model.loss])?;
    let order = shuffled_indices(data.train.len(), 1);
    for indices in order.chunks_exact(BATCH).cycle().take(steps) {
        let (images, labels) = data.train.batch(indices);
        train.set(model.images, &HostTensor::f32(vec![BATCH, pixels], images)?)?;
        train.set(model.labels, &HostTensor::i32(vec![BATCH], labels)?)?;
        train.run(&mut store, &[])?;
    }
    let eval = build(&spec, EVAL_BATCH, pixels, false, 1)?;
    let evaluate = Program::compile(&mut store, &eval.graph, &[eval.logits])?;
    accuracy(&mut store, &evaluate, &eval, &data.test)
}

fn accuracy(
    store: &mut Store<GpuBackend>,
    program: &Program<GpuBackend>,
    model: &kiln_nn::Model,
    set: &Dataset,
) -> Result<f64> {
    let mut correct = 0;
    let all: Vec<usize> = (0..set.len()).collect();
    for chunk in all.chunks_exact(EVAL_BATCH) {
        let (images, labels) = set.batch(chunk);
        program.set(model.images, &HostTensor::f32(vec![EVAL_BATCH, set.image_size()], images)?)?;
        program.set(model.labels, &HostTensor::i32(vec![EVAL_BATCH], labels.clone())?)?;
        let logits = program.run(store, &[model.logits])?.remove(0);
        correct +=
            logits.as_f32()?.chunks(10).zip(&labels).filter(|(row, label)| argmax(row) == **label as usize).count();
    }
    Ok(correct as f64 / (all.len() / EVAL_BATCH * EVAL_BATCH) as f64)
}

/// The host's own set-up, as any wgpu application does it.
pub fn open_device() -> std::result::Result<(wgpu::Device, wgpu::Queue), Box<dyn std::error::Error>> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    Ok(pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?)
}

#[allow(dead_code)]
fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| kiln_nn::DEFAULT_DIR.into());
    let data = FashionMnist::load(dir.as_ref())?;
    let (device, queue) = open_device()?;
    let accuracy = run(device, queue, &data, 500)?;
    println!("after 500 steps of Adam: test accuracy {accuracy:.4}");
    Ok(())
}
