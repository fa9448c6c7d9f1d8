//! Kiln's library for training models: layers that name their parameters as PyTorch does,
//! initialisers, optimizers and parameter groups (the step split at the gradient included), a
//! model zoo for Fashion-MNIST, a trainer that reports through a `Progress` (and prints
//! nothing), generative adversarial networks and a score of their samples, atomic checkpoints
//! in safetensors, and datasets (IDX, raw or gzip). It knows no
//! command line, terminal or image format: a host application uses it with its own device.

pub mod checkpoint;
pub mod dataset;
pub mod dist;
pub mod files;
pub mod gan;
pub mod idx;
pub mod init;
pub mod language;
pub mod layers;
pub mod optim;
pub mod quality;
pub mod text;
pub mod trainer;
pub mod zoo;

pub use checkpoint::{Checkpoint, SavedClassifier};
pub use dataset::{BinaryTask, CLASS_NAMES, DEFAULT_DIR, Dataset, FashionMnist, shuffled_indices};
pub use dist::{Collectives, Single};
pub use idx::{IdxArray, IdxError, decode_idx, read_idx};
pub use init::Init;
pub use layers::{Attend, BinaryLoss, Cell, KvCache, Layers, Model, Task};
pub use optim::{
    GradientSink, LOSS_SCALE, LOSS_SCALE_GOOD_STEPS, Optimizer, ParamGroup, apply_gradients, gradient_name, minimize,
    minimize_in, minimize_scaled, store_gradients,
};
pub use trainer::{
    EVAL_BATCH, EpochRow, Metrics, OptimizerKind, Progress, Run, ScheduleKind, StepReport, Stop, TrainConfig, Trained,
    argmax, classifier_metadata, count_correct, cross_entropy, first_non_finite, to_tensors, train, train_parallel,
};
pub use zoo::{CLASSES, HiddenActivation, MODELS, ModelSpec, build, build_in, cnn, mlp};
