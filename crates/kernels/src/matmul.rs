use bytemuck::{Pod, Zeroable};
use kiln_core::{DType, Error, MatMul, Result, Shape};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, TEXELS_PER_ROW, Upload};

use crate::{B, GpuKernel, Launch, MATMUL, grid_1d};

pub const ENTRY_POINTS: &[&str] =
    &["matmul_naive", "matmul", "matmul_vec4", "matmul_vec4_16x16", "matmul_texels_16x16", "matmul_sum_slices"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    steps_per_slice: u32,
    stride_a: u32,
    stride_b: u32,
    stride_y: u32,
    slices: u32,
}

/// Which matmul kernel to run; `None` lets the shapes choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// One output per invocation, the benchmarks' baseline.
    Naive,
    /// 4×4 blocks, scalar loads, any shape.
    Blocked,
    /// 4×4 blocks, 4-wide loads; M, K and N multiples of 4.
    Vec4,
    /// 16×16 tiles of 4×4 blocks, 4-wide loads; M, K and N multiples of 4.
    Vec4Tile16,
    /// The same, reading A and B from texel copies (see `Gpu::texel_upload`).
    Texels16,
}

impl MatmulKernel {
    /// Every kernel, for tests and benchmarks.
    pub const ALL: [MatmulKernel; 5] = [
        MatmulKernel::Naive,
        MatmulKernel::Blocked,
        MatmulKernel::Vec4,
        MatmulKernel::Vec4Tile16,
        MatmulKernel::Texels16,
    ];

    fn entry(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "matmul_naive",
            MatmulKernel::Blocked => "matmul",
            MatmulKernel::Vec4 => "matmul_vec4",
            MatmulKernel::Vec4Tile16 => "matmul_vec4_16x16",
            MatmulKernel::Texels16 => "matmul_texels_16x16",
        }
    }

    /// Outputs per invocation along x (columns) and y (rows).
    fn block(self) -> (u32, u32) {
        match self {
            MatmulKernel::Naive => (1, 1),
            MatmulKernel::Blocked => (4, 4),
            MatmulKernel::Vec4 => (4, 4),
            MatmulKernel::Vec4Tile16 | MatmulKernel::Texels16 => (16, 16),
        }
    }
}

/// The sizes of a product `[batch ×] [rows, inner] · [inner, cols]`.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    rows: u32,
    cols: u32,
    inner: u32,
    batch: u32,
}

impl Sizes {
    fn of(m: MatMul, a: &Shape, y: &Shape) -> Self {
        let dims = y.dims();
        let a_dims = a.dims();
        let inner = if m.trans_a { a_dims[a_dims.len() - 2] } else { a_dims[a_dims.len() - 1] };
        Sizes {
            rows: dims[dims.len() - 2] as u32,
            cols: dims[dims.len() - 1] as u32,
            inner: inner as u32,
            batch: if dims.len() == 3 { dims[0] as u32 } else { 1 },
        }
    }

    fn aligned(&self) -> bool {
        [self.rows, self.cols, self.inner].iter().all(|d| d.is_multiple_of(4))
    }
}

/// How a product `y = op(a)·op(b)` runs: its kernel, and whether K is cut into slices summed
/// by a second dispatch (their partial products then need a scratch buffer).
#[derive(Clone, Copy, Debug)]
pub struct MatmulPlan {
    m: MatMul,
    kernel: MatmulKernel,
    sizes: Sizes,
    slicing: Option<Slicing>,
}

impl MatmulPlan {
    /// The plan for `a` and `y` of these shapes with `kernel`, or the fastest kernel the
    /// shapes allow.
    pub fn new(gpu: &Gpu, m: MatMul, kernel: Option<MatmulKernel>, a: &Shape, b: &Shape, y: &Shape) -> Result<Self> {
        let sizes = Sizes::of(m, a, y);
        let kernel = kernel.unwrap_or(match sizes.aligned() {
            // A CPU adapter runs an invocation as one SIMD lane: heavy tiles pay there, and
            // texel fetches beat its buffer loads.
            true if gpu.info().device_type == wgpu::DeviceType::Cpu => MatmulKernel::Texels16,
            true => MatmulKernel::Vec4,
            false => MatmulKernel::Blocked,
        });
        let wide = matches!(kernel, MatmulKernel::Vec4 | MatmulKernel::Vec4Tile16 | MatmulKernel::Texels16);
        if wide && !sizes.aligned() {
            return Err(Error::attribute(
                "matmul",
                format!(
                    "{} needs M, K, N multiples of 4, got {}, {}, {}",
                    kernel.entry(),
                    sizes.rows,
                    sizes.inner,
                    sizes.cols
                ),
            ));
        }
        let slicing = within_budget(gpu, kernel, sizes, k_slicing(kernel, sizes), &[a, b])?;
        Ok(MatmulPlan { m, kernel, sizes, slicing })
    }

