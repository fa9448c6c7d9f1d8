//! Character-level language models: `gpt` (token and learned position embeddings, pre-norm
//! transformer blocks of causal multi-head attention and a GELU MLP, a final layer norm and a
//! head), and the recurrent `rnn` (Elman's tanh cell), `gru` and `lstm`, each predicting every
//! next byte of a window with cross-entropy; trained with AdamW, a warm-up and a cosine decay,
//! and gradients clipped by their global norm. Generation runs on the device with programs of
//! its own over the trained parameters, one token per submission: the recurrent models step
//! their cell, carrying the state in the store; `gpt` either reads its whole window again for
//! every token, or keeps a key/value cache per layer so that each token costs one position.
//!
//! ```no_run
//! # fn main() -> kiln_core::Result<()> {
//! use kiln_nn::language::{LmConfig, LmProgress, train_language_model};
//! use kiln_nn::text::{Corpus, DEFAULT_TEXT};
//! let corpus = Corpus::load(std::path::Path::new(DEFAULT_TEXT))?;
//! struct Quiet;
//! impl<B: kiln_core::Backend> LmProgress<B> for Quiet {}
//! let config = LmConfig { steps: 200, ..LmConfig::named("gpt") };
//! let trained = train_language_model(kiln_cpu::Cpu, &config, &corpus, &mut Quiet)?;
//! println!("validation {:.3} bits per character", trained.metrics.validation_bpc);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_core::{Adam, Backend, DType, Error, HostTensor, LrSchedule, Result};
use kiln_graph::{Graph, Program, Store, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::files::{Output, WriterLock, check_outputs};
use crate::init::Init;
use crate::layers::{Attend, Cell, KvCache, Layers};
use crate::optim::{Optimizer, ParamGroup, minimize};
use crate::text::{Corpus, Vocab};
use crate::trainer::{cross_entropy, refuse_changed, to_json};

/// The language models.
pub const LANGUAGE_MODELS: &[&str] = &["gpt", "gru", "lstm", "rnn"];

/// Whether `model` names a language model.
pub fn is_language_model(model: &str) -> bool {
    LANGUAGE_MODELS.contains(&model)
}

/// The checkpoint metadata key that marks a language model's checkpoint (its value: the model).
pub const LANGUAGE_KIND: &str = "language";

/// Windows per evaluation submission.
const EVAL_BATCH: usize = 64;

/// A language model run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// `gpt`, `gru`, `lstm` or `rnn`.
    pub model: String,
    /// Tokens per window: what the model reads to predict each next one.
    pub context: usize,
    /// `gpt`: the width of every position's vector; the others: the hidden state's size.
    pub width: usize,
    /// `gpt`'s transformer blocks and attention heads.
    pub layers: usize,
    pub heads: usize,
    /// The recurrent models' token embedding width.
    pub embedding: usize,
    pub batch: usize,
    /// AdamW's peak rate and decoupled weight decay (matrices only), reached after `warmup`
    /// steps and decayed by a cosine to a hundredth over the rest.
    pub lr: f32,
    pub weight_decay: f32,
    pub warmup: usize,
    pub clip_norm: f32,
    pub steps: usize,
    /// Steps between evaluations (validation loss, a sample, a checkpoint).
    pub eval_every: usize,
    pub seed: u64,
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    #[serde(skip)]
    pub resume: Option<PathBuf>,
}

impl LmConfig {
    /// `model` at sizes that give the four models about the same number of parameters (0.83 to
    /// 0.91 million with Fortunes' vocabulary) and train in minutes on a CPU adapter.
    pub fn named(model: &str) -> Self {
        let width = match model {
            "rnn" => 832,
            "gru" => 448,
            "lstm" => 384,
            _ => 128,
        };
        // The transformer learns per token more slowly than the cells at this size; a higher
        // rate pays it back (bench/results/2026-12-03-language/).
        let lr = if model == "gpt" { 6e-3 } else { 2e-3 };
        LmConfig {
            model: model.into(),
            context: 64,
            width,
            layers: 4,
            heads: 4,
            embedding: 128,
            batch: 32,
            lr,
            weight_decay: 0.1,
            warmup: 100,
            clip_norm: 1.0,
            steps: 2000,
            eval_every: 250,
            seed: 1,
            checkpoint: None,
            resume: None,
        }
    }

