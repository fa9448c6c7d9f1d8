//! The GPU context: device, queue, limits, buffer pool, pipeline cache and error capture.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use kiln_core::{Error, Result};
use web_time::Instant;
use wgpu::util::DeviceExt;

use crate::dispatch::passes;
use crate::errors::{ErrorSink, scoped};
use crate::pool::{GpuBuffer, Pool, size_class};
use crate::texels::TexelTextures;
use crate::{AdapterChoice, Dispatch, Readback, describe};

/// A pipeline is cached by shader, entry point and specialisation constants (as f64 bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, u64)>,
}

/// A handle to one device; cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    errors: Arc<ErrorSink>,
    pool: Arc<Mutex<Pool>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    texels: Mutex<TexelTextures>,
    timeout: Duration,
    /// Submissions given up at the timeout that may still be running inside the driver.
    abandoned: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// An OpenGL submission given up at the timeout goes on computing inside the driver: the
/// device waits for it before it goes, so that the process never tears the driver down under
/// it (EGL then fails on that thread, and the process with it, after the timeout was reported).
impl Drop for Inner {
    fn drop(&mut self) {
        for submission in lock(&self.abandoned).drain(..) {
            let _ = submission.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Gpu {
    /// The optional features Kiln takes where an adapter has them: timestamps for profiles and
    /// the tuner, and those `kiln info` reports for kernels that would use them.
    pub const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
        .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
        .union(wgpu::Features::SHADER_F16)
        .union(wgpu::Features::SUBGROUP);

    /// Opens the adapter the environment asks for (see `AdapterChoice`), with its own limits.
    pub async fn new() -> Result<Self> {
        Self::open(&AdapterChoice::from_env()).await
    }

    /// Opens the adapter `choice` picks, with its own limits.
    pub async fn open(choice: &AdapterChoice) -> Result<Self> {
        let (_instance, adapter) = choice.pick().await?;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_limits: adapter.limits(),
            required_features: adapter.features() & Self::WANTED_FEATURES,
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&descriptor)
            .await
            .map_err(|e| Error::DeviceRequest { adapter: describe(&adapter.get_info()), message: e.to_string() })?;
        Self::from_device(device, queue)
    }

    /// Blocking form of [`Gpu::new`].
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// Adopts a device and queue a host application already has.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Self> {
        let timeout = timeout_from_env()?;
        let errors = ErrorSink::attach(&device);
        let inner = Inner {
            info: device.adapter_info(),
            limits: device.limits(),
            device,
            queue,
            errors,
            pool: Arc::default(),
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            texels: Mutex::default(),
            timeout,
            abandoned: Mutex::default(),
        };
        Ok(Gpu { inner: Arc::new(inner) })
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The most iterations a shader loop may run on this adapter, if it has such a limit:
    /// llvmpipe and lavapipe (Mesa's CPU drivers) end every loop after 65535 iterations,
    /// counted over the loops an invocation runs, and carry on with a wrong result.
    pub fn loop_limit(&self) -> Option<usize> {
        (self.inner.info.device_type == wgpu::DeviceType::Cpu).then_some(65_535)
    }

    pub(crate) fn texel_textures(&self) -> std::sync::MutexGuard<'_, TexelTextures> {
        lock(&self.inner.texels)
    }

    pub fn description(&self) -> String {
        describe(&self.inner.info)
    }

    /// A storage buffer of at least `bytes`, from the pool when one of its class is free.
    pub fn alloc(&self, bytes: u64, label: &str) -> Result<GpuBuffer> {
        let class = size_class(bytes);
        self.check_size(label, class)?;
        let mut pool = lock(&self.inner.pool);
        if let Some(buffer) = pool.take(class) {
            return Ok(GpuBuffer::new(buffer, class, &self.inner.pool, &mut pool));
        }
        drop(pool);
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let descriptor = wgpu::BufferDescriptor { label: Some(label), size: class, usage, mapped_at_creation: false };
        let buffer =
            scoped(self.device(), &format!("allocating `{label}`"), || self.device().create_buffer(&descriptor))?;
        Ok(GpuBuffer::new(buffer, class, &self.inner.pool, &mut lock(&self.inner.pool)))
    }

    /// Device memory in Kiln's storage buffers: `(on loan, idle in the pool)` bytes. What is
    /// on loan is what the parameter stores and programs alive now hold.
    pub fn buffer_bytes(&self) -> (u64, u64) {
        let pool = lock(&self.inner.pool);
        (pool.on_loan, pool.idle)
    }

    /// Device memory in the texel textures shared by every texel-fed kernel of this device.
    pub fn texel_bytes(&self) -> u64 {
        self.texel_textures().bytes()
    }

    /// Checks a buffer against the adapter's limits before wgpu sees it.
    fn check_size(&self, tensor: &str, bytes: u64) -> Result<()> {
        let limits = &self.inner.limits;
        let checks = [
            (limits.max_buffer_size, "max_buffer_size"),
            (limits.max_storage_buffer_binding_size, "max_storage_buffer_binding_size"),
        ];
        for (limit, limit_name) in checks {
            if bytes > limit {
                return Err(Error::Limit { tensor: tensor.into(), bytes, limit, limit_name });
            }
        }
        Ok(())
    }

    pub fn write(&self, buffer: &GpuBuffer, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 > buffer.size() {
            return Err(Error::data(
                "write",
                format!("{} bytes do not fit a {}-byte buffer", bytes.len(), buffer.size()),
            ));
        }
        self.queue().write_buffer(buffer.raw(), 0, bytes);
        self.check("writing a buffer")
    }

    /// A uniform buffer holding `bytes` (a kernel's `Params`).
    pub fn uniform(&self, bytes: &[u8], label: &str) -> wgpu::Buffer {
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        self.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage,
        })
    }

    /// The compute pipeline for `key`, compiled once from `source`.
    pub fn pipeline(&self, key: &PipelineKey, source: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = lock(&self.inner.pipelines).get(key) {
            return Ok(Arc::clone(p));
        }
        let context = format!("shaders/{}.wgsl, entry point `{}`", key.shader, key.entry);
        let pipeline = scoped(self.device(), &context, || {
            let mut modules = lock(&self.inner.modules);
            let module = modules.entry(key.shader).or_insert_with(|| {
                let source = wgpu::ShaderSource::Wgsl(source.into());
                self.device().create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(key.shader), source })
            });
            let constants: Vec<(&str, f64)> =
                key.constants.iter().map(|&(k, bits)| (k, f64::from_bits(bits))).collect();
            self.device().create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key.entry),
                layout: None,
                module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
                cache: None,
            })
        })?;
        crate::dump::dump_shader(key, source)?;
        let pipeline = Arc::new(pipeline);
        lock(&self.inner.pipelines).insert(key.clone(), Arc::clone(&pipeline));
        Ok(pipeline)
    }

    /// A bind group for group 0 of `pipeline`, binding each `(slot, resource)`.
    pub fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, wgpu::BindingResource<'_>)],
        label: &str,
    ) -> Result<wgpu::BindGroup> {
        let entries: Vec<_> = entries
            .iter()
            .map(|(binding, resource)| wgpu::BindGroupEntry { binding: *binding, resource: resource.clone() })
            .collect();
        scoped(self.device(), &format!("binding `{label}`"), || {
            let layout = pipeline.get_bind_group_layout(0);
            self.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &layout,
                entries: &entries,
            })
        })
    }

    /// Any error wgpu reported outside a scope, or device loss.
    pub fn check(&self, context: &str) -> Result<()> {
        self.inner.errors.take(context).map_or(Ok(()), Err)
    }

    /// Records `dispatches` in one compute pass, copies `reads` (buffer, bytes) to a staging
    /// buffer, submits once and waits, at most the timeout, for the bytes.
    pub fn run(&self, dispatches: &[&Dispatch], reads: &[(&GpuBuffer, u64)]) -> Result<Vec<Vec<u8>>> {
        let (readback, index) = self.submit(dispatches, reads)?;
        // Waits even when nothing is read, so a run has finished on the device when it returns.
        self.wait_for(index)?;
        let Some(readback) = readback else { return Ok(vec![]) };
        let sizes: Vec<u64> = reads.iter().map(|&(_, n)| n).collect();
        Ok(split(&pollster::block_on(readback)?, &sizes))
    }

    /// Asynchronous form of [`Gpu::run`]: submits now and returns a future of the bytes of each
    /// read (with no reads, it resolves at once: there is nothing to wait for). The future
    /// polls the device itself, so it completes under any executor, and it
    /// fails at the timeout rather than waiting forever.
    pub fn run_async(
        &self,
        dispatches: &[&Dispatch],
        reads: &[(&GpuBuffer, u64)],
    ) -> Result<impl Future<Output = Result<Vec<Vec<u8>>>> + use<>> {
        let pending = self.submit(dispatches, reads)?;
        let sizes: Vec<u64> = reads.iter().map(|&(_, n)| n).collect();
        Ok(async move {
            let (Some(readback), _) = pending else { return Ok(vec![]) };
            Ok(split(&readback.await?, &sizes))
        })
    }

    fn submit(
        &self,
        dispatches: &[&Dispatch],
        reads: &[(&GpuBuffer, u64)],
    ) -> Result<(Option<Readback>, wgpu::SubmissionIndex)> {
        self.check("before a run")?;
        scoped(self.device(), "recording a run", || self.record(dispatches, reads))?
    }

    fn record(
        &self,
        dispatches: &[&Dispatch],
        reads: &[(&GpuBuffer, u64)],
    ) -> Result<(Option<Readback>, wgpu::SubmissionIndex)> {
        let mut encoder =
            self.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln step") });
        for run in passes(dispatches) {
            run[0].record_uploads(&mut encoder);
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("kiln step"), timestamp_writes: None });
            for d in run {
                d.record(&mut pass);
            }
        }
        let total: u64 = reads.iter().map(|&(_, n)| n).sum();
        let staging = (total > 0).then(|| {
            let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
            let staging = self.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln readback"),
                size: total,
                usage,
                mapped_at_creation: false,
            });
            let mut offset = 0;
            for &(buffer, n) in reads {
                encoder.copy_buffer_to_buffer(buffer.raw(), 0, &staging, offset, n);
                offset += n;
            }
            staging
        });
        let index = self.submit_commands(encoder.finish())?;
        Ok((staging.map(|staging| self.map_staging(staging)), index))
    }

    /// Submits `commands`. Where the driver computes inside the submission itself (OpenGL on
    /// llvmpipe runs a dispatch before returning), it runs on a thread of its own so that the
    /// timeout still holds; past it, the device is given up and every later use fails.
    pub(crate) fn submit_commands(&self, commands: wgpu::CommandBuffer) -> Result<wgpu::SubmissionIndex> {
        if self.inner.info.backend != wgpu::Backend::Gl {
            return Ok(self.queue().submit([commands]));
        }
        self.submit_on_thread(commands)
    }

    /// In the browser the page's WebGL (no compute) is the only GL, and there are no threads.
    #[cfg(target_arch = "wasm32")]
    fn submit_on_thread(&self, commands: wgpu::CommandBuffer) -> Result<wgpu::SubmissionIndex> {
        Ok(self.queue().submit([commands]))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn submit_on_thread(&self, commands: wgpu::CommandBuffer) -> Result<wgpu::SubmissionIndex> {
        let queue = self.queue().clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        let submission = std::thread::spawn(move || {
            let _ = sender.send(queue.submit([commands]));
        });
        match receiver.recv_timeout(self.inner.timeout) {
            Ok(index) => {
                let _ = submission.join();
                Ok(index)
            }
            Err(_) => {
                lock(&self.inner.abandoned).push(submission);
                let seconds = self.inner.timeout.as_secs_f64();
                self.inner
                    .errors
                    .give_up(format!("a submission did not finish within {seconds} s (KILN_TIMEOUT_SECS)"));
                Err(Error::Timeout { what: "a submitted step".into(), seconds })
            }
        }
    }

    pub(crate) fn map_staging(&self, staging: wgpu::Buffer) -> Readback {
        let (sender, receiver) = oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        let seconds = self.inner.timeout.as_secs_f64();
        Readback {
            staging,
            device: self.device().clone(),
            receiver,
            deadline: Instant::now() + self.inner.timeout,
            seconds,
        }
    }

    /// Blocks until submission `index` completes, or fails at the timeout.
    pub(crate) fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        let poll = wgpu::PollType::Wait { submission_index: Some(index), timeout: Some(self.inner.timeout) };
        match self.device().poll(poll) {
            Ok(_) => self.check("running a step"),
            Err(wgpu::PollError::Timeout) => {
                Err(Error::Timeout { what: "a submitted step".into(), seconds: self.inner.timeout.as_secs_f64() })
            }
            Err(e) => Err(Error::DeviceLost(e.to_string())),
        }
    }
}

