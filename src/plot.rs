//! Pictures of a run, drawn with the image crate alone (no fonts): the loss and accuracies per
//! epoch, and a model's first-layer filters.

use std::path::Path;

use image::{Rgb, RgbImage};
use kiln_core::{Error, HostTensor, Result};

use crate::train::{EpochRow, write_bytes_atomically};

const PANEL: (u32, u32) = (320, 240);
const MARGIN: u32 = 20;

/// Draws a line between two points with Bresenham's algorithm, clipped to the image.
fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), color: Rgb<u8>) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, color);
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// One panel at horizontal offset `left`: each series of values over epochs, scaled to the
/// panel between `lo` and `hi`, with a gray frame and a gray line per tenth of the range.
fn panel(img: &mut RgbImage, left: u32, series: &[(Vec<f64>, Rgb<u8>)], lo: f64, hi: f64) {
    let (w, h) = (PANEL.0 - 2 * MARGIN, PANEL.1 - 2 * MARGIN);
    let gray = Rgb([200, 200, 200]);
    for tenth in 0..=10 {
        let y = (MARGIN + h - h * tenth / 10) as i64;
        line(img, ((left + MARGIN) as i64, y), ((left + MARGIN + w) as i64, y), gray);
    }
    let epochs = series.iter().map(|(v, _)| v.len()).max().unwrap_or(1).max(2);
    let at = |i: usize, v: f64| {
        let x = left + MARGIN + (w as usize * i / (epochs - 1)) as u32;
        let t = ((v - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0);
        (x as i64, (MARGIN + h) as i64 - (t * h as f64) as i64)
    };
    for (values, color) in series {
        for (i, pair) in values.windows(2).enumerate() {
            line(img, at(i, pair[0]), at(i + 1, pair[1]), *color);
        }
        for (i, &v) in values.iter().enumerate() {
            let (x, y) = at(i, v);
            for d in -2..=2 {
                line(img, (x - 2, y + d), (x + 2, y + d), *color);
            }
        }
    }
}

/// PNG bytes of `img`.
fn png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| Error::data("png", e.to_string()))?;
    Ok(bytes.into_inner())
}

/// Left: the training loss per epoch (blue, 0 to its maximum). Right: train (green),
/// validation (orange) and test (red) accuracy per epoch, on a 0–1 scale (a classifier's).
pub fn plot_history(rows: &[EpochRow], path: &Path) -> Result<()> {
    let mut img = RgbImage::from_pixel(2 * PANEL.0, PANEL.1, Rgb([255, 255, 255]));
    let loss: Vec<f64> = rows.iter().map(|r| r.train_loss).collect();
    let top = loss.iter().copied().fold(0.0, f64::max);
    panel(&mut img, 0, &[(loss, Rgb([31, 119, 180]))], 0.0, top);
    let accuracies = vec![
        (rows.iter().filter_map(|r| r.train_accuracy).collect(), Rgb([44, 160, 44])),
        (rows.iter().filter_map(|r| r.validation_accuracy).collect(), Rgb([255, 127, 14])),
        (rows.iter().filter_map(|r| r.test_accuracy).collect(), Rgb([214, 39, 40])),
    ];
    panel(&mut img, PANEL.0, &accuracies, 0.0, 1.0);
    write_bytes_atomically(path, &png(&img)?)
}

/// A grid of `[K, 1, h, w]` planes (a first layer's filters; a layer's feature maps), each
/// scaled to its own range and drawn `scale` pixels to a value, low dark to high bright.
pub fn plot_grid(planes: &HostTensor, scale: u32, path: &Path) -> Result<()> {
    let d = planes.shape.dims();
    if d.len() != 4 || d[1] != 1 {
        return Err(Error::shape("plot_grid", "expects one-channel planes", "[K, 1, h, w]", &planes.shape));
    }
    let (count, kh, kw) = (d[0], d[2] as u32, d[3] as u32);
    let columns = (count as f64).sqrt().ceil() as u32;
    let rows = (count as u32).div_ceil(columns);
    let cell = (kw * scale + 2, kh * scale + 2);
    let mut img = RgbImage::from_pixel(columns * cell.0, rows * cell.1, Rgb([255, 255, 255]));
    for (f, taps) in planes.as_f32()?.chunks((kh * kw) as usize).enumerate() {
        let (lo, hi) = taps.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let (x0, y0) = ((f as u32 % columns) * cell.0 + 1, (f as u32 / columns) * cell.1 + 1);
        for (t, &v) in taps.iter().enumerate() {
            let shade = (255.0 * (v - lo) / (hi - lo).max(1e-12)) as u8;
            let (tx, ty) = (t as u32 % kw, t as u32 / kw);
            for (dx, dy) in (0..scale).flat_map(|dx| (0..scale).map(move |dy| (dx, dy))) {
                img.put_pixel(x0 + tx * scale + dx, y0 + ty * scale + dy, Rgb([shade, shade, shade]));
            }
        }
    }
    write_bytes_atomically(path, &png(&img)?)
}

/// Two rows of `count` images `side`×`side`: the inputs above their reconstructions.
pub fn plot_reconstructions(inputs: &[f32], outputs: &[f32], side: usize, path: &Path) -> Result<()> {
    let count = (inputs.len() / (side * side)).min(outputs.len() / (side * side));
    let (scale, cell) = (3u32, side as u32 * 3 + 2);
    let mut img = RgbImage::from_pixel(count as u32 * cell, 2 * cell, Rgb([255, 255, 255]));
    for (row, images) in [inputs, outputs].into_iter().enumerate() {
        for (i, pixels) in images.chunks(side * side).take(count).enumerate() {
            for (p, &v) in pixels.iter().enumerate() {
                let shade = (255.0 * v.clamp(0.0, 1.0)) as u8;
                let (x0, y0) = (
                    i as u32 * cell + 1 + (p % side) as u32 * scale,
                    row as u32 * cell + 1 + (p / side) as u32 * scale,
                );
                for (dx, dy) in (0..scale).flat_map(|dx| (0..scale).map(move |dy| (dx, dy))) {
                    img.put_pixel(x0 + dx, y0 + dy, Rgb([shade, shade, shade]));
                }
            }
        }
    }
    write_bytes_atomically(path, &png(&img)?)
}
