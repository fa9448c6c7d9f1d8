//! The device layer on a real adapter (lavapipe in CI): pooled buffers are reused, readback
//! works blocking and asynchronously, grids fold, and wgpu's validation errors come back as
//! `Result` errors naming what was being done.

use kiln_gpu::{Dispatch, Gpu, PipelineKey, fold_workgroups, size_class};

const DOUBLE: &str = "
struct Params { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn double(@builtin(global_invocation_id) gid: vec3u) {
    if (gid.x < p.n) { x[gid.x] = 2.0 * x[gid.x]; }
}";

fn gpu() -> Gpu {
    Gpu::new_blocking().unwrap_or_else(|e| panic!("device tests need an adapter: {e}"))
}

fn double_dispatch(gpu: &Gpu, buffer: &kiln_gpu::GpuBuffer, n: u32) -> Dispatch {
    let key = PipelineKey { shader: "double", entry: "double", constants: vec![] };
    let pipeline = gpu.pipeline(&key, DOUBLE).expect("pipeline");
    let params = gpu.uniform(bytemuck::cast_slice(&[n, 0, 0, 0]), "params");
    let bind_group = gpu
        .bind_group(&pipeline, &[(0, params.as_entire_binding()), (1, buffer.raw().as_entire_binding())], "double")
        .expect("bind group");
    Dispatch {
        label: "double".into(),
        pipeline,
        bind_group,
        workgroups: [n.div_ceil(64), 1, 1],
        params: Some(params),
        uploads: vec![],
    }
}

#[test]
fn run_blocking_and_async_read_the_same_bytes() {
    let gpu = gpu();
    let buffer = gpu.alloc(400, "x").expect("alloc");
    let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
    gpu.write(&buffer, bytemuck::cast_slice(&values)).expect("write");
    let dispatch = double_dispatch(&gpu, &buffer, 100);
    let blocking = gpu.run(&[&dispatch], &[(&buffer, 400)]).expect("run");
    let later = pollster::block_on(gpu.run_async(&[&dispatch], &[(&buffer, 400)]).expect("submit")).expect("read");
    let as_f32 = |b: &[u8]| bytemuck::pod_collect_to_vec::<u8, f32>(b);
    assert_eq!(as_f32(&blocking[0]), values.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    assert_eq!(as_f32(&later[0]), values.iter().map(|v| 4.0 * v).collect::<Vec<_>>());
}

#[test]
fn pipelines_are_cached_and_buffers_pooled() {
    let gpu = gpu();
    let key = PipelineKey { shader: "double", entry: "double", constants: vec![] };
    let first = gpu.pipeline(&key, DOUBLE).expect("pipeline");
    assert!(std::sync::Arc::ptr_eq(&first, &gpu.pipeline(&key, DOUBLE).expect("cached")));
    let buffer = gpu.alloc(1000, "a").expect("alloc");
    let raw = buffer.raw().clone();
    drop(buffer);
    let again = gpu.alloc(size_class(1000) - 3, "b").expect("alloc");
    assert_eq!(again.raw(), &raw, "a freed buffer of the same class is reused");
}

#[test]
fn validation_errors_are_results_naming_the_work() {
    let gpu = gpu();
    let key = PipelineKey { shader: "double", entry: "double", constants: vec![] };
    let pipeline = gpu.pipeline(&key, DOUBLE).expect("pipeline");
    let params = gpu.uniform(&[0; 16], "params");
    let error = gpu
        .bind_group(&pipeline, &[(0, params.as_entire_binding())], "missing binding")
        .expect_err("binding 1 is missing");
    assert!(error.to_string().contains("missing binding"), "{error}");
    let broken = gpu.pipeline(&PipelineKey { shader: "broken", entry: "main", constants: vec![] }, "fn main( {");
    let error = broken.map(|_| ()).expect_err("does not parse");
    assert!(error.to_string().contains("shaders/broken.wgsl"), "{error}");
}

#[test]
fn size_classes_and_folded_grids() {
    assert_eq!(size_class(1), 256);
    for bytes in [257, 1000, 4096, 5000, 1 << 20, (1 << 20) + 1] {
        let class = size_class(bytes);
        assert!(class >= bytes && class * 4 <= bytes * 5 + 1024, "{bytes} -> {class}");
    }
    assert_eq!(fold_workgroups(10, 65535), [10, 1, 1]);
    let [x, y, _] = fold_workgroups(200_000, 65535);
    assert!(x <= 65535 && x * y >= 200_000 && x * (y - 1) < 200_000);
}
