//! Shared by the integration tests.
#![allow(dead_code)]

use std::sync::OnceLock;

use kiln::core::{Backend, DType, HostTensor, Result};
use kiln::gpu::Gpu;
use kiln::graph::{Executor, Graph, Value, grad_with};
use kiln::kernels::GpuBackend;

/// The GPU backend, or a failure that says how to get an adapter: GPU tests never pass
/// silently without one.
fn open_gpu() -> GpuBackend {
    match Gpu::new_blocking() {
        Ok(gpu) => GpuBackend::new(gpu),
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    }
}

/// `‖got - want‖ / max(‖want‖, 1e-6)`, the golden format's measure.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    error_against(got, want, 1e-6)
}

/// The distance between `got` and `want` over the larger of `want`'s norm and `floor`.
fn error_against(got: &[f32], want: &[f32], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let diff: f64 = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
    diff / norm.max(floor)
}

/// A deterministic pseudo-random vector in [-1, 1).
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// One GPU backend shared by the tests of a binary.
pub fn gpu() -> GpuBackend {
    static GPU: OnceLock<GpuBackend> = OnceLock::new();
    GPU.get_or_init(open_gpu).clone()
}

/// Output and input gradients of `build` on `backend`.
pub fn evaluate<B: Backend>(
    backend: B,
    inputs: &[HostTensor],
    build: &dyn Fn(&mut Graph, &[Value]) -> Result<Value>,
) -> Vec<HostTensor> {
    let mut g = Graph::new();
    let values: Vec<Value> =
        inputs.iter().enumerate().map(|(i, t)| g.input(&format!("x{i}"), t.shape.clone(), t.dtype())).collect();
    let out = build(&mut g, &values).expect("builds");
    let cotangent = g.input("dy", g.shape(out).clone(), DType::F32);
    let wrt: Vec<Value> = values.iter().zip(inputs).filter(|(_, t)| t.dtype() == DType::F32).map(|(v, _)| *v).collect();
    let grads = grad_with(&mut g, &[(out, cotangent)], &wrt).expect("grad");
    let reads = [[out].as_slice(), &grads].concat();
    let mut exec = Executor::compile(backend, &g, &reads).expect("compile");
    for (v, t) in values.iter().zip(inputs) {
        exec.set(*v, t).expect("input");
    }
    let dy = random_vec(g.shape(out).numel(), 7);
    exec.set(cotangent, &HostTensor::f32(g.shape(out).clone(), dy).expect("dy")).expect("dy");
    exec.run(&reads).expect("run")
}

pub fn assert_parity(name: &str, inputs: &[HostTensor], build: impl Fn(&mut Graph, &[Value]) -> Result<Value>) {
    let on_gpu = evaluate(gpu(), inputs, &build);
    let on_cpu = evaluate(kiln::cpu::Cpu, inputs, &build);
    for (i, (g, c)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        assert_eq!(g.shape, c.shape, "{name}: tensor {i} shapes differ");
        let (g, c) = (g.as_f32().expect("f32"), c.as_f32().expect("f32"));
        // Each tensor is measured against an RMS of at least 1e-2: one that cancellation
        // leaves near zero (batch norm's scale gradient, a sum of dy·x̂ over ±1-sized terms)
        // carries the rounding of its terms, not of its own size.
        let error = error_against(g, c, 1e-2 * (c.len() as f64).sqrt());
        let worst = g.iter().zip(c).map(|(a, b)| (a - b).abs()).enumerate().max_by(|x, y| x.1.total_cmp(&y.1));
        assert!(
            error < 1e-4,
            "{name}: tensor {i} (0 = output) off by {error:.2e}; largest difference (index, size) {worst:?}"
        );
    }
}

/// GPU against CPU, every tensor within 1e-4 of the reference's own norm: for tensors of small
/// elements (a long softmax row's) that no cancellation leaves near zero.
pub fn assert_close(name: &str, inputs: &[HostTensor], build: impl Fn(&mut Graph, &[Value]) -> Result<Value>) {
    let on_gpu = evaluate(gpu(), inputs, &build);
    let on_cpu = evaluate(kiln::cpu::Cpu, inputs, &build);
    for (i, (g, c)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        let error = relative_error(g.as_f32().expect("f32"), c.as_f32().expect("f32"));
        assert!(error < 1e-4, "{name}: tensor {i} (0 = output) off by {error:.2e}");
    }
}

pub fn t(shape: &[usize], seed: u64) -> HostTensor {
    HostTensor::f32(shape.to_vec(), random_vec(shape.iter().product(), seed)).expect("tensor")
}

/// The side of `synthetic_data`'s images.
pub const SIDE: usize = 12;

/// Writes `count` synthetic images and labels as `<prefix>-images-idx3-ubyte` and
/// `<prefix>-labels-idx1-ubyte` into `dir`: class k is stripes, horizontal for k < 5 and
/// vertical otherwise, every (2 + k mod 5)th line, at a random phase, over noise.
pub fn write_idx(dir: &std::path::Path, prefix: &str, count: usize, seed: u64) {
    let per = SIDE * SIDE + 1;
    let noise = random_vec(count * per, seed);
    let labels: Vec<u8> = (0..count).map(|i| ((i * 7 + seed as usize) % 10) as u8).collect();
    let mut images = Vec::with_capacity(count * SIDE * SIDE);
    for (i, &label) in labels.iter().enumerate() {
        let (spacing, phase) = (2 + label as usize % 5, (noise[i * per].abs() * 7.0) as usize);
        for p in 0..SIDE * SIDE {
            let line = if label < 5 { p / SIDE } else { p % SIDE };
            let v = if (line + phase) % spacing == 0 { 220.0 } else { 60.0 + 40.0 * noise[i * per + 1 + p] };
            images.push(v as u8);
        }
    }
    let header = |magic: u32, dims: &[usize]| -> Vec<u8> {
        [magic].into_iter().chain(dims.iter().map(|&d| d as u32)).flat_map(|v| v.to_be_bytes()).collect()
    };
    let images = [header(0x0803, &[count, SIDE, SIDE]), images].concat();
    let labels = [header(0x0801, &[count]), labels].concat();
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).expect("images");
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).expect("labels");
}

/// A folder of synthetic data (see `write_idx`): 600 training images, 100 test images.
pub fn synthetic_data() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kiln-synthetic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        write_idx(&dir, "train", 600, 1);
        write_idx(&dir, "t10k", 100, 2);
        dir
    })
    .clone()
}

/// The `kiln` binary run with `args`: whether it succeeded, its stdout and its stderr.
pub fn kiln(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}
