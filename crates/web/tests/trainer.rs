//! The page's trainer run natively (lavapipe), through the same asynchronous path the page
//! awaits: its steps learn, its checkpoint restores to the same evaluation, its predictions
//! are probabilities, and bad settings are refused by name.

use kiln_gpu::Gpu;
use kiln_kernels::GpuBackend;
use kiln_nn::{Dataset, FashionMnist, ModelSpec, OptimizerKind, TrainConfig};
use kiln_web::{Trainer, first};
use pollster::block_on;

fn data() -> FashionMnist {
    FashionMnist::load(std::path::Path::new(kiln_nn::DEFAULT_DIR)).expect("Fashion-MNIST (make installs it)")
}

fn backend() -> GpuBackend {
    GpuBackend::new(Gpu::new_blocking().expect("an adapter (lavapipe where there is no GPU)"))
}

fn config(batch: usize) -> TrainConfig {
    TrainConfig {
        model: ModelSpec::named("mlp"),
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        batch,
        validation: 0,
        ..TrainConfig::default()
    }
}

#[test]
fn it_learns_and_its_checkpoint_evaluates_the_same_elsewhere() {
    let data = data();
    let (train, test) = (first(&data.train, 2_000), first(&data.test, 300));
    let mut trainer = Trainer::new(backend(), config(50), train.clone(), test.clone()).expect("trainer");
    let before = block_on(trainer.evaluate()).expect("evaluate");
    let mut losses = Vec::new();
    for _ in 0..60 {
        losses.push(block_on(trainer.step()).expect("step").loss);
    }
    let after = block_on(trainer.evaluate()).expect("evaluate");
    assert_eq!(trainer.steps(), 60);
    assert!(after.loss < 0.6 * before.loss, "test loss {} before, {} after 60 steps", before.loss, after.loss);
    assert!(after.accuracy > 0.6, "test accuracy {} after 60 steps", after.accuracy);
    assert!(losses[55..].iter().sum::<f32>() < losses[..5].iter().sum::<f32>() * 0.6, "{losses:?}");

    let checkpoint = block_on(trainer.checkpoint()).expect("checkpoint");
    let bytes = checkpoint.to_bytes("test").expect("bytes");
    let restored = kiln_nn::Checkpoint::from_bytes(std::path::Path::new("test"), &bytes).expect("read back");
    let mut other = Trainer::new(backend(), config(50), train, test).expect("trainer");
    other.restore(&restored).expect("restore");
    let again = block_on(other.evaluate()).expect("evaluate");
    assert_eq!((again.loss, again.accuracy), (after.loss, after.accuracy));

    let image = trainer.test_image(0).expect("a test image").to_vec();
    let probabilities = block_on(trainer.predict(&image)).expect("predict");
    assert_eq!(probabilities.len(), 10);
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{probabilities:?}");
    assert!(block_on(trainer.predict(&image[1..])).is_err(), "an image of the wrong size is refused");
    assert!(trainer.test_image(300).is_none());
}

#[test]
fn a_batch_larger_than_the_images_is_refused_by_name() {
    let tiny = Dataset { images: vec![0.5; 3 * 784], labels: vec![0, 1, 2], rows: 28, cols: 28 };
    let error = Trainer::new(backend(), config(4), tiny.clone(), tiny).err().expect("refused").to_string();
    assert!(error.contains("batch") && error.contains("4") && error.contains("3"), "{error}");
}
