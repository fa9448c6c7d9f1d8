//! Kiln in the browser: a Fashion-MNIST classifier trained on the page's WebGPU. The page
//! fetches the dataset's files as bytes and hands them over; `Trainer` does the rest with
//! Kiln's own model zoo, optimizers and executor, each step one submission whose readback is
//! awaited (nothing may block in a page). `Trainer` is generic over the backend, so the same
//! code runs natively too, which is how its numbers are checked against a native run; `bindings`
//! is the thin layer JavaScript sees.

use std::collections::HashMap;

use kiln_core::{Backend, Error, HostTensor, Result};
use kiln_graph::{Program, Store, Value};
use kiln_nn::{
    Checkpoint, Dataset, EVAL_BATCH, Model, Task, TrainConfig, argmax, build_in, classifier_metadata, count_correct,
    cross_entropy, minimize_in, to_tensors,
};

pub mod bindings;

/// A classifier being trained over one parameter store: the training step, an evaluation
/// program and a one-image prediction program, all bound to the same parameters.
pub struct Trainer<B: Backend> {
    config: TrainConfig,
    store: Store<B>,
    model: Model,
    step: Program<B>,
    eval_model: Model,
    eval: Program<B>,
    predict_model: Model,
    predict: Program<B>,
    probabilities: Value,
    train: Dataset,
    test: Dataset,
    /// The current epoch's order of the training images, and how far through it the run is.
    order: Vec<usize>,
    cursor: usize,
    epochs: u64,
    steps: usize,
}

/// One training step's figures: the batch's mean loss and the share it classified right.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepFigures {
    pub loss: f32,
    pub accuracy: f32,
}

/// A model's figures on a set of images: mean cross-entropy and accuracy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