    /// Refuses settings that make no sense, naming the setting.
    pub fn check(&self) -> Result<()> {
        if !is_language_model(&self.model) {
            return Err(Error::Unsupported(format!(
                "model `{}` is no language model: they are {}",
                self.model,
                LANGUAGE_MODELS.join(", ")
            )));
        }
        for (option, value, max) in [
            ("--context", self.context, 4096),
            ("--width", self.width, 8192),
            ("--layers", self.layers, 64),
            ("--heads", self.heads, 64),
            ("--batch", self.batch, 4096),
            ("--steps", self.steps, 100_000_000),
            ("--eval-every", self.eval_every, 100_000_000),
        ] {
            if !(1..=max).contains(&value) {
                return Err(Error::data(option, format!("{value} must lie in 1..={max}")));
            }
        }
        if self.model == "gpt" && !self.width.is_multiple_of(self.heads) {
            return Err(Error::data("--heads", format!("{} heads do not divide the width {}", self.heads, self.width)));
        }
        let positive = |option: &str, v: f32| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(Error::data(option, format!("{v} must be above 0"))) }
        };
        positive("--lr", self.lr)?;
        positive("--clip-norm", self.clip_norm)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::data("--weight-decay", format!("{} must be 0 or more", self.weight_decay)));
        }
        Ok(())
    }

    fn cell(&self) -> Cell {
        match self.model.as_str() {
            "rnn" => Cell::Rnn,
            "gru" => Cell::Gru,
            _ => Cell::Lstm,
        }
    }

    /// The layer builder of this model: `gpt` starts as GPT-2 does (`N(0, 0.02²)` weights and
    /// embeddings, zero biases), so the blocks' residual branches weigh as much as the token
    /// embedding from the first steps; the recurrent models keep PyTorch's defaults.
    fn layer_builder(&self, training: bool) -> Layers {
        let l = Layers::new(training, self.seed);
        if self.model == "gpt" { l.with_init(Init::Small) } else { l }
    }

    /// The run's optimizer for a group: AdamW with its schedule, decaying or not.
    fn adamw(&self, decay: bool) -> Optimizer {
        let schedule =
            LrSchedule::Cosine { warmup: self.warmup as u32, total: self.steps as u32, min_lr: self.lr / 100.0 };
        let weight_decay = if decay { self.weight_decay } else { 0.0 };
        Optimizer::Adam(Adam { schedule, weight_decay, decoupled: true, ..Adam::new(self.lr) })
    }
}

/// A language model's graph: token ids `[B, T]` in, next-token logits `[B·T, V]` out, the
/// targets `[B·T]` and the mean cross-entropy.
pub struct LanguageModel {
    pub graph: Graph,
    pub ids: Value,
    pub targets: Value,
    pub logits: Value,
    pub loss: Value,
    pub params: Vec<Value>,
}

/// The model `config` names over a vocabulary of `vocab` tokens, for `batch` windows.
pub fn build_language_model(config: &LmConfig, vocab: usize, batch: usize) -> Result<LanguageModel> {
    config.check()?;
    let (t, width) = (config.context, config.width);
    let mut l = config.layer_builder(true);
    let ids = l.g.input("ids", vec![batch, t], DType::I32);
    let hidden = if config.model == "gpt" {
        let x = l.embedding("tok", ids, vocab, width)?;
        let mut x = l.position_embedding("pos", x)?;
        for block in 0..config.layers {
            x = l.transformer_block(&format!("block{block}"), x, config.heads, true)?;
        }
        l.layer_norm("ln_f", x)?
    } else {
        let x = l.embedding("tok", ids, vocab, config.embedding)?;
        let states = l.recurrent(&config.model, x, width, config.cell())?;
        let rows = states.iter().map(|&h| l.g.reshape(h, vec![batch, 1, width])).collect::<Result<Vec<_>>>()?;
        l.g.concat(&rows, 1)?
    };
    let logits = l.linear("head", hidden, vocab)?;
    let logits = l.g.reshape(logits, vec![batch * t, vocab])?;
    let targets = l.g.input("targets", vec![batch * t], DType::I32);
    let loss = l.g.cross_entropy(logits, targets)?;
    let params = l.params().to_vec();
    Ok(LanguageModel { graph: l.g, ids, targets, logits, loss, params })
}

