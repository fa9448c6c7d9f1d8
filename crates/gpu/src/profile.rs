//! Per-dispatch timing: each dispatch in a compute pass of its own, with GPU timestamps at the
//! pass's boundaries (core WebGPU's `TIMESTAMP_QUERY`; a dispatch's texel uploads are stamped
//! with it where `TIMESTAMP_QUERY_INSIDE_ENCODERS` allows), resolved into a buffer and read back
//! once after the whole submission — the step is never stalled between dispatches. Without
//! timestamp support, the whole submission is timed on the host and shared out evenly,
//! which the report says.

use kiln_core::{Error, Result};
use web_time::Instant;

use crate::{Dispatch, Gpu};

/// Most timestamps one query set may hold (WebGPU's limit is 4096).
const QUERIES: u32 = 4096;

/// How a profile was timed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Timer {
    /// GPU timestamps, `period_ns` nanoseconds per tick.
    Timestamps { period_ns: f32 },
    /// Host wall-clock of the whole submission, shared evenly by its dispatches.
    WallClock,
}

/// Seconds each dispatch took, and how they were measured.
pub struct Profile {
    pub seconds: Vec<f64>,
    pub timer: Timer,
    /// Host wall-clock of the whole submission, waiting included.
    pub wall_seconds: f64,
}

impl Gpu {
    /// Runs `dispatches` once, one compute pass each, and times every one.
    pub fn profile(&self, dispatches: &[&Dispatch]) -> Result<Profile> {
        if !self.device().features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            let start = Instant::now();
            self.run(dispatches, &[])?;
            let wall = start.elapsed().as_secs_f64();
            let each = wall / dispatches.len().max(1) as f64;
            return Ok(Profile { seconds: vec![each; dispatches.len()], timer: Timer::WallClock, wall_seconds: wall });
        }
        let start = Instant::now();
        let mut seconds = Vec::with_capacity(dispatches.len());
        for chunk in dispatches.chunks(QUERIES as usize / 2) {
            seconds.extend(self.time_chunk(chunk)?);
        }
        let period_ns = self.queue().get_timestamp_period();
        Ok(Profile { seconds, timer: Timer::Timestamps { period_ns }, wall_seconds: start.elapsed().as_secs_f64() })
    }

    fn time_chunk(&self, dispatches: &[&Dispatch]) -> Result<Vec<f64>> {
        let count = 2 * dispatches.len() as u32;
        let queries = self.device().create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kiln profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = count as u64 * 8;
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        let resolved = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln timestamps"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        let mut encoder =
            self.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln profile") });
        let inside_encoders = self.device().features().contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
        for (i, d) in dispatches.iter().enumerate() {
            let start = 2 * i as u32;
            // A dispatch's uploads count towards its time where the adapter can stamp them.
            let stamp_uploads = inside_encoders && !d.uploads.is_empty();
            if stamp_uploads {
                encoder.write_timestamp(&queries, start);
            }
            d.record_uploads(&mut encoder);
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: (!stamp_uploads).then_some(start),
                end_of_pass_write_index: Some(start + 1),
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: Some(writes),
            });
            d.record(&mut pass);
        }
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        let ticks = self.read_raw(encoder, &resolved, bytes)?;
        let period = self.queue().get_timestamp_period() as f64 * 1e-9;
        let ticks: Vec<u64> =
            ticks.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        Ok(ticks.chunks_exact(2).map(|pair| pair[1].saturating_sub(pair[0]) as f64 * period).collect())
    }

    /// Submits `encoder` with a copy of `buffer`'s first `bytes` to a staging buffer appended,
    /// waits, and returns those bytes.
    fn read_raw(&self, mut encoder: wgpu::CommandEncoder, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let staging = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln timestamps staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        let index = self.submit_commands(encoder.finish())?;
        let readback = self.map_staging(staging);
        self.wait_for(index)?;
        pollster::block_on(readback)
            .map_err(|e| Error::Validation { context: " reading timestamps".into(), message: e.to_string() })
    }
}
