//! Reading device buffers back: a future resolved by the map callback, driven either by the
//! host's own device polling (async use) or by a bounded blocking wait.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use kiln_core::{Error, Result};
use web_time::Instant;

/// A pending read of a mapped staging buffer, resolving to its bytes.
pub struct Readback {
    pub(crate) staging: wgpu::Buffer,
    pub(crate) device: wgpu::Device,
    pub(crate) receiver: oneshot::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    pub(crate) deadline: Instant,
    pub(crate) seconds: f64,
}

impl Readback {
    fn bytes(&self) -> Result<Vec<u8>> {
        let view = self
            .staging
            .get_mapped_range(..)
            .map_err(|e| Error::Validation { context: " reading back".into(), message: e.to_string() })?;
        let bytes = view.to_vec();
        drop(view);
        self.staging.unmap();
        Ok(bytes)
    }
}

impl Future for Readback {
    type Output = Result<Vec<u8>>;

    /// Polls the device without blocking each time it is polled, so it completes under any
    /// executor; it gives up at its deadline instead of waiting forever.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let _ = self.device.poll(wgpu::PollType::Poll);
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Ready(Ok(Ok(()))) => Poll::Ready(self.bytes()),
            Poll::Ready(Ok(Err(e))) => {
                Poll::Ready(Err(Error::Validation { context: " mapping a readback".into(), message: e.to_string() }))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::DeviceLost("the readback callback was dropped".into()))),
            Poll::Pending if Instant::now() >= self.deadline => {
                Poll::Ready(Err(Error::Timeout { what: "reading results back".into(), seconds: self.seconds }))
            }
            // A native device answers only when polled, so the future asks to be polled again.
            #[cfg(not(target_arch = "wasm32"))]
            Poll::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            // The browser answers by itself, waking the receiver; waking here instead would keep
            // the page's event loop from ever delivering that answer.
            #[cfg(target_arch = "wasm32")]
            Poll::Pending => Poll::Pending,
        }
    }
}
