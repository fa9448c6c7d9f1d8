//! Fashion-MNIST (and any MNIST-format set) as normalised images with their labels.

use std::path::{Path, PathBuf};

use kiln_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::idx::{IdxArray, IdxError, read_idx};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

const CLASSES: u8 = 10;

/// Fashion-MNIST's class names, by label.
pub const CLASS_NAMES: [&str; CLASSES as usize] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

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
        Self::from_idx((&images_path, read_idx(&images_path)?), (&labels_path, read_idx(&labels_path)?))
    }

    /// The dataset of an array of images and one of labels, each with the file it came from
    /// (named in errors); pixels scaled to `[0, 1]`.
    pub fn from_idx(
        (images_path, images): (&Path, IdxArray),
        (labels_path, labels): (&Path, IdxArray),
    ) -> Result<Self, IdxError> {
        let format = |path: &Path, message: String| IdxError::Format { path: path.into(), message };
        let [count, rows, cols] = images.dims[..] else {
            return Err(format(images_path, format!("images must be 3-D, found dims {:?}", images.dims)));
        };
        if labels.dims != [count] {
            return Err(format(labels_path, format!("expected {count} labels, found dims {:?}", labels.dims)));
        }
        if let Some(bad) = labels.data.iter().find(|&&l| l >= CLASSES) {
            return Err(format(labels_path, format!("label {bad} is not a class in 0..{CLASSES}")));
        }
        Ok(Dataset {
            images: images.data.iter().map(|&p| p as f32 / 255.0).collect(),
            labels: labels.data.iter().map(|&l| l as i32).collect(),
            rows,
            cols,
        })
    }
}

/// Two sets of classes told apart by one output: images of the `positive` classes are
/// labelled 1, those of the `negative` classes 0 (`None`: of every other class).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryTask {
    pub positive: Vec<usize>,
    pub negative: Option<Vec<usize>>,
}

impl BinaryTask {
    /// `A,B` (the text after `binary:`): each side class numbers or names (`shirt`,
    /// `t-shirt`, `ankle-boot`, any case) joined by `+`; `B` may be `rest`. Sides must be
    /// non-empty and share no class.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: String| Error::data("--task", format!("binary:{text}: {why}"));
        let Some((a, b)) = text.split_once(',') else {
            return Err(bad("give two sides, `binary:A,B` (say binary:t-shirt,shirt or binary:5+7+9,rest)".into()));
        };
        let side = |part: &str| -> Result<Vec<usize>> {
            let mut classes: Vec<usize> =
                part.split('+').map(|name| class_of(name).ok_or_else(|| bad(unknown(name)))).collect::<Result<_>>()?;
            classes.sort_unstable();
            classes.dedup();
            Ok(classes)
        };
        let positive = side(a)?;
        let negative = if b.trim().eq_ignore_ascii_case("rest") { None } else { Some(side(b)?) };
        if let Some(shared) = negative.as_ref().and_then(|n| n.iter().find(|c| positive.contains(c))) {
            return Err(bad(format!("class {} ({}) is on both sides", shared, CLASS_NAMES[*shared])));
        }
        if negative.is_none() && positive.len() == CLASS_NAMES.len() {
            return Err(bad("`rest` is empty: the first side holds every class".into()));
        }
        Ok(BinaryTask { positive, negative })
    }

    /// Whether label `label` is positive (`Some(true)`), negative, or on neither side.
    pub fn side(&self, label: usize) -> Option<bool> {
        if self.positive.contains(&label) {
            Some(true)
        } else if self.negative.as_ref().is_none_or(|n| n.contains(&label)) {
            Some(false)
        } else {
            None
        }
    }

    /// The two sides as people read them: "Sandal+Sneaker+Ankle boot", "the rest".
    pub fn names(&self) -> [String; 2] {
        let join = |v: &[usize]| v.iter().map(|&c| CLASS_NAMES[c]).collect::<Vec<_>>().join("+");
        [join(&self.positive), self.negative.as_deref().map_or_else(|| "the rest".into(), join)]
    }

    /// The images of `set` on either side, labelled 1 (positive) or 0, in their order.
    pub fn select(&self, set: &Dataset) -> Dataset {
        let size = set.image_size();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        for (i, &label) in set.labels.iter().enumerate() {
            if let Some(positive) = self.side(label as usize) {
                images.extend_from_slice(&set.images[i * size..(i + 1) * size]);
                labels.push(i32::from(positive));
            }
        }
        Dataset { images, labels, rows: set.rows, cols: set.cols }
    }
}

/// The class a number or a name stands for.
fn class_of(name: &str) -> Option<usize> {
    let plain = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let wanted = plain(name);
    if let Ok(number) = wanted.parse::<usize>() {
        return (number < CLASS_NAMES.len()).then_some(number);
    }
    CLASS_NAMES.iter().position(|class| plain(class) == wanted || (wanted == "tshirt" && class.starts_with("T-shirt")))
}

fn unknown(name: &str) -> String {
    let names: Vec<String> = CLASS_NAMES.iter().enumerate().map(|(i, n)| format!("{i} {n}")).collect();
    format!("`{name}` is no class: the classes are {}", names.join(", "))
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
    fn binary_tasks_parse_names_and_numbers_and_select_their_images() {
        let task = BinaryTask::parse("t-shirt,Shirt").expect("parses");
        assert_eq!(task, BinaryTask { positive: vec![0], negative: Some(vec![6]) });
        let footwear = BinaryTask::parse("sandal+7+ankle-boot,rest").expect("parses");
        assert_eq!(footwear, BinaryTask { positive: vec![5, 7, 9], negative: None });
        assert_eq!(footwear.names(), ["Sandal+Sneaker+Ankle boot".to_string(), "the rest".to_string()]);
        for (bad, says) in [("shirt", "two sides"), ("shirt,shirt", "both sides"), ("hat,shirt", "`hat` is no class")] {
            let text = BinaryTask::parse(bad).expect_err("refused").to_string();
            assert!(text.contains(says) && text.contains("--task"), "{bad}: {text}");
        }
        let set = Dataset { images: (0..8).map(|v| v as f32).collect(), labels: vec![0, 6, 3, 0], rows: 1, cols: 2 };
        let picked = task.select(&set);
        assert_eq!((picked.labels, picked.images), (vec![1, 0, 1], vec![0.0, 1.0, 2.0, 3.0, 6.0, 7.0]));
        assert_eq!(footwear.select(&set).labels, vec![0, 0, 0, 0]);
    }

    #[test]
    fn missing_directory_names_the_file() {
        let message = FashionMnist::load(Path::new("/nonexistent")).expect_err("no data").to_string();
        assert!(message.contains("/nonexistent/train-images-idx3-ubyte"), "{message}");
    }
}
