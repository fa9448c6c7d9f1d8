use std::sync::Arc;

use crate::Upload;

/// One recorded compute dispatch: a cached pipeline, its bind group and grid.
pub struct Dispatch {
    pub label: String,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// The uniform holding the kernel's runtime sizes, rewritten by per-step refreshes.
    pub params: Option<wgpu::Buffer>,
    /// Copies of buffers into the textures it reads, recorded just before it.
    pub uploads: Vec<Upload>,
}

impl Dispatch {
    /// Records the dispatch in `pass`.
    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }

    /// Records its uploads in `encoder` (outside any pass: copies cannot go in one).
    pub(crate) fn record_uploads(&self, encoder: &mut wgpu::CommandEncoder) {
        for upload in &self.uploads {
            upload.encode(encoder);
        }
    }
}

/// `dispatches` cut where one needs uploads: each run of them can share one compute pass.
pub(crate) fn passes<'a>(dispatches: &'a [&'a Dispatch]) -> impl Iterator<Item = &'a [&'a Dispatch]> {
    dispatches.chunk_by(|_, next| next.uploads.is_empty())
}

/// Spreads `count` workgroups over x and y so neither exceeds `max_per_dim` (WebGPU's 65535
/// by default). Kernels recover the flat index as `(wg.y * num_workgroups.x + wg.x)` and guard
/// the overshoot of the last row.
pub fn fold_workgroups(count: u32, max_per_dim: u32) -> [u32; 3] {
    if count <= max_per_dim {
        return [count.max(1), 1, 1];
    }
    let y = count.div_ceil(max_per_dim);
    [count.div_ceil(y), y, 1]
}
