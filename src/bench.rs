//! `kiln bench`: the reference workloads W1–W5 of `../shared/bench/WORKLOADS.md`, timed as
//! that file prescribes (inputs uploaded first; every timed run ends when the device has
//! finished; warm-up runs, then the median, min and max of the timed runs).

use std::time::Instant;

use kiln_core::{Backend, Conv2d, DType, HostTensor, Result};
use kiln_graph::{Executor, Graph, Value, grad_with};
use serde::Serialize;

/// One figure of the JSON schema.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub workload: &'static str,
    pub name: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub unit: &'static str,
}

/// Median, min and max of `samples`.
fn summary(workload: &'static str, name: &str, unit: &'static str, mut samples: Vec<f64>) -> Figure {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    Figure { workload, name: name.into(), median, min: samples[0], max: samples[samples.len() - 1], unit }
}

/// Seconds of each of `runs` calls of `step`, after `warmups` untimed ones.
fn time(warmups: usize, runs: usize, mut step: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmups {
        step()?;
    }
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            step()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect()
}

fn random(shape: &[usize], seed: u64) -> Result<HostTensor> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    HostTensor::f32(shape.to_vec(), data)
}

/// Compiles `g` with `outputs` kept, feeds every input random values, and times full runs.
fn time_graph<B: Backend>(backend: B, g: &Graph, outputs: &[Value], warmups: usize, runs: usize) -> Result<Vec<f64>> {
    let mut exec = Executor::compile(backend, g, outputs)?;
    for (i, node) in g.nodes().iter().enumerate() {
        if node.op == kiln_core::Op::Input {
            exec.set(Value(i), &random(node.shape.dims(), i as u64)?)?;
        }
    }
    time(warmups, runs, || exec.run(&[]).map(|_| ()))
}

/// W1: `C = A·B` for square n, in GFLOP/s.
pub fn matmul<B: Backend + Clone>(backend: &B) -> Result<Vec<Figure>> {
    [512usize, 1024, 2048]
        .iter()
        .map(|&n| {
            let mut g = Graph::new();
            let a = g.input("a", vec![n, n], DType::F32);
            let b = g.input("b", vec![n, n], DType::F32);
            let y = g.matmul(a, b)?;
            let seconds = time_graph(backend.clone(), &g, &[y], 3, 10)?;
            let rates = seconds.iter().map(|s| 2.0 * (n as f64).powi(3) / s / 1e9).collect();
            Ok(summary("W1", &format!("matmul_{n}"), "GFLOP/s", rates))
        })
        .collect()
}

/// A convolution (and, with `backward`, its input, weight and bias gradients) in ms.
#[allow(clippy::too_many_arguments)]
fn conv<B: Backend + Clone>(
    backend: &B,
    workload: &'static str,
    name: &str,
    x: [usize; 4],
    w: [usize; 4],
    c: Conv2d,
    bias: bool,
    backward: bool,
) -> Result<Figure> {
    let (g, outputs) = conv_graph(x, w, c, bias, backward)?;
    let ms = time_graph(backend.clone(), &g, &outputs, 3, 10)?.iter().map(|s| s * 1e3).collect();
    Ok(summary(workload, name, "ms", ms))
}

/// The graph of a convolution workload and the values it computes: the output, then, with
/// `backward`, the input, weight and bias gradients. The output is among them even then: no
/// gradient of a convolution needs it, and the executor would prune the forward pass.
pub fn conv_graph(x: [usize; 4], w: [usize; 4], c: Conv2d, bias: bool, backward: bool) -> Result<(Graph, Vec<Value>)> {
    let mut g = Graph::new();
    let xv = g.input("x", x.to_vec(), DType::F32);
    let wv = g.input("w", w.to_vec(), DType::F32);
    let bv = bias.then(|| g.input("b", vec![w[0]], DType::F32));
    let y = g.conv2d(xv, wv, bv, c)?;
    let mut outputs = vec![y];
    if backward {
        let dy = g.input("dy", g.shape(y).clone(), DType::F32);
        let wrt: Vec<Value> = [xv, wv].into_iter().chain(bv).collect();
        outputs.extend(grad_with(&mut g, &[(y, dy)], &wrt)?);
    }
    Ok((g, outputs))
}

