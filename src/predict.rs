//! `kiln predict`: classifies image files with a trained checkpoint. Each image is read
//! (PNG or JPEG), made grayscale, resized to the model's input (28×28 for Fashion-MNIST) and
//! scaled to [0, 1]; an image on a light background is inverted to Fashion-MNIST's
//! light-on-dark.

use std::path::Path;

use kiln_core::{Backend, Error, HostTensor, Result};
use kiln_graph::{Program, Store};

use crate::checkpoint::Checkpoint;
use crate::models::{CLASSES, build};

/// Fashion-MNIST's class names, by label.
pub const CLASS_NAMES: [&str; CLASSES] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The pixels of `path` as a model with `side`×`side` inputs sees them, or an error naming
/// the file.
pub fn load_image(path: &Path, side: u32) -> Result<Vec<f32>> {
    let image =
        image::open(path).map_err(|e| Error::data(path.display().to_string(), format!("not a readable image: {e}")))?;
    let gray = image::imageops::resize(&image.to_luma8(), side, side, image::imageops::FilterType::Triangle);
    let pixels: Vec<f32> = gray.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    let mean = pixels.iter().sum::<f32>() / pixels.len() as f32;
    Ok(if mean > 0.5 { pixels.iter().map(|v| 1.0 - v).collect() } else { pixels })
}

/// The three likeliest classes of each image, with their probabilities.
pub fn predict<B: Backend>(backend: B, checkpoint: &Path, images: &[&Path]) -> Result<Vec<Vec<(&'static str, f32)>>> {
    let saved = Checkpoint::load(checkpoint)?;
    let seed = saved.meta("seed")?.parse().unwrap_or(1);
    let pixels: usize = saved.meta("pixels")?.parse().map_err(|e| Error::data("checkpoint", format!("pixels: {e}")))?;
    let model = build(saved.meta("model")?, images.len(), pixels, false, seed)?;
    let mut g = model.graph;
    let probabilities = g.softmax(model.logits, -1)?;
    let mut store = Store::new(backend);
    saved.restore(&mut store)?;
    store.seal();
    let program = Program::compile(&mut store, &g, &[probabilities])?;
    let side = (pixels as f64).sqrt() as u32;
    let inputs: Vec<f32> = images.iter().map(|p| load_image(p, side)).collect::<Result<Vec<_>>>()?.concat();
    program.set(model.images, &HostTensor::f32(vec![images.len(), pixels], inputs)?)?;
    program.set(model.labels, &HostTensor::i32(vec![images.len()], vec![0; images.len()])?)?;
    let out = program.run(&mut store, &[probabilities])?.remove(0);
    Ok(out
        .as_f32()?
        .chunks(CLASSES)
        .map(|row| {
            let mut ranked: Vec<(&'static str, f32)> = CLASS_NAMES.iter().copied().zip(row.iter().copied()).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            ranked.truncate(3);
            ranked
        })
        .collect())
}
