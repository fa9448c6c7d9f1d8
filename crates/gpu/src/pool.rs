//! Storage buffers pooled by size class: a dropped buffer goes back to its class and the next
//! request of that class reuses it instead of allocating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Rounds `bytes` up to its class: 256 bytes at least, then steps of a quarter power of two,
/// so a pooled buffer wastes at most a fifth of itself.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let power = bytes.next_power_of_two();
    let quarter = (power / 8).max(16);
    bytes.div_ceil(quarter) * quarter
}

#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Bytes of the buffers on loan now, and of those waiting in the pool.
    pub(crate) on_loan: u64,
    pub(crate) idle: u64,
}

impl Pool {
    pub(crate) fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let buffer = self.free.get_mut(&class).and_then(Vec::pop)?;
        self.idle -= class;
        Some(buffer)
    }
}

/// A storage buffer on loan from the pool; it returns there when dropped.
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    pool: Weak<Mutex<Pool>>,
}

impl GpuBuffer {
    /// A loan of `buffer` (of size `class`), counted in `pool` (whose lock the caller holds).
    pub(crate) fn new(buffer: wgpu::Buffer, class: u64, pool: &Arc<Mutex<Pool>>, locked: &mut Pool) -> Self {
        locked.on_loan += class;
        GpuBuffer { buffer: Some(buffer), class, pool: Arc::downgrade(pool) }
    }

    pub fn raw(&self) -> &wgpu::Buffer {
        // Only `drop` takes the buffer out.
        self.buffer.as_ref().unwrap_or_else(|| unreachable!("pooled buffer used after drop"))
    }

    /// Allocated size in bytes (the size class, not the tensor's size).
    pub fn size(&self) -> u64 {
        self.class
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.on_loan -= self.class;
            pool.idle += self.class;
            pool.free.entry(self.class).or_default().push(buffer);
        }
    }
}
