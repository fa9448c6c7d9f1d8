//! `kiln predict`: classifies image files with a trained checkpoint. Each image is read (PNG or
//! JPEG; transparency laid over white), made grayscale, resized to the model's input (28×28
//! for Fashion-MNIST) and scaled to [0, 1]. Fashion-MNIST draws light items on a dark
//! background: an image whose border is light is inverted (`Invert::Auto`), and one whose
//! border is neither is reported as a guess.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use kiln_core::{Backend, Error, HostTensor, Result};
use kiln_graph::{Program, Store};

use kiln_nn::{CLASS_NAMES, SavedClassifier};

/// Whether to turn an image to light-on-dark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Invert {
    /// Where its border is light.
    Auto,
    Yes,
    No,
}

/// An image as the model sees it.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub pixels: Vec<f32>,
    pub inverted: bool,
    /// The border was neither clearly dark nor clearly light: `inverted` is a guess.
    pub unsure: bool,
}

/// The three likeliest classes of an image (or a binary classifier's two sides), with their
/// probabilities, and how it was read.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub top: Vec<(String, f32)>,
    pub inverted: bool,
    pub unsure: bool,
}

/// Images larger than this on a side are refused before decoding (a resize to 28×28 needs far
/// less, and a few bytes of PNG can claim gigapixels).
const MAX_SIDE: u32 = 16_384;

/// The most a decoder may allocate for a file of `len` bytes: what its compression could hold
/// (a kilobyte of pixels per byte is beyond PNG's and JPEG's ratios), and 8 MiB for any file.
pub fn decode_budget(len: usize) -> u64 {
    (8 << 20) + 1024 * len as u64
}

/// The pixels of `path` as a model with `side`×`side` inputs sees them, or an error naming
/// the file.
pub fn load_image(path: &Path, side: u32, invert: Invert) -> Result<Prepared> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { context: name.clone(), source })?;
    let image = decode(&bytes).map_err(|message| Error::data(&name, message))?;
    let gray = over_white(&image);
    let (low, high) = gray.pixels().fold((255u8, 0u8), |(lo, hi), p| (lo.min(p.0[0]), hi.max(p.0[0])));
    if high - low < 8 {
        return Err(Error::data(&name, "is blank (one shade throughout, transparency included): nothing to classify"));
    }
    let resized = image::imageops::resize(&gray, side, side, image::imageops::FilterType::Triangle);
    let pixels: Vec<f32> = resized.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    let (border, spread) = border_of(&pixels, side as usize);
    let unsure = invert == Invert::Auto && ((0.3..=0.7).contains(&border) || spread > 0.3);
    let inverted = match invert {
        Invert::Auto => border > 0.5,
        Invert::Yes => true,
        Invert::No => false,
    };
    let pixels = if inverted { pixels.iter().map(|v| 1.0 - v).collect() } else { pixels };
    Ok(Prepared { pixels, inverted, unsure })
}

/// Decodes a PNG or JPEG, refusing a truncated one and images past `MAX_SIDE`.
fn decode(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let format = reader.format().ok_or("is not a PNG or JPEG image (its first bytes match no image format)")?;
    if format == ImageFormat::Jpeg && !bytes.ends_with(&[0xFF, 0xD9]) {
        return Err("is a truncated JPEG (it does not end with the end-of-image marker)".into());
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(decode_budget(bytes.len()));
    let mut reader = reader;
    reader.limits(limits);
    reader.decode().map_err(|e| format!("not a readable image: {e}"))
}

/// The image in gray, transparent parts laid over white (as a viewer shows them): an image
/// drawn only in its alpha channel keeps its shape.
fn over_white(image: &DynamicImage) -> image::GrayImage {
    let gray_alpha = image.to_luma_alpha8();
    image::GrayImage::from_fn(gray_alpha.width(), gray_alpha.height(), |x, y| {
        let [l, a] = gray_alpha.get_pixel(x, y).0;
        let (l, a) = (u32::from(l), u32::from(a));
        image::Luma([((l * a + 255 * (255 - a)) / 255) as u8])
    })
}

/// The mean and the standard deviation of the outermost ring of a `side`×`side` image.
fn border_of(pixels: &[f32], side: usize) -> (f32, f32) {
    let ring: Vec<f32> = (0..side * side)
        .filter(|&i| {
            let (r, c) = (i / side, i % side);
            r == 0 || c == 0 || r + 1 == side || c + 1 == side
        })
        .map(|i| pixels[i])
        .collect();
    let mean = ring.iter().sum::<f32>() / ring.len().max(1) as f32;
    let variance = ring.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / ring.len().max(1) as f32;
    (mean, variance.sqrt())
}

/// The three likeliest classes of each image, with their probabilities; for a binary
/// classifier, its two sides.
pub fn predict<B: Backend>(backend: B, checkpoint: &Path, images: &[&Path], invert: Invert) -> Result<Vec<Prediction>> {
    let what = checkpoint.display().to_string();
    let saved = SavedClassifier::load(checkpoint, images.len())?;
    let side = (saved.pixels as f64).sqrt() as u32;
    let model = &saved.model;
    let mut g = model.graph.clone();
    let (probabilities, names) = match &saved.task {
        None => (g.softmax(model.logits, -1)?, CLASS_NAMES.map(String::from).to_vec()),
        Some(task) => (g.sigmoid(model.logits)?, task.names().to_vec()),
    };
    let mut store = Store::new(backend);
    let program = Program::compile(&mut store, &g, &[probabilities])?;
    saved.checkpoint.restore_declared(&mut store, &what)?;
    let prepared = images.iter().map(|p| load_image(p, side, invert)).collect::<Result<Vec<_>>>()?;
    let inputs: Vec<f32> = prepared.iter().flat_map(|p| p.pixels.iter().copied()).collect();
    program.set(model.images, &HostTensor::f32(vec![images.len(), saved.pixels], inputs)?)?;
    let out = program.run(&mut store, &[probabilities])?.remove(0);
    let width = out.shape.numel() / images.len();
    out.as_f32()?
        .chunks(width)
        .zip(&prepared)
        .map(|(row, image)| {
            if row.iter().any(|p| !p.is_finite()) {
                return Err(Error::data(&what, "gave non-finite probabilities"));
            }
            // A binary classifier gives P(positive side); the other side has the rest.
            let row = if width == 1 { vec![row[0], 1.0 - row[0]] } else { row.to_vec() };
            let mut top: Vec<(String, f32)> = names.iter().cloned().zip(row).collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            top.truncate(3);
            Ok(Prediction { top, inverted: image.inverted, unsure: image.unsure })
        })
        .collect()
}

/// A probability as a percentage that never claims certainty: at most ">99.9%".
pub fn percent(p: f32) -> String {
    if p >= 0.9995 { ">99.9%".into() } else { format!("{:.1}%", 100.0 * p) }
}