impl<B: Backend> Trainer<B> {
    /// `config`'s model and optimizer over `train` (in a fresh seeded order each epoch), to be
    /// evaluated on `test`. A batch larger than the training images is refused, by name.
    pub fn new(backend: B, config: TrainConfig, train: Dataset, test: Dataset) -> Result<Self> {
        config.check()?;
        if config.batch > train.len() {
            return Err(Error::data("batch", format!("{} exceeds the {} training images", config.batch, train.len())));
        }
        if test.is_empty() || train.image_size() != test.image_size() {
            return Err(Error::data("test images", "must be at least one, of the training images' size"));
        }
        let pixels = train.image_size();
        let steps_per_epoch = train.len() / config.batch;
        let planned = config.steps.unwrap_or(steps_per_epoch * config.epochs.unwrap_or(1));
        let mut store = Store::new(backend);
        let precision = config.precision;
        let mut model = build_in(&config.model, config.batch, pixels, true, config.seed, precision)?;
        let group =
            kiln_nn::ParamGroup { params: model.params.clone(), optimizer: config.optimizer(steps_per_epoch, planned) };
        minimize_in(&mut model.graph, model.loss, &[group], config.clip_norm, precision)?;
        let step = Program::compile(&mut store, &model.graph, &[model.loss, model.logits])?;
        let eval_model = build_in(&config.model, EVAL_BATCH, pixels, false, config.seed, precision)?;
        let eval = Program::compile(&mut store, &eval_model.graph, &[eval_model.logits])?;
        let mut predict_model = build_in(&config.model, 1, pixels, false, config.seed, precision)?;
        let probabilities = predict_model.graph.softmax(predict_model.logits, -1)?;
        let predict = Program::compile(&mut store, &predict_model.graph, &[probabilities])?;
        let order = kiln_nn::shuffled_indices(train.len(), config.seed);
        Ok(Trainer {
            config,
            store,
            model,
            step,
            eval_model,
            eval,
            predict_model,
            predict,
            probabilities,
            train,
            test,
            order,
            cursor: 0,
            epochs: 0,
            steps: 0,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Parameters the model trains.
    pub fn parameters(&self) -> usize {
        self.model.params.iter().map(|&p| self.model.graph.shape(p).numel()).sum()
    }

    /// The pixels of test image `index`, if there is one.
    pub fn test_image(&self, index: usize) -> Option<&[f32]> {
        let size = self.test.image_size();
        self.test.images.get(index * size..(index + 1) * size)
    }

    /// Steps run so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One step on the next batch of the epoch's order (a new order when it runs out).
    pub async fn step(&mut self) -> Result<StepFigures> {
        let batch = self.config.batch;
        if self.cursor + batch > self.order.len() {
            self.epochs += 1;
            self.order = kiln_nn::shuffled_indices(self.train.len(), self.config.seed.wrapping_add(self.epochs));
            self.cursor = 0;
        }
        let indices = &self.order[self.cursor..self.cursor + batch];
        let (images, labels) = to_tensors(&self.train, indices)?;
        self.step.set(self.model.images, &images)?;
        self.step.set(self.model.labels, &labels)?;
        let out = self.step.run_async(&mut self.store, &[self.model.loss, self.model.logits]).await?;
        self.cursor += batch;
        self.steps += 1;
        let correct = count_correct(Task::Classes, &out[1], labels.as_i32()?)?.unwrap_or(0);
        Ok(StepFigures { loss: out[0].as_f32()?[0], accuracy: correct as f32 / batch as f32 })
    }

    /// Mean cross-entropy and accuracy on every test image.
    pub async fn evaluate(&mut self) -> Result<Evaluation> {
        let (mut loss, mut right) = (0.0f64, 0usize);
        let all: Vec<usize> = (0..self.test.len()).collect();
        for chunk in all.chunks(EVAL_BATCH) {
            let padded: Vec<usize> = (0..EVAL_BATCH).map(|i| chunk[i.min(chunk.len() - 1)]).collect();
            let (images, labels) = to_tensors(&self.test, &padded)?;
            self.eval.set(self.eval_model.images, &images)?;
            self.eval.set(self.eval_model.labels, &labels)?;
            let logits = self.eval.run_async(&mut self.store, &[self.eval_model.logits]).await?.remove(0);
            let classes = logits.shape.numel() / EVAL_BATCH;
            let rows = logits.as_f32()?.chunks(classes).take(chunk.len());
            for (row, &label) in rows.zip(&labels.as_i32()?[..chunk.len()]) {
                loss += cross_entropy(row, label as usize);
                right += usize::from(argmax(row) == label as usize);
            }
        }
        let n = self.test.len() as f64;
        Ok(Evaluation { loss: loss / n, accuracy: right as f64 / n })
    }

    /// The probability of each class for one image of the dataset's size, pixels in `[0, 1]`.
    pub async fn predict(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        let size = self.train.image_size();
        if pixels.len() != size {
            return Err(Error::data("image", format!("has {} pixels, expected {size}", pixels.len())));
        }
        self.predict.set(self.predict_model.images, &HostTensor::f32(vec![1, size], pixels.to_vec())?)?;
        let out = self.predict.run_async(&mut self.store, &[self.probabilities]).await?.remove(0);
        Ok(out.as_f32()?.to_vec())
    }

    /// Every tensor of the store, as a classifier checkpoint that `kiln predict` reads.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        let metadata: HashMap<String, String> = classifier_metadata(&self.config, &[], self.train.image_size())?;
        Checkpoint::capture_async(&self.store, metadata).await
    }

    /// Puts a checkpoint of the same model (its parameters, optimizer state and counters)
    /// into the store.
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        checkpoint.restore(&mut self.store)
    }
}

/// The first `count` images of `set` (all of them when it holds fewer).
pub fn first(set: &Dataset, count: usize) -> Dataset {
    let n = count.min(set.len());
    Dataset {
        images: set.images[..n * set.image_size()].to_vec(),
        labels: set.labels[..n].to_vec(),
        rows: set.rows,
        cols: set.cols,
    }
}
