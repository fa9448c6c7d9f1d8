//! A model of your own in a few lines: two convolutions with batch norm, trained with Adam on
//! Fashion-MNIST on the GPU (or lavapipe) for a few hundred steps, printing the mean loss of
//! every 50 steps.
//!     cargo run --release --example custom_model [-- /path/to/fashion-mnist]

use kiln::core::{Adam, DType, HostTensor};
use kiln::graph::Executor;
use kiln::kernels::GpuBackend;
use kiln::nn::{DEFAULT_DIR, FashionMnist, shuffled_indices};
use kiln::nn::{Layers, Optimizer, Task};

const BATCH: usize = 64;
const STEPS: usize = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_DIR.into());
    let data = FashionMnist::load(dir.as_ref())?;
    let (rows, cols) = (data.train.rows, data.train.cols);

    // images [64, 784] → [64, 1, 28, 28] → (conv, pool, batch norm, ReLU) ×2 → linear → 10 logits
    let mut l = Layers::new(true, 1);
    let images = l.g.input("images", vec![BATCH, rows * cols], DType::F32);
    let mut x = l.g.reshape(images, vec![BATCH, 1, rows, cols])?;
    for (i, channels) in [16, 32].into_iter().enumerate() {
        x = l.conv(&format!("conv{i}"), x, channels, 3, 1)?;
        x = l.max_pool(x)?;
        x = l.batch_norm(&format!("bn{i}"), x)?;
        x = l.relu(x)?;
    }
    let x = l.flatten(x)?;
    let logits = l.linear("fc", x, 10)?;
    let mut model = l.finish(images, logits, Task::Classes)?;
    model.add_training(Optimizer::Adam(Adam::new(1e-3)))?;

    let gpu = kiln::gpu::Gpu::new_blocking()?;
    println!("training on {}", gpu.description());
    let mut exec = Executor::compile(GpuBackend::new(gpu), &model.graph, &[model.loss])?;
    let order = shuffled_indices(data.train.len(), 1);
    let mut window = 0.0;
    for (step, indices) in order.chunks_exact(BATCH).take(STEPS).enumerate() {
        let (pixels, labels) = data.train.batch(indices);
        exec.set(model.images, &HostTensor::f32(vec![BATCH, rows * cols], pixels)?)?;
        exec.set(model.labels, &HostTensor::i32(vec![BATCH], labels)?)?;
        // One submission per step: forward, backward and the Adam updates; only the loss comes back.
        window += exec.run(&[model.loss])?[0].as_f32()?[0];
        if (step + 1) % 50 == 0 {
            println!("after step {:3}: mean loss of the last 50 {:.4}", step + 1, window / 50.0);
            window = 0.0;
        }
    }
    Ok(())
}
