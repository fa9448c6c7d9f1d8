//! Text as bytes for character-level language models: a corpus read from a file or a folder
//! of text files, its vocabulary (the bytes it holds), a fixed split by position (the first
//! 90% to train on, the last 10% to validate on), and windows of consecutive tokens with the
//! tokens that follow them.
//!
//! ```
//! # fn main() -> kiln_core::Result<()> {
//! let corpus = kiln_nn::text::Corpus::from_bytes(b"the cat sat on the mat. ".repeat(50), "example")?;
//! assert_eq!(corpus.vocab.decode(&corpus.vocab.encode(b"the mat")?), "the mat");
//! assert!(corpus.vocab.len() < 12);
//! # Ok(()) }
//! ```

use std::path::Path;

use kiln_core::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where Debian's `fortunes` package puts its text.
pub const DEFAULT_TEXT: &str = "/usr/share/games/fortunes";

/// The most text a corpus may hold.
pub const MAX_BYTES: u64 = 1 << 30;

/// The bytes a model knows, ascending: token `i` is byte `bytes[i]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vocab {
    pub bytes: Vec<u8>,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The ids of `text`; a byte outside the vocabulary is an error naming it.
    pub fn encode(&self, text: &[u8]) -> Result<Vec<i32>> {
        text.iter()
            .map(|&b| match self.bytes.binary_search(&b) {
                Ok(i) => Ok(i as i32),
                Err(_) => Err(Error::data(
                    "text",
                    format!("byte {b:#04x} ({:?}) never occurs in the text the model learnt", b as char),
                )),
            })
            .collect()
    }

    /// The text of `ids` (bytes that are not UTF-8 shown as U+FFFD).
    pub fn decode(&self, ids: &[i32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter_map(|&i| self.bytes.get(i as usize).copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A corpus as token ids (its bytes, numbered in the order of the vocabulary), split by position.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub vocab: Vocab,
    pub train: Vec<i32>,
    pub validation: Vec<i32>,
}

impl Corpus {
    /// The text of `path`: a file, or every regular file of a folder (by name, not its
    /// subfolders), leaving out links and files holding a NUL byte (binary files such as
    /// fortune's `.dat` indexes). An empty or oversized corpus is refused.
    pub fn load(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { context: path.display().to_string(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mut text = Vec::new();
        if meta.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.symlink_metadata().is_ok_and(|m| m.file_type().is_file()))
                .collect();
            files.sort();
            for file in files {
                let bytes = read_bounded(&file, MAX_BYTES - text.len() as u64)?;
                if !bytes.contains(&0) {
                    text.extend(bytes);
                }
            }
        } else {
            text = read_bounded(path, MAX_BYTES)?;
        }
        Self::from_bytes(text, &path.display().to_string())
    }

    /// The corpus of `text`, named `what` in errors: at least 1,000 bytes, so that both parts of
    /// the split hold text.
    pub fn from_bytes(text: Vec<u8>, what: &str) -> Result<Self> {
        if text.len() < 1000 {
            return Err(Error::data(
                what,
                format!(
                    "holds {} bytes of text: a corpus needs at least 1,000 (give --text a file or folder)",
                    text.len()
                ),
            ));
        }
        let mut seen = [false; 256];
        for &b in &text {
            seen[b as usize] = true;
        }
        let vocab = Vocab { bytes: (0..=255u8).filter(|&b| seen[b as usize]).collect() };
        let mut ids = [0i32; 256];
        for (i, &b) in vocab.bytes.iter().enumerate() {
            ids[b as usize] = i as i32;
        }
        let tokens: Vec<i32> = text.iter().map(|&b| ids[b as usize]).collect();
        let cut = tokens.len() * 9 / 10;
        Ok(Corpus { vocab, train: tokens[..cut].to_vec(), validation: tokens[cut..].to_vec() })
    }

    /// `count` windows of `context` tokens from `tokens` at offsets drawn from `seed`, and the
    /// `context` tokens that follow each position: inputs and targets, row after row.
    pub fn windows(tokens: &[i32], context: usize, count: usize, seed: u64) -> (Vec<i32>, Vec<i32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut inputs, mut targets) = (Vec::with_capacity(count * context), Vec::with_capacity(count * context));
        for _ in 0..count {
            let start = rng.random_range(0..tokens.len() - context);
            inputs.extend_from_slice(&tokens[start..start + context]);
            targets.extend_from_slice(&tokens[start + 1..start + context + 1]);
        }
        (inputs, targets)
    }

    /// Every whole window of `context` tokens of `tokens`, one after another (the last
    /// position's target is the token after the window), for evaluation.
    pub fn tiles(tokens: &[i32], context: usize) -> (Vec<i32>, Vec<i32>) {
        let count = (tokens.len() - 1) / context;
        let inputs = tokens[..count * context].to_vec();
        let targets = tokens[1..count * context + 1].to_vec();
        (inputs, targets)
    }
}

/// A file's bytes, refusing one longer than `limit` before reading it.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let io = |source| Error::Io { context: path.display().to_string(), source };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(Error::data(
            path.display().to_string(),
            format!("the corpus would pass {MAX_BYTES} bytes: give a smaller file or folder"),
        ));
    }
    std::fs::read(path).map_err(io)
}

