//! Pictures of a run, drawn with plotters into a pixel buffer and written as PNG: the loss and
//! accuracy per epoch with titled, labelled axes and a legend, and captioned grids of a model's
//! first-layer filters, its feature maps for a test image, and an autoencoder's
//! reconstructions. The font (a subset of DejaVu Sans, `assets/`) is embedded, so no system
//! font is needed.

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use kiln_core::{Backend, Error, HostTensor, Result};
use kiln_nn::files::write_bytes_atomically;
use kiln_nn::gan::GanEpochRow;
use kiln_nn::{EpochRow, Run, Task};
use plotters::coord::Shift;
use plotters::prelude::*;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 360);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font: registration cannot fail but by a corrupt file.
        let bytes = include_bytes!("../../assets/DejaVuSans-subset.ttf");
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
    });
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::data("plot", e.to_string())
}

/// Draws with `draw` onto a white `size` canvas, and writes it to `path` as PNG.
fn picture(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut pixels = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        draw(&root)?;
        root.present().map_err(failed)?;
    }
    let image = RgbImage::from_raw(size.0, size.1, pixels).ok_or_else(|| failed("buffer size"))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).map_err(failed)?;
    write_bytes_atomically(path, &bytes.into_inner())
}

/// One panel: `series` (label, colour, a value per epoch) over epochs 1…, on `range`.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    y_label: &str,
    range: std::ops::Range<f64>,
    series: &[(&str, RGBColor, Vec<f64>)],
) -> Result<()> {
    let epochs = series.iter().map(|(_, _, v)| v.len()).max().unwrap_or(1).max(2);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f64..epochs as f64, range)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .x_labels(epochs.min(10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(failed)?;
    for (label, color, values) in series.iter().filter(|(_, _, v)| !v.is_empty()) {
        let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, &v)| (i as f64 + 1.0, v)).collect();
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(failed)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(failed)
}

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);
const TEST: RGBColor = RGBColor(214, 39, 40);

/// Loss (left) and accuracy (right; or a reconstruction's error) per epoch: train, validation
/// and test, each with a legend.
pub fn plot_history(rows: &[EpochRow], model: &str, path: &Path) -> Result<()> {
    let column = |f: fn(&EpochRow) -> Option<f64>| -> Vec<f64> { rows.iter().filter_map(f).collect() };
    let losses = [
        ("train", TRAIN, rows.iter().map(|r| r.train_loss).collect()),
        ("validation", VALIDATION, column(|r| r.validation_loss)),
        ("test", TEST, column(|r| r.test_loss)),
    ];
    let top = losses.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(0.0, f64::max).max(1e-6) * 1.05;
    let classifier = rows.iter().any(|r| r.test_accuracy.is_some());
    picture(path, SIZE, |root| {
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        panel(&left, &format!("{model}: loss per epoch"), "cross-entropy", 0.0..top, &losses)?;
        if classifier {
            let accuracies = [
                ("train", TRAIN, column(|r| r.train_accuracy)),
                ("validation", VALIDATION, column(|r| r.validation_accuracy)),
                ("test", TEST, column(|r| r.test_accuracy)),
            ];
            let low = accuracies.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(1.0, f64::min);
            let floor = (low * 10.0).floor() / 10.0;
            panel(&right, &format!("{model}: accuracy per epoch"), "accuracy", floor.min(0.9)..1.0, &accuracies)
        } else {
            let errors = [("test", TEST, column(|r| r.test_mse))];
            let top = errors[0].2.iter().copied().fold(0.0, f64::max).max(1e-6) * 1.05;
            panel(&right, &format!("{model}: test error per epoch"), "mean squared error", 0.0..top, &errors)
        }
    })
}

/// A captioned grid of `[K, 1, h, w]` planes (a first layer's filters; a layer's feature
/// maps), each scaled to its own range, low dark to high bright.
pub fn plot_grid(planes: &HostTensor, caption: &str, path: &Path) -> Result<()> {
    let d = planes.shape.dims();
    if d.len() != 4 || d[1] != 1 {
        return Err(Error::shape("plot_grid", "expects one-channel planes", "[K, 1, h, w]", &planes.shape));
    }
    let (count, h, w) = (d[0], d[2], d[3]);
    let columns = (count as f64).sqrt().ceil() as usize;
    let rows = count.div_ceil(columns);
    let scale = (96 / w.max(h)).clamp(2, 16);
    let cell = ((w * scale + 4) as u32, (h * scale + 4) as u32);
    let size = ((columns as u32 * cell.0).max(320) + 20, rows as u32 * cell.1 + 50);
    let values = planes.as_f32()?;
    picture(path, size, |root| {
        root.draw(&Text::new(caption.to_string(), (10, 10), (FONT, 15).into_font())).map_err(failed)?;
        for (k, plane) in values.chunks(h * w).enumerate() {
            let (lo, hi) = plane.iter().fold((f32::MAX, f32::MIN), |(l, u), &v| (l.min(v), u.max(v)));
            let x0 = 10 + (k % columns) as i32 * cell.0 as i32;
            let y0 = 40 + (k / columns) as i32 * cell.1 as i32;
            for (t, &v) in plane.iter().enumerate() {
                let shade = (255.0 * (v - lo) / (hi - lo).max(1e-12)) as u8;
                let (x, y) = (x0 + (t % w * scale) as i32, y0 + (t / w * scale) as i32);
                let square = Rectangle::new(
                    [(x, y), (x + scale as i32, y + scale as i32)],
                    RGBColor(shade, shade, shade).filled(),
                );
                root.draw(&square).map_err(failed)?;
            }
        }
        Ok(())
    })
}

