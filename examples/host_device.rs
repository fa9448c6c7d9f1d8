//! A host application that already owns a wgpu device hands it to Kiln, which then computes on
//! it: here one matmul + softmax graph, checked against the CPU reference.
//!     cargo run --example host_device

use kiln::core::{DType, HostTensor};
use kiln::gpu::Gpu;
use kiln::graph::{Executor, Graph};
use kiln::kernels::GpuBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The host's own set-up, as any wgpu application does it.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;

    // Kiln adopts the device and queue; the host keeps its own handles to them.
    let gpu = Gpu::from_device(device.clone(), queue.clone())?;
    println!("computing on the host's device: {}", gpu.description());

    let mut g = Graph::new();
    let a = g.input("a", vec![2, 3], DType::F32);
    let b = g.input("b", vec![3, 4], DType::F32);
    let product = g.matmul(a, b)?;
    let probabilities = g.softmax(product, -1)?;
    let a_value = HostTensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    let b_value = HostTensor::f32(vec![3, 4], (0..12).map(|i| i as f32 / 10.0).collect())?;

    let mut on_gpu = Executor::compile(GpuBackend::new(gpu), &g, &[probabilities])?;
    let mut on_cpu = Executor::compile(kiln::cpu::Cpu, &g, &[probabilities])?;
    on_gpu.set(a, &a_value)?;
    on_gpu.set(b, &b_value)?;
    on_cpu.set(a, &a_value)?;
    on_cpu.set(b, &b_value)?;
    let gpu_result = on_gpu.run(&[probabilities])?.remove(0);
    let cpu_result = on_cpu.run(&[probabilities])?.remove(0);
    println!("gpu: {:?}", gpu_result.as_f32()?);
    println!("cpu: {:?}", cpu_result.as_f32()?);
    Ok(())
}
