//! How good generated images are, by the Fréchet distance between the features of real and of
//! generated images (FID's formula) — the features taken from a classifier Kiln trained (the
//! penultimate layer of its `cnn`), not from Inception, so the scores compare with each other
//! and not with published FIDs — and by the classes that classifier sees in the samples (a
//! collapsed generator leaves classes empty).
//!
//! ```
//! use kiln_nn::quality::{Moments, frechet_distance};
//! # fn main() -> kiln_core::Result<()> {
//! let a = [0.0, 1.0, 2.0, 0.5, 1.0, 1.5, 2.0, 0.0];
//! let same = Moments::of(&a, 2)?;
//! assert!(frechet_distance(&same, &same)?.abs() < 1e-12);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use kiln_core::{Backend, Error, HostTensor, Result};
use kiln_graph::{Program, Store, Value};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::checkpoint::SavedClassifier;
use crate::dataset::FashionMnist;
use crate::trainer::argmax;
use crate::zoo::CLASSES;

/// Images the classifier reads per submission.
const BATCH: usize = 500;

/// The mean and covariance (unbiased) of a set of feature vectors.
#[derive(Clone, Debug)]
pub struct Moments {
    pub mean: DVector<f64>,
    pub covariance: DMatrix<f64>,
}

impl Moments {
    /// The moments of `features`, row after row of `dim` values (at least two rows).
    pub fn of(features: &[f64], dim: usize) -> Result<Self> {
        let rows = features.len() / dim.max(1);
        if dim == 0 || rows < 2 || rows * dim != features.len() {
            let got = format!("{} values", features.len());
            return Err(Error::shape("frechet_distance", "needs two or more rows of features", dim, got));
        }
        let x = DMatrix::from_row_slice(rows, dim, features);
        let mean = x.row_mean().transpose();
        let centred = DMatrix::from_fn(rows, dim, |r, c| x[(r, c)] - mean[c]);
        let covariance = centred.tr_mul(&centred) / (rows - 1) as f64;
        Ok(Moments { mean, covariance })
    }
}

/// `‖μa − μb‖² + tr(Σa + Σb − 2(Σa Σb)^½)`. The trace of the square root is taken as
/// `Σ √λ` over the eigenvalues λ of the symmetric `Σa^½ Σb Σa^½`, which shares them with
/// `Σa Σb`; eigenvalues rounding below zero count as zero.
pub fn frechet_distance(a: &Moments, b: &Moments) -> Result<f64> {
    if a.mean.len() != b.mean.len() {
        return Err(Error::shape("frechet_distance", "both sets need the same features", a.mean.len(), b.mean.len()));
    }
    let root_a = symmetric_sqrt(&a.covariance);
    let middle = &root_a * &b.covariance * &root_a;
    let middle = (&middle + middle.transpose()) / 2.0;
    let trace_root: f64 = SymmetricEigen::new(middle).eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let distance = (&a.mean - &b.mean).norm_squared() + a.covariance.trace() + b.covariance.trace() - 2.0 * trace_root;
    Ok(distance.max(0.0))
}

/// The symmetric square root of a symmetric positive semi-definite matrix.
fn symmetric_sqrt(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eigen = SymmetricEigen::new((m + m.transpose()) / 2.0);
    let roots = eigen.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eigen.eigenvectors * DMatrix::from_diagonal(&roots) * eigen.eigenvectors.transpose()
}

/// A classifier's features and classes for any images, and the moments of the test images'
/// features to score generated images against.
pub struct Quality<B: Backend> {
    path: PathBuf,
    store: Store<B>,
    program: Program<B>,
    images: Value,
    features: Value,
    logits: Value,
    pixels: usize,
    reference: Moments,
}