/// W2: conv2d N=64, 32→64 channels, 14×14, 3×3, padding 1, with bias.
pub fn conv2d<B: Backend + Clone>(backend: &B) -> Result<Vec<Figure>> {
    let c = Conv2d { padding: [1, 1], ..Conv2d::default() };
    let (x, w) = ([64, 32, 14, 14], [64, 32, 3, 3]);
    Ok(vec![
        conv(backend, "W2", "conv_fwd", x, w, c, true, false)?,
        conv(backend, "W2", "conv_fwd_bwd", x, w, c, true, true)?,
    ])
}

/// W3: depthwise conv2d 3×3, N=32, 128 channels, 28×28, padding 1.
pub fn depthwise<B: Backend + Clone>(backend: &B) -> Result<Vec<Figure>> {
    let c = Conv2d { padding: [1, 1], groups: 128, ..Conv2d::default() };
    let (x, w) = ([32, 128, 28, 28], [128, 1, 3, 3]);
    Ok(vec![
        conv(backend, "W3", "depthwise_fwd", x, w, c, false, false)?,
        conv(backend, "W3", "depthwise_fwd_bwd", x, w, c, false, true)?,
    ])
}

/// The JSON document of WORKLOADS.md.
pub fn json(adapter: &wgpu::AdapterInfo, results: &[Figure]) -> serde_json::Value {
    serde_json::json!({
        "engine": "kiln",
        "version": env!("CARGO_PKG_VERSION"),
        "adapter": {"name": adapter.name, "backend": format!("{:?}", adapter.backend), "driver": adapter.driver_info},
        "results": results,
    })
}

/// W4: one training step of the reference CNN at batch 64 (Adam), the loss read back every
/// step, in samples/s.
pub fn train_step<B: Backend + Clone>(backend: &B) -> Result<Vec<Figure>> {
    const BATCH: usize = 64;
    let mut model = kiln_nn::cnn(BATCH, 28, 1)?;
    let optimizer = kiln_nn::Optimizer::Adam(kiln_core::Adam::new(1e-3));
    kiln_nn::minimize(
        &mut model.graph,
        model.loss,
        &[kiln_nn::ParamGroup { params: model.params.clone(), optimizer }],
        None,
    )?;
    let mut exec = Executor::compile(backend.clone(), &model.graph, &[model.loss])?;
    let (images, labels) = random_batch(BATCH)?;
    let seconds = time(5, 30, || {
        exec.set(model.images, &images)?;
        exec.set(model.labels, &labels)?;
        exec.run(&[model.loss]).map(|_| ())
    })?;
    let rates = seconds.iter().map(|s| BATCH as f64 / s).collect();
    Ok(vec![summary("W4", "train_step_cnn_b64", "samples/s", rates)])
}

/// W5: one epoch (937 full batches of 64, fixed-seed shuffle) of the reference CNN on
/// Fashion-MNIST, then the test accuracy; run once.
pub fn epoch<B: Backend + Clone + 'static>(backend: &B, data: &std::path::Path) -> Result<Vec<Figure>> {
    let config = kiln_nn::TrainConfig {
        model: kiln_nn::ModelSpec::named("cnn"),
        optimizer: kiln_nn::OptimizerKind::Adam,
        lr: 1e-3,
        batch: 64,
        epochs: Some(1),
        validation: 0,
        ..kiln_nn::TrainConfig::default()
    };
    let data = kiln_nn::FashionMnist::load(data).map_err(|e| kiln_core::Error::data("dataset", e.to_string()))?;
    struct Quiet;
    impl<B: Backend> kiln_nn::Progress<B> for Quiet {}
    let metrics = kiln_nn::train(backend.clone(), &config, &data, &mut Quiet)?.metrics;
    let once = |name: &str, unit, v: f64| summary("W5", name, unit, vec![v]);
    Ok(vec![
        once("epoch_cnn_test_accuracy", "fraction", metrics.test_accuracy.unwrap_or(f64::NAN)),
        once("epoch_cnn_seconds", "s", metrics.train_seconds),
    ])
}

/// A batch of random images in [0, 1) and labels cycling through the ten classes.
pub fn random_batch(batch: usize) -> Result<(HostTensor, HostTensor)> {
    let pixels = random(&[batch, 784], 1)?;
    let images = HostTensor::f32(vec![batch, 784], pixels.as_f32()?.iter().map(|v| (v + 1.0) / 2.0).collect())?;
    Ok((images, HostTensor::i32(vec![batch], (0..batch as i32).map(|i| i % 10).collect())?))
}