    /// The bytes of the partial products of a product split into slices of K.
    pub fn scratch_bytes(&self) -> Option<u64> {
        self.partial_shape().map(|s| s.bytes())
    }

    fn partial_shape(&self) -> Option<Shape> {
        let s = self.sizes;
        self.slicing.map(|k| Shape::new([(s.batch * k.slices) as usize, s.rows as usize, s.cols as usize]))
    }

    /// The product's dispatches; `partial` is the scratch `scratch_bytes` asked for.
    pub fn kernel(&self, gpu: &Gpu, a: &B<'_>, b: &B<'_>, y: &B<'_>, partial: Option<&GpuBuffer>) -> Result<GpuKernel> {
        let (Some(slicing), Some(shape)) = (self.slicing, self.partial_shape()) else {
            return product(gpu, self.m, self.kernel, self.sizes, None, [a, b, y]).map(GpuKernel::from);
        };
        let partial = crate::fits(partial, shape.bytes(), "matmul partial products")?;
        let partial_bound = B { buffer: partial, shape: &shape, dtype: DType::F32 };
        let first = product(gpu, self.m, self.kernel, self.sizes, Some(slicing), [a, b, &partial_bound])?;
        let sum = sum_slices(gpu, partial, slicing.slices, self.sizes, y)?;
        Ok(GpuKernel::new(vec![first, sum]))
    }
}

/// A product's K cut into `slices` runs of `steps_per_slice` steps of k (4 k for the 4-wide
/// kernels, one for the scalar ones; the last run possibly shorter, none empty).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Slicing {
    steps_per_slice: u32,
    slices: u32,
}

impl Slicing {
    /// `steps` cut into at most `wanted` runs: the run rounded up, then the runs counted again
    /// (so that none is empty).
    fn of(steps: u32, wanted: u32) -> Self {
        let steps_per_slice = steps.div_ceil(wanted.max(1));
        Slicing { steps_per_slice, slices: steps.div_ceil(steps_per_slice) }
    }
}

/// The steps of k an invocation of `kernel` takes.
fn steps(kernel: MatmulKernel, s: Sizes) -> u32 {
    match kernel {
        MatmulKernel::Naive | MatmulKernel::Blocked => s.inner,
        MatmulKernel::Vec4 | MatmulKernel::Vec4Tile16 | MatmulKernel::Texels16 => s.inner / 4,
    }
}

/// `slicing`, or where an invocation's loop over k would pass the adapter's loop budget, K cut
/// into slices short enough: a product of any K computes on every adapter.
fn within_budget(
    gpu: &Gpu,
    kernel: MatmulKernel,
    s: Sizes,
    slicing: Option<Slicing>,
    shapes: &[&Shape],
) -> Result<Option<Slicing>> {
    let Some(budget) = crate::loop_budget(gpu) else { return Ok(slicing) };
    let total = steps(kernel, s);
    let longest = slicing.map_or(total, |k| k.steps_per_slice) as usize;
    if longest < budget {
        return Ok(slicing);
    }
    let split = Slicing::of(total, total.div_ceil(budget as u32 - 1));
    crate::check_loops(gpu, "matmul_sum_slices", split.slices as usize + 1, shapes)?;
    Ok(Some(split))
}

/// Whether and how to sum slices of K separately: the 16×16-tile kernels give a CPU adapter
/// one SIMD lane per tile, so a 2-D product with few tiles and a long K (a weight gradient,
/// `[64, 12544] · [12544, 288]`: 72 tiles) would leave lanes and cores idle. Each slice keeps
/// at least `MIN_QUADS` steps of k.
fn k_slicing(kernel: MatmulKernel, s: Sizes) -> Option<Slicing> {
    const WANTED_INVOCATIONS: u32 = 512;
    const MIN_QUADS: u32 = 32;
    if s.batch != 1 || !matches!(kernel, MatmulKernel::Vec4Tile16 | MatmulKernel::Texels16) {
        return None;
    }
    let (bx, by) = kernel.block();
    let tiles = s.cols.div_ceil(bx) * s.rows.div_ceil(by);
    let quads = s.inner / 4;
    let wanted = WANTED_INVOCATIONS.div_ceil(tiles).min(quads / MIN_QUADS);
    (wanted >= 2).then(|| Slicing::of(quads, wanted))
}