/// How a generator reads its history.
enum Reader {
    /// `gpt` without a cache: the last `context` tokens as one window, every token.
    Window { ids: Value },
    /// `gpt` with a key/value cache per layer: the new token at its position; the cache holds
    /// the history from `start` on.
    Cached { token: Value, position: Value, slot: Value, mask: Value, next: usize, start: usize },
    /// A recurrent model: the new token, its state carried in the store.
    Recurrent { token: Value, next: usize },
}

/// A program that gives the next token's logits, one submission per token.
pub struct Generator<B: Backend> {
    program: Program<B>,
    reader: Reader,
    logits: Value,
    /// Store variables the generator keeps between tokens (caches, states): zeroed on reset.
    state: Vec<(String, HostTensor)>,
    context: usize,
    vocab: usize,
}

impl<B: Backend> Generator<B> {
    /// The generator of `config`'s model over `store` (whose parameters it binds by name);
    /// `cached` gives `gpt` a key/value cache.
    pub fn compile(store: &mut Store<B>, config: &LmConfig, vocab: usize, cached: bool) -> Result<Self> {
        config.check()?;
        let (t, width) = (config.context, config.width);
        let mut l = config.layer_builder(false);
        let mut state = Vec::new();
        let mut keep = |l: &mut Layers, name: String, shape: Vec<usize>| {
            let zeros = HostTensor::zeros(shape.clone().into(), DType::F32);
            state.push((name.clone(), zeros.clone()));
            l.g.variable_init(&name, zeros)
        };
        let (reader, hidden) = match (config.model.as_str(), cached) {
            ("gpt", false) => {
                let ids = l.g.input("ids", vec![1, t], DType::I32);
                let x = l.embedding("tok", ids, vocab, width)?;
                let mut x = l.position_embedding("pos", x)?;
                for block in 0..config.layers {
                    x = l.transformer_block(&format!("block{block}"), x, config.heads, true)?;
                }
                let x = l.layer_norm("ln_f", x)?;
                (Reader::Window { ids }, l.g.reshape(x, vec![t, width])?)
            }
            ("gpt", true) => {
                let token = l.g.input("token", vec![1, 1], DType::I32);
                let position = l.g.input("position", vec![1, 1], DType::I32);
                let slot = l.g.input("slot", vec![1, 1, t, 1], DType::F32);
                let mask = l.g.input("mask", vec![t], DType::F32);
                let x = l.embedding("tok", token, vocab, width)?;
                // The position's row of the learned table the window adds whole.
                let table = l.position_table("pos", t, width)?;
                let row = l.g.embedding(table, position)?;
                let mut x = l.g.add(x, row)?;
                let per_head = width / config.heads;
                for block in 0..config.layers {
                    let name = format!("block{block}");
                    let keys = keep(&mut l, format!("generate.{name}.keys"), vec![1, config.heads, t, per_head]);
                    let values = keep(&mut l, format!("generate.{name}.values"), vec![1, config.heads, t, per_head]);
                    let cache = KvCache { keys, values, slot, mask };
                    x = l.transformer_block_with(&name, x, config.heads, Attend::Cached(cache))?;
                }
                let x = l.layer_norm("ln_f", x)?;
                (Reader::Cached { token, position, slot, mask, next: 0, start: 0 }, l.g.reshape(x, vec![1, width])?)
            }
            (model, _) => {
                let token = l.g.input("token", vec![1], DType::I32);
                let x = l.embedding("tok", token, vocab, config.embedding)?;
                let cell = config.cell();
                let h = keep(&mut l, format!("generate.{model}.h"), vec![1, width]);
                let c = (cell == Cell::Lstm).then(|| keep(&mut l, format!("generate.{model}.c"), vec![1, width]));
                let (h_next, c_next) = l.recurrent_step(model, x, (h, c), width, cell)?;
                l.g.assign(h, h_next)?;
                if let (Some(c), Some(c_next)) = (c, c_next) {
                    l.g.assign(c, c_next)?;
                }
                (Reader::Recurrent { token, next: 0 }, h_next)
            }
        };
        let logits = l.linear("head", hidden, vocab)?;
        let program = Program::compile(store, &l.g, &[logits])?;
        let mut generator = Generator { program, reader, logits, state, context: t, vocab };
        generator.reset(store)?;
        Ok(generator)
    }

