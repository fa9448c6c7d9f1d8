use std::sync::Arc;

/// One recorded compute dispatch: a cached pipeline, its bind group and grid.
pub struct Dispatch {
    pub label: String,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// The uniform holding the kernel's runtime sizes, rewritten by per-step refreshes.
    pub params: Option<wgpu::Buffer>,
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