/// The bound on every wait for the device that `KILN_TIMEOUT_SECS` sets: seconds, more than a
/// millisecond and at most a week; 300 when unset or empty.
pub fn timeout_from_env() -> Result<Duration> {
    const VARIABLE: &str = "KILN_TIMEOUT_SECS";
    const RANGE: std::ops::RangeInclusive<f64> = 0.001..=604_800.0;
    let text = match std::env::var(VARIABLE) {
        Ok(text) if !text.trim().is_empty() => text,
        Ok(_) | Err(std::env::VarError::NotPresent) => return Ok(Duration::from_secs(300)),
        Err(std::env::VarError::NotUnicode(raw)) => format!("{raw:?}"),
    };
    match text.trim().parse::<f64>() {
        Ok(seconds) if RANGE.contains(&seconds) => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(Error::data(
            VARIABLE,
            format!(
                "`{text}` is not a number of seconds from {} to {} (a week): set it to one, e.g. {VARIABLE}=600, or unset it for 300",
                RANGE.start(),
                RANGE.end()
            ),
        )),
    }
}

/// Cuts the staging bytes into one vector per read of `sizes` bytes.
fn split(bytes: &[u8], sizes: &[u64]) -> Vec<Vec<u8>> {
    let mut offset = 0;
    sizes
        .iter()
        .map(|&n| {
            offset += n as usize;
            bytes[offset - n as usize..offset].to_vec()
        })
        .collect()
}