    /// Forgets the tokens read so far: caches and states back to zero.
    pub fn reset(&mut self, store: &mut Store<B>) -> Result<()> {
        for (name, zeros) in &self.state {
            store.write(name, zeros)?;
        }
        match &mut self.reader {
            Reader::Cached { next, start, .. } => (*next, *start) = (0, 0),
            Reader::Recurrent { next, .. } => *next = 0,
            Reader::Window { .. } => {}
        }
        Ok(())
    }

    /// The logits of the token after `history`, which extends the history of the previous
    /// call (or starts afresh after `reset`). The window and the cache read at most `context`
    /// tokens: past that, the window slides, and the cache starts again from the last half.
    pub fn next(&mut self, store: &mut Store<B>, history: &[i32]) -> Result<Vec<f32>> {
        if history.is_empty() {
            return Err(Error::data("prompt", "give at least one token to start from"));
        }
        let t = self.context;
        match self.reader {
            Reader::Window { ids } => {
                let start = history.len().saturating_sub(t);
                let window = &history[start..];
                let mut padded = window.to_vec();
                padded.resize(t, 0);
                self.program.set(ids, &HostTensor::i32(vec![1, t], padded)?)?;
                let logits = self.program.run(store, &[self.logits])?.remove(0);
                let row = window.len() - 1;
                Ok(logits.as_f32()?[row * self.vocab..(row + 1) * self.vocab].to_vec())
            }
            Reader::Cached { next, start, .. } => self.read(store, history, start + next, Some(start)),
            Reader::Recurrent { next, .. } => self.read(store, history, next, None),
        }
    }

    /// The logits after stepping the tokens of `history` from `from` on; `cache_start`: where
    /// the key/value cache's history starts, for gpt.
    fn read(
        &mut self,
        store: &mut Store<B>,
        history: &[i32],
        from: usize,
        cache_start: Option<usize>,
    ) -> Result<Vec<f32>> {
        let t = self.context;
        let mut from = from.min(history.len());
        if cache_start.is_some_and(|start| history.len().saturating_sub(start) > t) {
            // The cache is full: read the last half window again into an empty one.
            self.reset(store)?;
            from = history.len() - (t / 2).max(1).min(history.len());
            if let Reader::Cached { start, .. } = &mut self.reader {
                *start = from;
            }
        }
        let mut logits = Vec::new();
        for &token in &history[from..] {
            logits = self.step(store, token)?;
        }
        Ok(logits)
    }

