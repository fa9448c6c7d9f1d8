//! Fashion-MNIST (and any MNIST-format set) as normalised images with their labels.

use std::path::{Path, PathBuf};

use crate::idx::{IdxError, read_idx};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

const CLASSES: u8 = 10;

/// Images as pixels / 255 in row-major `[N, rows, cols]`, and their labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_size(&self) -> usize {
        self.rows * self.cols
    }

    /// The images and labels of `indices`, in that order.
    pub fn batch(&self, indices: &[usize]) -> (Vec<f32>, Vec<i32>) {
        let size = self.image_size();
        let images = indices.iter().flat_map(|&i| &self.images[i * size..(i + 1) * size]).copied().collect();
        (images, indices.iter().map(|&i| self.labels[i]).collect())
    }

    /// Loads `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]` from `dir`.
    pub fn load(dir: &Path, prefix: &str) -> Result<Self, IdxError> {
        let images_path = locate(dir, &format!("{prefix}-images-idx3-ubyte"));
        let labels_path = locate(dir, &format!("{prefix}-labels-idx1-ubyte"));
        let images = read_idx(&images_path)?;
        let labels = read_idx(&labels_path)?;
        let format = |path: &Path, message: String| IdxError::Format { path: path.into(), message };
        let [count, rows, cols] = images.dims[..] else {
            return Err(format(&images_path, format!("images must be 3-D, found dims {:?}", images.dims)));
        };
        if labels.dims != [count] {
            return Err(format(&labels_path, format!("expected {count} labels, found dims {:?}", labels.dims)));
        }
        if let Some(bad) = labels.data.iter().find(|&&l| l >= CLASSES) {
            return Err(format(&labels_path, format!("label {bad} is not a class in 0..{CLASSES}")));
        }
        Ok(Dataset {
            images: images.data.iter().map(|&p| p as f32 / 255.0).collect(),
            labels: labels.data.iter().map(|&l| l as i32).collect(),
            rows,
            cols,
        })
    }
}

/// `name.gz` when present, else `name` (whose absence the reader then reports).
fn locate(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() { gz } else { dir.join(name) }
}

/// The training and test sets.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    pub train: Dataset,
    pub test: Dataset,
}

impl FashionMnist {
    pub fn load(dir: &Path) -> Result<Self, IdxError> {
        Ok(FashionMnist { train: Dataset::load(dir, "train")?, test: Dataset::load(dir, "t10k")? })
    }
}

/// A seeded permutation of `0..n` (Fisher–Yates driven by splitmix64), the same on every
/// platform for the same seed.
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = shuffled_indices(1000, 7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, shuffled_indices(1000, 7));
        assert_ne!(a, shuffled_indices(1000, 8));
    }

    #[test]
    fn missing_directory_names_the_file() {
        let message = FashionMnist::load(Path::new("/nonexistent")).expect_err("no data").to_string();
        assert!(message.contains("/nonexistent/train-images-idx3-ubyte"), "{message}");
    }
}
