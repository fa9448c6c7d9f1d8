//! Turns wgpu's error channels (error scopes, the uncaptured-error handler, the device-lost
//! callback) into `kiln_core::Error` values, so nothing panics inside wgpu.

use std::sync::{Arc, Mutex};

use kiln_core::Error;

/// Errors wgpu reported outside any scope, and the device-lost message if the device died.
#[derive(Default)]
pub struct ErrorSink {
    uncaptured: Mutex<Vec<Caught>>,
    lost: Mutex<Option<String>>,
}

impl ErrorSink {
    /// Installs the handlers on `device`.
    pub fn attach(device: &wgpu::Device) -> Arc<Self> {
        let sink = Arc::new(ErrorSink::default());
        let uncaptured = Arc::clone(&sink);
        device.on_uncaptured_error(Arc::new(move |e| lock(&uncaptured.uncaptured).push(Caught::from(e))));
        let lost = Arc::clone(&sink);
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost.lost) = Some(format!("{reason:?}: {message}"));
        });
        sink
    }

    /// Marks the device as given up (a submission that never finished), so every later use
    /// fails with `message`.
    #[cfg_attr(
        target_arch = "wasm32",
        expect(dead_code, reason = "the browser has no submission thread to give up on")
    )]
    pub fn give_up(&self, message: String) {
        lock(&self.lost).get_or_insert(message);
    }

    /// The first pending error, if any, with `context` naming what was being done.
    pub fn take(&self, context: &str) -> Option<Error> {
        if let Some(message) = lock(&self.lost).clone() {
            return Some(Error::DeviceLost(message));
        }
        let mut pending = lock(&self.uncaptured);
        let first = (!pending.is_empty()).then(|| pending.remove(0));
        first.map(|e| e.in_context(context))
    }
}

/// A wgpu error as kept until someone checks: its text only, since a browser's errors are
/// not `Send`.
enum Caught {
    OutOfMemory,
    Validation(String),
}

impl From<wgpu::Error> for Caught {
    fn from(e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => Caught::OutOfMemory,
            wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. } => {
                Caught::Validation(description)
            }
        }
    }
}

impl Caught {
    /// The error, naming the operation in progress.
    fn in_context(self, context: &str) -> Error {
        let context = if context.is_empty() { String::new() } else { format!(" in {context}") };
        match self {
            Caught::OutOfMemory => Error::OutOfMemory { context },
            Caught::Validation(message) => Error::Validation { context, message },
        }
    }
}

/// A poisoned lock only means another thread panicked while pushing an error; the data is fine.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f` inside validation and out-of-memory error scopes, returning what they caught.
#[cfg(not(target_arch = "wasm32"))]
pub fn scoped<T>(device: &wgpu::Device, context: &str, f: impl FnOnce() -> T) -> Result<T, Error> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let caught = pollster::block_on(validation.pop()).or(pollster::block_on(oom.pop()));
    match caught {
        Some(e) => Err(Caught::from(e).in_context(context)),
        None => Ok(value),
    }
}

/// In the browser nothing may block on a scope's answer: an error reaches the uncaptured-error
/// handler instead, and the next `Gpu::check` (before every run) reports it.
#[cfg(target_arch = "wasm32")]
pub fn scoped<T>(_device: &wgpu::Device, _context: &str, f: impl FnOnce() -> T) -> Result<T, Error> {
    Ok(f())
}