    /// One token through the cache or the cell.
    fn step(&mut self, store: &mut Store<B>, token: i32) -> Result<Vec<f32>> {
        let t = self.context;
        match &mut self.reader {
            Reader::Cached { token: input, position, slot, mask, next, .. } => {
                let p = *next;
                self.program.set(*input, &HostTensor::i32(vec![1, 1], vec![token])?)?;
                self.program.set(*position, &HostTensor::i32(vec![1, 1], vec![p as i32])?)?;
                let one_hot = (0..t).map(|i| f32::from(u8::from(i == p))).collect();
                self.program.set(*slot, &HostTensor::f32(vec![1, 1, t, 1], one_hot)?)?;
                let keep = (0..t).map(|i| if i <= p { 0.0 } else { f32::MIN }).collect();
                self.program.set(*mask, &HostTensor::f32(vec![t], keep)?)?;
                *next += 1;
            }
            Reader::Recurrent { token: input, next } => {
                self.program.set(*input, &HostTensor::i32(vec![1], vec![token])?)?;
                *next += 1;
            }
            Reader::Window { .. } => return Err(Error::attribute("generate", "a window reads no single tokens")),
        }
        Ok(self.program.run(store, &[self.logits])?.remove(0).as_f32()?.to_vec())
    }
}

/// How the next token is drawn from the logits: at `temperature` (0: the likeliest) among the
/// `top_k` likeliest (0: all), by a generator seeded by `seed`.
pub struct Sampler {
    pub temperature: f32,
    pub top_k: usize,
    rng: StdRng,
}

impl Sampler {
    pub fn new(temperature: f32, top_k: usize, seed: u64) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::data("--temperature", format!("{temperature} must be a finite number from 0")));
        }
        Ok(Sampler { temperature, top_k, rng: StdRng::seed_from_u64(seed) })
    }

    /// A token drawn from `logits` (softmax in f64 of logits / temperature over the top k).
    pub fn draw(&mut self, logits: &[f32]) -> usize {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if self.temperature == 0.0 {
            return order[0];
        }
        let keep = if self.top_k == 0 { order.len() } else { self.top_k.min(order.len()) };
        let top = logits[order[0]] as f64;
        let weights: Vec<f64> =
            order[..keep].iter().map(|&i| ((logits[i] as f64 - top) / self.temperature as f64).exp()).collect();
        let mut pick = self.rng.random::<f64>() * weights.iter().sum::<f64>();
        for (k, w) in weights.iter().enumerate() {
            if pick < *w {
                return order[k];
            }
            pick -= w;
        }
        order[keep - 1]
    }
}

/// `tokens` new tokens after `prompt`, each handed to `emit` as it is drawn.
pub fn generate<B: Backend>(
    generator: &mut Generator<B>,
    store: &mut Store<B>,
    prompt: &[i32],
    tokens: usize,
    sampler: &mut Sampler,
    mut emit: impl FnMut(i32) -> Result<()>,
) -> Result<Vec<i32>> {
    generator.reset(store)?;
    let mut history = prompt.to_vec();
    for _ in 0..tokens {
        let logits = generator.next(store, &history)?;
        let token = sampler.draw(&logits) as i32;
        emit(token)?;
        history.push(token);
    }
    Ok(history[prompt.len()..].to_vec())
}

/// One evaluation of a language model run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmRow {
    /// Steps done when the row was taken.
    pub step: usize,
    /// Mean training loss over the steps since the last row, and the validation loss (every
    /// whole window of the validation text), in nats per character; and both in bits.
    pub train_loss: f64,
    pub validation_loss: f64,
    pub train_bpc: f64,
    pub validation_bpc: f64,
    /// Training seconds since the last row, and tokens per second of training.
    pub seconds: f64,
    pub tokens_per_sec: f64,
    /// A short sample from a newline.
    pub sample: String,
}

/// What a language model run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LmMetrics {
    pub model: String,
    pub adapter: String,
    pub parameters: usize,
    pub vocab: usize,
    pub steps: usize,
    pub validation_loss: f64,
    pub validation_bpc: f64,
    /// The corpus's unigram and bigram models' validation bits per character.
    pub unigram_bpc: f64,
    pub bigram_bpc: f64,
    pub train_seconds: f64,
    pub tokens_per_sec: f64,
    pub rows: Vec<LmRow>,
}