/// Draws `images` (pixels in [0, 1], `side`² each) as a captioned grid of `columns` per row,
/// each pixel a `scale`-wide square.
fn image_grid(images: &[f32], side: usize, columns: usize, scale: usize, caption: &str, path: &Path) -> Result<()> {
    let count = images.len() / (side * side).max(1);
    let rows = count.div_ceil(columns.max(1));
    let cell = (side * scale + 4) as u32;
    let size = ((columns as u32 * cell).max(360) + 20, rows as u32 * cell + 50);
    picture(path, size, |root| {
        root.draw(&Text::new(caption.to_string(), (10, 10), (FONT, 15).into_font())).map_err(failed)?;
        for (k, plane) in images.chunks(side * side).take(count).enumerate() {
            let (x0, y0) = (10 + (k % columns) as i32 * cell as i32, 40 + (k / columns) as i32 * cell as i32);
            for (t, &v) in plane.iter().enumerate() {
                let shade = (255.0 * v.clamp(0.0, 1.0)) as u8;
                let (x, y) = (x0 + (t % side * scale) as i32, y0 + (t / side * scale) as i32);
                let square = Rectangle::new(
                    [(x, y), (x + scale as i32, y + scale as i32)],
                    RGBColor(shade, shade, shade).filled(),
                );
                root.draw(&square).map_err(failed)?;
            }
        }
        Ok(())
    })
}

/// Test images (top row) over their reconstructions (bottom row), captioned.
pub fn plot_reconstructions(inputs: &[f32], outputs: &[f32], side: usize, path: &Path) -> Result<()> {
    let count = (inputs.len() / (side * side)).min(outputs.len() / (side * side));
    let planes: Vec<f32> = [inputs, outputs].iter().flat_map(|v| v[..count * side * side].iter().copied()).collect();
    image_grid(&planes, side, count, 3, "test images (top), their reconstructions (bottom)", path)
}

/// Generated images (pixels in [0, 1]) as a captioned grid of `columns` per row.
pub fn plot_samples(images: &[f32], side: usize, columns: usize, caption: &str, path: &Path) -> Result<()> {
    image_grid(images, side, columns, 2, caption, path)
}

const GENERATOR: RGBColor = RGBColor(44, 160, 44);

/// A GAN's losses per epoch (left: D's and G's) and its score or D's accuracies (right).
pub fn plot_gan_history(rows: &[GanEpochRow], model: &str, path: &Path) -> Result<()> {
    let losses = [
        ("D", TRAIN, rows.iter().map(|r| r.d_loss).collect::<Vec<f64>>()),
        ("G", GENERATOR, rows.iter().map(|r| r.g_loss).collect()),
    ];
    let top = losses.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(0.0, f64::max).max(1e-6) * 1.1;
    let scores: Vec<f64> = rows.iter().filter_map(|r| r.fid).collect();
    picture(path, SIZE, |root| {
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        panel(&left, &format!("{model}: losses per epoch"), "binary cross-entropy", 0.0..top, &losses)?;
        if scores.is_empty() {
            let accuracies = [
                ("D on real", TRAIN, rows.iter().map(|r| r.d_real_accuracy).collect()),
                ("D on generated", TEST, rows.iter().map(|r| r.d_fake_accuracy).collect()),
            ];
            panel(&right, &format!("{model}: D right per epoch"), "share right", 0.0..1.0, &accuracies)
        } else {
            let high = scores.iter().copied().fold(0.0, f64::max).max(1e-6) * 1.1;
            let series = [("FID (Kiln-CNN)", TEST, scores)];
            panel(
                &right,
                &format!("{model}: Fréchet distance per epoch"),
                "FID on Kiln-CNN features",
                0.0..high,
                &series,
            )
        }
    })
}

/// A run's pictures in `dir`: `<model>-history.png`; `<model>-filters.png` and
/// `<model>-feature-maps.png` where the first layer is a one-channel convolution;
/// `<model>-reconstructions.png` for the autoencoder.
pub fn pictures<B: Backend>(dir: &Path, run: &mut Run<'_, B>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { context: dir.display().to_string(), source })?;
    let model = run.config().model.name.clone();
    plot_history(run.history(), &model, &dir.join(format!("{model}-history.png")))?;
    if let Some(filters) = run.first_filters()? {
        let caption = format!("{model}: the first layer's {} filters", filters.shape.dims()[0]);
        plot_grid(&filters, &caption, &dir.join(format!("{model}-filters.png")))?;
    }
    if let Some(maps) = run.feature_maps()? {
        let caption = format!("{model}: the first layer's {} feature maps of test image 0", maps.shape.dims()[0]);
        plot_grid(&maps, &caption, &dir.join(format!("{model}-feature-maps.png")))?;
    }
    if run.model().task == Task::Reconstruction {
        let (outputs, inputs) = run.test_outputs(8)?;
        plot_reconstructions(
            &inputs,
            &outputs,
            run.data().test.cols,
            &dir.join(format!("{model}-reconstructions.png")),
        )?;
    }
    Ok(())
}