impl<B: Backend> Quality<B> {
    /// The classifier of the checkpoint at `path` on `backend`, its reference the features of
    /// the first `count` test images of `data` (all of them when fewer).
    pub fn load(backend: B, path: &Path, data: &FashionMnist, count: usize) -> Result<Self> {
        let saved = SavedClassifier::load(path, BATCH)?;
        let what = path.display().to_string();
        if saved.pixels != data.test.image_size() {
            return Err(Error::data(
                &what,
                format!("classifies images of {} pixels, not the data's {}", saved.pixels, data.test.image_size()),
            ));
        }
        let model = &saved.model;
        if model.task != crate::layers::Task::Classes {
            let why = format!("tells two sets of classes apart, not the {CLASSES} classes the score counts");
            return Err(Error::data(&what, why));
        }
        let mut store = Store::new(backend);
        let program = Program::compile(&mut store, &model.graph, &[model.features, model.logits])?;
        saved.checkpoint.restore_declared(&mut store, &what)?;
        let mut quality = Quality {
            path: path.to_path_buf(),
            store,
            program,
            images: model.images,
            features: model.features,
            logits: model.logits,
            pixels: saved.pixels,
            reference: Moments { mean: DVector::zeros(0), covariance: DMatrix::zeros(0, 0) },
        };
        let test: Vec<usize> = (0..count.min(data.test.len())).collect();
        let (images, _) = data.test.batch(&test);
        let (features, _) = quality.features(&images)?;
        quality.reference = Moments::of(&features, features.len() / test.len().max(1))?;
        Ok(quality)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The features (row after row, f64) and the count of images per class the classifier
    /// sees in `images` (pixels in [0, 1], image after image).
    pub fn features(&mut self, images: &[f32]) -> Result<(Vec<f64>, Vec<usize>)> {
        let count = images.len() / self.pixels;
        let (mut features, mut classes) = (Vec::new(), vec![0usize; CLASSES]);
        for start in (0..count).step_by(BATCH) {
            let rows = BATCH.min(count - start);
            let mut batch = images[start * self.pixels..(start + rows) * self.pixels].to_vec();
            batch.resize(BATCH * self.pixels, 0.0);
            self.program.set(self.images, &HostTensor::f32(vec![BATCH, self.pixels], batch)?)?;
            let out = self.program.run(&mut self.store, &[self.features, self.logits])?;
            let width = out[0].shape.numel() / BATCH;
            features.extend(out[0].as_f32()?[..rows * width].iter().map(|&v| v as f64));
            for row in out[1].as_f32()?.chunks(CLASSES).take(rows) {
                classes[argmax(row)] += 1;
            }
        }
        Ok((features, classes))
    }

    /// The Fréchet distance of `images`' features from the test images', and the classes seen.
    pub fn score(&mut self, images: &[f32]) -> Result<(f64, Vec<usize>)> {
        let (features, classes) = self.features(images)?;
        let moments = Moments::of(&features, self.reference.mean.len())?;
        Ok((frechet_distance(&self.reference, &moments)?, classes))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// `rows` correlated feature vectors: a random mixing of uniform noise, plus an offset.
    fn features(rows: usize, dim: usize, seed: u64, offset: f64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mix: Vec<f64> = (0..dim * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        (0..rows)
            .flat_map(|_| {
                let noise: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                (0..dim)
                    .map(|i| offset + (0..dim).map(|j| mix[i * dim + j] * noise[j]).sum::<f64>())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `√m` by the Denman–Beavers iteration (Y ← (Y + Z⁻¹)/2, Z ← (Z + Y⁻¹)/2 from Y = m,
    /// Z = I), which needs no symmetry: an independent way to the same trace.
    fn sqrtm(m: &DMatrix<f64>) -> DMatrix<f64> {
        let (mut y, mut z) = (m.clone(), DMatrix::identity(m.nrows(), m.ncols()));
        for _ in 0..60 {
            let (y_inv, z_inv) =
                (y.clone().try_inverse().expect("invertible"), z.clone().try_inverse().expect("invertible"));
            (y, z) = ((&y + z_inv) / 2.0, (&z + y_inv) / 2.0);
        }
        y
    }

    #[test]
    fn a_set_is_at_distance_zero_from_itself() {
        let a = Moments::of(&features(400, 6, 1, 0.0), 6).expect("moments");
        let distance = frechet_distance(&a, &a).expect("distance");
        assert!(distance.abs() < 1e-10 * a.covariance.trace(), "{distance}");
    }

    #[test]
    fn the_distance_matches_a_direct_computation_in_f64() {
        let (a, b) = (features(500, 5, 2, 0.0), features(300, 5, 3, 0.3));
        let (ma, mb) = (Moments::of(&a, 5).expect("a"), Moments::of(&b, 5).expect("b"));
        let direct = (&ma.mean - &mb.mean).norm_squared() + ma.covariance.trace() + mb.covariance.trace()
            - 2.0 * sqrtm(&(&ma.covariance * &mb.covariance)).trace();
        let got = frechet_distance(&ma, &mb).expect("distance");
        assert!((got - direct).abs() < 1e-9 * direct, "eigenvalues {got}, Denman–Beavers {direct}");
        // One feature: (μa − μb)² + (σa − σb)².
        let (x, y) = ([1.0, 2.0, 4.0, 7.0], [0.0, 3.0, 3.0]);
        let moments = |v: &[f64]| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            (mean, var.sqrt())
        };
        let ((mx, sx), (my, sy)) = (moments(&x), moments(&y));
        let one = frechet_distance(&Moments::of(&x, 1).expect("x"), &Moments::of(&y, 1).expect("y")).expect("1-D");
        assert!((one - ((mx - my).powi(2) + (sx - sy).powi(2))).abs() < 1e-12, "{one}");
        assert!(Moments::of(&[1.0, 2.0], 2).is_err(), "one row has no covariance");
    }
}