/// What a language model run reports as it goes; every method does nothing unless overridden.
pub trait LmProgress<B: Backend> {
    /// Every few steps: steps done, of all, and the mean loss since the last row.
    fn step(&mut self, _done: usize, _of: usize, _loss: f64) {}
    fn row(&mut self, _row: &LmRow) -> Result<()> {
        Ok(())
    }
    fn note(&mut self, _text: &str) {}
}

/// A finished run: its measurements and its store.
pub struct TrainedLanguageModel<B: Backend> {
    pub metrics: LmMetrics,
    pub store: Store<B>,
}

/// Trains the language model `config` names on `corpus`, reporting to `progress`.
pub fn train_language_model<B: Backend>(
    backend: B,
    config: &LmConfig,
    corpus: &Corpus,
    progress: &mut dyn LmProgress<B>,
) -> Result<TrainedLanguageModel<B>> {
    config.check()?;
    if corpus.train.len() <= config.context + 1 || corpus.validation.len() <= config.context + 1 {
        return Err(Error::data(
            "--context",
            format!("{} is longer than the text to train or validate on", config.context),
        ));
    }
    let paths: Vec<&Path> = config.checkpoint.as_deref().into_iter().collect();
    check_outputs(&paths.iter().map(|path| Output::File { option: "--checkpoint", path }).collect::<Vec<_>>())?;
    let _lock = config.checkpoint.as_deref().map(WriterLock::acquire).transpose()?;
    let vocab = corpus.vocab.len();
    let mut model = build_language_model(config, vocab, config.batch)?;
    let (matrices, vectors): (Vec<Value>, Vec<Value>) =
        model.params.iter().partition(|&&p| model.graph.shape(p).rank() >= 2);
    let groups = [
        ParamGroup { params: matrices, optimizer: config.adamw(true) },
        ParamGroup { params: vectors, optimizer: config.adamw(false) },
    ];
    let parameters = model.params.iter().map(|&p| model.graph.shape(p).numel()).sum();
    minimize(&mut model.graph, model.loss, &groups, Some(config.clip_norm))?;
    let mut store = Store::new(backend);
    let train = Program::compile(&mut store, &model.graph, &[model.loss])?;
    let eval_model = build_language_model(config, vocab, EVAL_BATCH)?;
    let eval = Program::compile(&mut store, &eval_model.graph, &[eval_model.logits])?;
    let mut generator = Generator::compile(&mut store, config, vocab, config.model == "gpt")?;
    log::info!(
        "training {} ({parameters} parameters) on {}: {} graph nodes per step; device memory: {} KiB of parameters \
         and state, {} KiB for the step",
        config.model,
        store.backend().name(),
        model.graph.nodes().len(),
        store.bytes() / 1024,
        train.plan().program_bytes / 1024
    );
    let mut rows: Vec<LmRow> = Vec::new();
    if let Some(path) = &config.resume {
        rows = resume(&mut store, config, corpus, path)?;
        progress.note(&format!("resumed from {} after step {}", path.display(), rows.last().map_or(0, |r| r.step)));
    }
    let (unigram, bigram) = crate::text::baselines(corpus);
    let bits = std::f64::consts::LN_2;
    progress.note(&format!(
        "{} training and {} validation characters, a vocabulary of {vocab}; validation bits per character of the \
         unigram model {:.3}, of the bigram model {:.3}",
        corpus.train.len(),
        corpus.validation.len(),
        unigram / bits,
        bigram / bits
    ));
    let mut done = rows.last().map_or(0, |r| r.step);
    let (mut loss_sum, mut since, mut start) = (0.0f64, 0usize, Instant::now());
    while done < config.steps {
        let (inputs, targets) = Corpus::windows(
            &corpus.train,
            config.context,
            config.batch,
            config.seed ^ (done as u64).wrapping_mul(0x9e37_79b9),
        );
        train.set(model.ids, &HostTensor::i32(vec![config.batch, config.context], inputs)?)?;
        train.set(model.targets, &HostTensor::i32(vec![config.batch * config.context], targets)?)?;
        let loss = train.run(&mut store, &[model.loss])?[0].as_f32()?[0];
        if !loss.is_finite() {
            return Err(Error::data("train", format!("the loss became {loss} at step {}: lower --lr", done + 1)));
        }
        done += 1;
        since += 1;
        loss_sum += loss as f64;
        if done.is_multiple_of(10) {
            progress.step(done, config.steps, loss_sum / since as f64);
        }
        if done.is_multiple_of(config.eval_every) || done == config.steps {
            let seconds = start.elapsed().as_secs_f64();
            let validation_loss = evaluate(&eval, &eval_model, &mut store, config, corpus)?;
            let mut sampler = Sampler::new(0.8, 40, config.seed)?;
            let newline = corpus.vocab.encode(b"\n").unwrap_or_else(|_| vec![0]);
            let sample = generate(&mut generator, &mut store, &newline, 120, &mut sampler, |_| Ok(()))?;
            let row = LmRow {
                step: done,
                train_loss: loss_sum / since as f64,
                validation_loss,
                train_bpc: loss_sum / since as f64 / bits,
                validation_bpc: validation_loss / bits,
                seconds,
                tokens_per_sec: (since * config.batch * config.context) as f64 / seconds.max(1e-9),
                sample: corpus.vocab.decode(&sample),
            };
            rows.push(row.clone());
            if let Some(path) = &config.checkpoint {
                save(&store, config, corpus, &rows, path)?;
            }
            progress.row(&row)?;
            (loss_sum, since, start) = (0.0, 0, Instant::now());
        }
    }
    let last = rows.last().ok_or_else(|| Error::attribute("train", "no step ran"))?.clone();
    let train_seconds: f64 = rows.iter().map(|r| r.seconds).sum();
    let tokens = rows.last().map_or(0, |r| r.step) * config.batch * config.context;
    let metrics = LmMetrics {
        model: config.model.clone(),
        adapter: store.backend().name(),
        parameters,
        vocab,
        steps: last.step,
        validation_loss: last.validation_loss,
        validation_bpc: last.validation_bpc,
        unigram_bpc: unigram / bits,
        bigram_bpc: bigram / bits,
        train_seconds,
        tokens_per_sec: tokens as f64 / train_seconds.max(1e-9),
        rows,
    };
    Ok(TrainedLanguageModel { metrics, store })
}