/// The product's dispatch; with a slicing, invocation z (batch element · slices + slice) sums
/// its slice's steps of k into plane z of `y`.
fn product(
    gpu: &Gpu,
    m: MatMul,
    kernel: MatmulKernel,
    s: Sizes,
    slicing: Option<Slicing>,
    [a, b, y]: [&B<'_>; 3],
) -> Result<Dispatch> {
    let params = Params {
        m: s.rows,
        n: s.cols,
        k: s.inner,
        steps_per_slice: slicing.map_or(0, |k| k.steps_per_slice),
        stride_a: if a.shape.rank() == 3 { s.rows * s.inner } else { 0 },
        stride_b: if b.shape.rank() == 3 { s.inner * s.cols } else { 0 },
        stride_y: s.rows * s.cols,
        slices: slicing.map_or(0, |k| k.slices),
    };
    let depth = s.batch * slicing.map_or(1, |k| k.slices);
    let (block_x, block_y) = kernel.block();
    let invocations = [s.cols.div_ceil(block_x), s.rows.div_ceil(block_y)];
    let [wx, wy] = workgroup_shape(invocations, depth);
    let workgroups = [invocations[0].div_ceil(wx), invocations[1].div_ceil(wy), depth];
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    if workgroups.iter().any(|&w| w > max) {
        return Err(Error::attribute(
            "matmul",
            format!("grid {workgroups:?} for y {} exceeds {max} workgroups per axis", y.shape),
        ));
    }
    let texels = if kernel == MatmulKernel::Texels16 { texel_uploads(gpu, a, b)? } else { None };
    let kernel = match (kernel, &texels) {
        (MatmulKernel::Texels16, None) => MatmulKernel::Vec4Tile16,
        (kernel, _) => kernel,
    };
    let mut constants = vec![
        ("TRANS_A", f64::from(u8::from(m.trans_a))),
        ("TRANS_B", f64::from(u8::from(m.trans_b))),
        ("WORKGROUP_X", f64::from(wx)),
        ("WORKGROUP_Y", f64::from(wy)),
    ];
    let bindings = match texels {
        Some(_) => {
            constants.push(("TEXELS_PER_ROW", f64::from(TEXELS_PER_ROW)));
            vec![(3, y.buffer)]
        }
        None => vec![(1, a.buffer), (2, b.buffer), (3, y.buffer)],
    };
    let launch = Launch {
        shader: MATMUL,
        entry: kernel.entry(),
        constants,
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups,
    };
    match texels {
        Some(texels) => launch.build_with_texels(gpu, texels),
        None => launch.build(gpu),
    }
}

/// `y[b] = Σ_s partial[b · slices + s]` over the K-slices of a split product, in order.
fn sum_slices(gpu: &Gpu, partial: &GpuBuffer, slices: u32, s: Sizes, y: &B<'_>) -> Result<Dispatch> {
    let params =
        Params { m: s.rows, n: s.cols, k: s.batch, steps_per_slice: 0, stride_a: 0, stride_b: 0, stride_y: 0, slices };
    let launch = Launch {
        shader: MATMUL,
        entry: "matmul_sum_slices",
        constants: vec![("WORKGROUP_X", 64.0), ("WORKGROUP_Y", 1.0)],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, partial), (3, y.buffer)],
        workgroups: grid_1d(gpu, (s.batch * s.rows * s.cols) as usize),
    };
    launch.build(gpu)
}

/// Texel copies of A (binding 1) and B (binding 2), or `None` where either is too large for
/// a texture (the buffer kernel then runs).
fn texel_uploads(gpu: &Gpu, a: &B<'_>, b: &B<'_>) -> Result<Option<Vec<(u32, Upload, wgpu::TextureView)>>> {
    let mut texels = Vec::with_capacity(2);
    for (slot, operand) in [(1, a), (2, b)] {
        match gpu.texel_upload(operand.buffer, (operand.shape.numel() / 4) as u32, slot)? {
            Some((upload, view)) => texels.push((slot, upload, view)),
            None => return Ok(None),
        }
    }
    Ok(Some(texels))
}

/// The workgroup's shape over `[x, y]` invocations: 64 of them, no taller than the rows of
/// tiles there are (so none idles), halved while that leaves fewer than 16 workgroups, so that
/// every core of a CPU adapter stays busy.
fn workgroup_shape([x, y]: [u32; 2], batch: u32) -> [u32; 2] {
    let wy = y.next_power_of_two().clamp(1, 8);
    let mut shape = [(64 / wy).min(x.next_power_of_two().max(1)), wy];
    while shape[0] * shape[1] > 1 && x.div_ceil(shape[0]) * y.div_ceil(shape[1]) * batch < 16 {
        let larger = usize::from(shape[1] > shape[0]);
        shape[larger] /= 2;
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slice a split product's dispatch runs is non-empty, and the sum adds exactly the
    /// slices written (a slice counted but never written would add a pooled buffer's stale data).
    #[test]
    fn k_slices_cover_k_exactly() {
        for rows in [4, 16, 64, 100] {
            for cols in [4, 12, 36, 288] {
                for quads in (1..6000).step_by(7) {
                    let sizes = Sizes { rows, cols, inner: 4 * quads, batch: 1 };
                    let Some(Slicing { steps_per_slice, slices }) = k_slicing(MatmulKernel::Texels16, sizes) else {
                        continue;
                    };
                    assert!(slices >= 2 && steps_per_slice >= 32, "{sizes:?}");
                    assert!((slices - 1) * steps_per_slice < quads, "{sizes:?}: an empty last slice");
                    assert!(slices * steps_per_slice >= quads, "{sizes:?}: k not covered");
                }
            }
        }
    }
}
