//! Pictures of a run, drawn with the image crate alone (no font libraries: numbers come from a
//! 3×5 pixel digit font): the loss and accuracies per epoch, and a model's first-layer filters.

use std::path::Path;

use image::{Rgb, RgbImage};
use kiln_core::{Error, HostTensor, Result};

use crate::files::write_bytes_atomically;
use crate::train::EpochRow;

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

/// Rows of the digits 0–9 and '.', three bits wide (high bit left), five rows tall.
const GLYPHS: [[u8; 5]; 11] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 3, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
    [0, 0, 0, 0, 2],
];

/// Writes `text` (digits and points; anything else is skipped) with its top left at (x, y),
/// two pixels to a glyph pixel.
fn text(img: &mut RgbImage, (x, y): (u32, u32), text: &str, color: Rgb<u8>) {
    let glyphs = text.chars().filter_map(|c| if c == '.' { Some(10) } else { c.to_digit(10).map(|d| d as usize) });
    for (i, glyph) in glyphs.enumerate() {
        for (row, bits) in GLYPHS[glyph].iter().enumerate() {
            for col in (0..3).filter(|col| bits & (4 >> col) != 0) {
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (px, py) = (x + 8 * i as u32 + 2 * col + dx, y + 2 * row as u32 + dy);
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, color);
                    }
                }
            }
        }
    }
}

/// One panel at horizontal offset `left`: each series of values over epochs, scaled to the
/// panel between `lo` and `hi`, with a gray line per tenth of the range; `lo` and `hi` are
/// written at the bottom and top lines, the number of epochs at the bottom right and each
/// series' last value at the top right, in its colour.
fn panel(img: &mut RgbImage, left: u32, series: &[(Vec<f64>, Rgb<u8>)], lo: f64, hi: f64) {
    let (w, h) = (PANEL.0 - 2 * MARGIN, PANEL.1 - 2 * MARGIN);
    let gray = Rgb([200, 200, 200]);
    for tenth in 0..=10 {
        let y = (MARGIN + h - h * tenth / 10) as i64;
        line(img, ((left + MARGIN) as i64, y), ((left + MARGIN + w) as i64, y), gray);
    }
    let dark = Rgb([90, 90, 90]);
    text(img, (left + MARGIN, MARGIN - 12), &format!("{hi:.3}"), dark);
    text(img, (left + MARGIN, MARGIN + h + 3), &format!("{lo:.3}"), dark);
    let epochs = series.iter().map(|(v, _)| v.len()).max().unwrap_or(1);
    text(img, (left + MARGIN + w - 16, MARGIN + h + 3), &epochs.to_string(), dark);
    for (i, (values, color)) in series.iter().enumerate() {
        if let Some(last) = values.last() {
            text(img, (left + MARGIN + w - 48 - 56 * i as u32, MARGIN - 12), &format!("{last:.4}"), *color);
        }
    }
    let epochs = epochs.max(2);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_each_glyph_pixel_as_a_two_by_two_square() {
        let mut img = RgbImage::from_pixel(40, 12, Rgb([255, 255, 255]));
        text(&mut img, (0, 0), "1.7", Rgb([0, 0, 0]));
        let black = |x: u32, y: u32| img.get_pixel(x, y) == &Rgb([0, 0, 0]);
        // '1' is 8 glyph pixels, '.' 1, '7' 7: four image pixels each.
        assert_eq!(img.pixels().filter(|p| **p == Rgb([0, 0, 0])).count(), 4 * (8 + 1 + 7));
        // The top of the '1' is its middle column; the '.' sits on the bottom row of the second glyph.
        assert!(black(2, 0) && black(3, 1) && !black(0, 0));
        assert!(black(10, 8) && black(11, 9) && !black(10, 0));
        assert!(black(16, 0) && black(21, 9) && !black(16, 9));
    }
}