/// The mean cross-entropy over every whole window of the validation text, in nats: the
/// device's logits, the cross-entropy of each position in f64 on the host (the last chunk
/// padded with its own last window, whose copies are left out).
fn evaluate<B: Backend>(
    eval: &Program<B>,
    model: &LanguageModel,
    store: &mut Store<B>,
    config: &LmConfig,
    corpus: &Corpus,
) -> Result<f64> {
    let (t, v) = (config.context, corpus.vocab.len());
    let (inputs, targets) = Corpus::tiles(&corpus.validation, t);
    let windows = inputs.len() / t;
    let mut total = 0.0f64;
    for start in (0..windows).step_by(EVAL_BATCH) {
        let rows = EVAL_BATCH.min(windows - start);
        let ids: Vec<i32> =
            (0..EVAL_BATCH).flat_map(|r| inputs[(start + r.min(rows - 1)) * t..][..t].to_vec()).collect();
        eval.set(model.ids, &HostTensor::i32(vec![EVAL_BATCH, t], ids)?)?;
        let logits = eval.run(store, &[model.logits])?.remove(0);
        let logits = logits.as_f32()?;
        for (position, &target) in targets[start * t..(start + rows) * t].iter().enumerate() {
            total += cross_entropy(&logits[position * v..(position + 1) * v], target as usize);
        }
    }
    Ok(total / (windows * t) as f64)
}

fn metadata(config: &LmConfig, corpus: &Corpus, rows: &[LmRow]) -> Result<HashMap<String, String>> {
    Ok(HashMap::from([
        ("model".to_string(), config.model.clone()),
        (LANGUAGE_KIND.to_string(), config.model.clone()),
        ("config".to_string(), to_json(config)?),
        ("history".to_string(), to_json(&rows)?),
        ("vocab".to_string(), to_json(&corpus.vocab)?),
    ]))
}