/// Validation cross-entropy of the unigram and bigram models counted from the training
/// tokens, in nats per token: `−mean ln p(x)` and `−mean ln p(x | previous)`, with add-one
/// (Laplace) smoothing so that an unseen pair still has a probability.
pub fn baselines(corpus: &Corpus) -> (f64, f64) {
    let v = corpus.vocab.len();
    let mut unigram = vec![1.0f64; v];
    let mut bigram = vec![1.0f64; v * v];
    for &t in &corpus.train {
        unigram[t as usize] += 1.0;
    }
    for pair in corpus.train.windows(2) {
        bigram[pair[0] as usize * v + pair[1] as usize] += 1.0;
    }
    let total: f64 = unigram.iter().sum();
    let rows: Vec<f64> = bigram.chunks(v).map(|row| row.iter().sum()).collect();
    let tokens = &corpus.validation;
    let uni = -tokens.iter().map(|&t| (unigram[t as usize] / total).ln()).sum::<f64>() / tokens.len() as f64;
    let bi =
        -tokens.windows(2).map(|p| (bigram[p[0] as usize * v + p[1] as usize] / rows[p[0] as usize]).ln()).sum::<f64>()
            / (tokens.len() - 1) as f64;
    (uni, bi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Corpus {
        Corpus::from_bytes(b"abcabcabd".repeat(200), "test").expect("corpus")
    }

    #[test]
    fn the_split_is_by_position_with_no_overlap() {
        let c = corpus();
        assert_eq!(c.vocab.bytes, b"abcd");
        assert_eq!(c.train.len() + c.validation.len(), 1800);
        assert_eq!(c.train.len(), 1620, "the first 90%");
        let all = [c.train.clone(), c.validation.clone()].concat();
        assert_eq!(c.vocab.decode(&all), "abcabcabd".repeat(200), "the parts are the text, in order, once");
    }

    #[test]
    fn windows_pair_each_token_with_the_next() {
        let c = corpus();
        let (inputs, targets) = Corpus::windows(&c.train, 8, 5, 3);
        assert_eq!((inputs.len(), targets.len()), (40, 40));
        for (window, next) in inputs.chunks(8).zip(targets.chunks(8)) {
            assert_eq!(window[1..], next[..7], "targets are the inputs shifted by one");
        }
        assert_eq!(Corpus::windows(&c.train, 8, 5, 3), (inputs, targets), "seeded");
        let (inputs, targets) = Corpus::tiles(&c.validation, 16);
        assert_eq!(inputs.len(), 176);
        assert_eq!(inputs[1..], targets[..175]);
    }

    #[test]
    fn baselines_know_the_bigram_structure() {
        // After `a` always `b`, after `b` mostly `c`: the bigram model is far better.
        let (unigram, bigram) = baselines(&corpus());
        assert!(unigram > 1.2 && bigram < 0.5, "unigram {unigram}, bigram {bigram} nats");
        assert!(Corpus::from_bytes(b"short".to_vec(), "tiny").is_err());
        let text = corpus().vocab.encode(b"z").expect_err("not in the vocabulary").to_string();
        assert!(text.contains("0x7a"), "{text}");
    }
}