fn save<B: Backend>(store: &Store<B>, config: &LmConfig, corpus: &Corpus, rows: &[LmRow], path: &Path) -> Result<()> {
    Checkpoint::capture(store, metadata(config, corpus, rows)?)?.save(path)
}

/// Restores a run of the same settings and corpus from `path`; returns its rows.
fn resume<B: Backend>(store: &mut Store<B>, config: &LmConfig, corpus: &Corpus, path: &Path) -> Result<Vec<LmRow>> {
    let checkpoint = Checkpoint::load(path)?;
    let what = path.display().to_string();
    let saved: LmConfig = serde_json::from_str(checkpoint.meta("config")?)
        .map_err(|e| Error::data(&what, format!("its settings: {e}")))?;
    let vocab: Vocab = serde_json::from_str(checkpoint.meta("vocab")?)
        .map_err(|e| Error::data(&what, format!("its vocabulary: {e}")))?;
    let show = |v: &dyn std::fmt::Debug| format!("{v:?}");
    refuse_changed(
        &what,
        &[
            ("--model", saved.model.clone(), config.model.clone()),
            (
                "the model's shape",
                show(&(saved.context, saved.width, saved.layers, saved.heads, saved.embedding)),
                show(&(config.context, config.width, config.layers, config.heads, config.embedding)),
            ),
            ("--batch", saved.batch.to_string(), config.batch.to_string()),
            ("--lr", saved.lr.to_string(), config.lr.to_string()),
            (
                "the schedule",
                show(&(saved.weight_decay, saved.warmup, saved.clip_norm, saved.steps)),
                show(&(config.weight_decay, config.warmup, config.clip_norm, config.steps)),
            ),
            ("--eval-every", saved.eval_every.to_string(), config.eval_every.to_string()),
            ("--seed", saved.seed.to_string(), config.seed.to_string()),
            ("the text's vocabulary", show(&vocab.bytes), show(&corpus.vocab.bytes)),
        ],
    )?;
    checkpoint.restore(store)?;
    serde_json::from_str(checkpoint.meta("history")?).map_err(|e| Error::data(&what, format!("its history: {e}")))
}

/// A trained language model loaded from its checkpoint, to generate text.
pub struct Writer<B: Backend> {
    pub store: Store<B>,
    pub generator: Generator<B>,
    pub config: LmConfig,
    /// The bytes of the corpus it learnt.
    pub vocab: Vocab,
}

impl<B: Backend> Writer<B> {
    /// The model of the language model checkpoint at `path`, generating with a key/value
    /// cache where `cached` (gpt); any other checkpoint is refused, saying what it holds.
    pub fn load(backend: B, path: &Path, cached: bool) -> Result<Self> {
        let checkpoint = Checkpoint::load(path)?;
        let what = path.display().to_string();
        if checkpoint.meta(LANGUAGE_KIND).is_err() {
            let model = checkpoint.meta("model").unwrap_or("no model");
            return Err(Error::data(
                &what,
                format!(
                    "holds a `{model}`, not a language model: text comes from `kiln train --model gpt --checkpoint FILE`"
                ),
            ));
        }
        let config: LmConfig = serde_json::from_str(checkpoint.meta("config")?)
            .map_err(|e| Error::data(&what, format!("its settings: {e}")))?;
        let vocab: Vocab = serde_json::from_str(checkpoint.meta("vocab")?)
            .map_err(|e| Error::data(&what, format!("its vocabulary: {e}")))?;
        let mut store = Store::new(backend);
        let mut generator = Generator::compile(&mut store, &config, vocab.len(), cached)?;
        checkpoint.restore_declared(&mut store, &what)?;
        generator.reset(&mut store)?;
        Ok(Writer { store, generator, config, vocab })
    }
}
