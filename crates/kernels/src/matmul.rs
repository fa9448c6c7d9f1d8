use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};
use kiln_core::{DType, Error, MatMul, Result, Shape};
use kiln_gpu::{Dispatch, Gpu, GpuBuffer, TEXELS_PER_ROW, Upload};

use crate::{B, GpuKernel, Launch, MATMUL, MATMUL_LANES, Shader, grid_1d};

pub const ENTRY_POINTS: &[&str] = &[
    "matmul_naive",
    "matmul",
    "matmul_vec4",
    "matmul_vec4_8x8",
    "matmul_vec4_16x16",
    "matmul_texels_8x8",
    "matmul_texels_16x16",
    "matmul_workgroup",
    "matmul_sum_slices",
    "matmul_sum_slices_x4",
];
/// The entry points of matmul.wgsl with matmul_lanes.wgsl appended (`MATMUL_LANES`).
pub const LANES_ENTRY_POINTS: [&str; ENTRY_POINTS.len() + 2] = {
    let mut all = [""; ENTRY_POINTS.len() + 2];
    let mut i = 0;
    while i < ENTRY_POINTS.len() {
        all[i] = ENTRY_POINTS[i];
        i += 1;
    }
    all[i] = "matmul_lanes_32x8";
    all[i + 1] = "matmul_lanes_32x4";
    all
};
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

/// Which matmul kernel to run; `None` lets the tuner (or, untuned, the shapes) choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// One output per invocation, the benchmarks' baseline.
    Naive,
    /// 4×4 blocks, scalar loads, any shape.
    Blocked,
    /// 4×4 blocks, 4-wide loads; M, K and N multiples of 4.
    Vec4,
    /// 8×8 tiles of 4×4 blocks, 4-wide loads; M, K and N multiples of 4.
    Vec4Tile8,
    /// 16×16 tiles of 4×4 blocks, 4-wide loads; M, K and N multiples of 4.
    Vec4Tile16,
    /// 8×8 tiles reading A and B from texel copies (see `Gpu::texel_upload`).
    Texels8,
    /// 16×16 tiles reading A and B from texel copies.
    Texels16,
    /// Any shape: 64×64 tiles per workgroup, operands staged through workgroup memory.
    Workgroup,
    /// 32 rows × 8 columns per invocation, A' shared across a subgroup of 8 by broadcast, A and
    /// B read from texel copies; M, K and N multiples of 4, subgroups of 8 (CPU adapters).
    Lanes32x8,
    /// The same with 32 rows × 4 columns.
    Lanes32x4,
}

impl MatmulKernel {
    /// Every kernel, for tests and benchmarks.
    pub const ALL: [MatmulKernel; 10] = [
        MatmulKernel::Naive,
        MatmulKernel::Blocked,
        MatmulKernel::Vec4,
        MatmulKernel::Vec4Tile8,
        MatmulKernel::Vec4Tile16,
        MatmulKernel::Texels8,
        MatmulKernel::Texels16,
        MatmulKernel::Workgroup,
        MatmulKernel::Lanes32x8,
        MatmulKernel::Lanes32x4,
    ];

    /// The kernel's entry point (in matmul.wgsl, or for the subgroup kernels matmul_lanes.wgsl).
    pub fn entry(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "matmul_naive",
            MatmulKernel::Blocked => "matmul",
            MatmulKernel::Vec4 => "matmul_vec4",
            MatmulKernel::Vec4Tile8 => "matmul_vec4_8x8",
            MatmulKernel::Vec4Tile16 => "matmul_vec4_16x16",
            MatmulKernel::Texels8 => "matmul_texels_8x8",
            MatmulKernel::Texels16 => "matmul_texels_16x16",
            MatmulKernel::Workgroup => "matmul_workgroup",
            MatmulKernel::Lanes32x8 => "matmul_lanes_32x8",
            MatmulKernel::Lanes32x4 => "matmul_lanes_32x4",
        }
    }

    /// The kernel whose entry point is `entry`.
    pub fn from_entry(entry: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.entry() == entry)
    }

    /// Outputs per invocation along x (columns) and y (rows); per workgroup for `Workgroup`.
    fn block(self) -> (u32, u32) {
        match self {
            MatmulKernel::Naive => (1, 1),
            MatmulKernel::Blocked | MatmulKernel::Vec4 => (4, 4),
            MatmulKernel::Vec4Tile8 | MatmulKernel::Texels8 => (8, 8),
            MatmulKernel::Vec4Tile16 | MatmulKernel::Texels16 => (16, 16),
            MatmulKernel::Workgroup => (64, 64),
            MatmulKernel::Lanes32x8 => (8, 32),
            MatmulKernel::Lanes32x4 => (4, 32),
        }
    }

    /// Whether it loads 4-wide, needing M, K and N multiples of 4.
    fn wide(self) -> bool {
        match self {
            MatmulKernel::Naive | MatmulKernel::Blocked | MatmulKernel::Workgroup => false,
            MatmulKernel::Vec4
            | MatmulKernel::Vec4Tile8
            | MatmulKernel::Vec4Tile16
            | MatmulKernel::Texels8
            | MatmulKernel::Texels16
            | MatmulKernel::Lanes32x8
            | MatmulKernel::Lanes32x4 => true,
        }
    }

    /// The values of k one step of its loop over K takes.
    fn k_per_step(self) -> u32 {
        match self {
            MatmulKernel::Naive | MatmulKernel::Blocked => 1,
            MatmulKernel::Workgroup => 16,
            MatmulKernel::Vec4
            | MatmulKernel::Vec4Tile8
            | MatmulKernel::Vec4Tile16
            | MatmulKernel::Texels8
            | MatmulKernel::Texels16
            | MatmulKernel::Lanes32x8
            | MatmulKernel::Lanes32x4 => 4,
        }
    }

    /// Loop passes one step of k costs (the shared-memory kernel runs 16 k in an inner loop).
    fn passes_per_step(self) -> u32 {
        match self {
            MatmulKernel::Workgroup => 18,
            MatmulKernel::Naive
            | MatmulKernel::Blocked
            | MatmulKernel::Vec4
            | MatmulKernel::Vec4Tile8
            | MatmulKernel::Vec4Tile16
            | MatmulKernel::Texels8
            | MatmulKernel::Texels16
            | MatmulKernel::Lanes32x8
            | MatmulKernel::Lanes32x4 => 1,
        }
    }

    /// Whether it reads A and B from texel copies (where they fit in a texture).
    fn texels(self) -> bool {
        match self {
            MatmulKernel::Texels8 | MatmulKernel::Texels16 | MatmulKernel::Lanes32x8 | MatmulKernel::Lanes32x4 => true,
            MatmulKernel::Naive
            | MatmulKernel::Blocked
            | MatmulKernel::Vec4
            | MatmulKernel::Vec4Tile8
            | MatmulKernel::Vec4Tile16
            | MatmulKernel::Workgroup => false,
        }
    }

    /// The kernel run instead where the texel copies do not fit in a texture: buffer loads and
    /// the same tile, or for the subgroup kernels, the 16×16 tile.
    fn without_texels(self) -> Self {
        match self {
            MatmulKernel::Texels8 => MatmulKernel::Vec4Tile8,
            MatmulKernel::Texels16 | MatmulKernel::Lanes32x8 | MatmulKernel::Lanes32x4 => MatmulKernel::Vec4Tile16,
            MatmulKernel::Naive
            | MatmulKernel::Blocked
            | MatmulKernel::Vec4
            | MatmulKernel::Vec4Tile8
            | MatmulKernel::Vec4Tile16
            | MatmulKernel::Workgroup => self,
        }
    }

    /// The module its entry point is in.
    fn shader(self) -> Shader {
        match self {
            MatmulKernel::Lanes32x8 | MatmulKernel::Lanes32x4 => MATMUL_LANES,
            MatmulKernel::Naive
            | MatmulKernel::Blocked
            | MatmulKernel::Vec4
            | MatmulKernel::Vec4Tile8
            | MatmulKernel::Vec4Tile16
            | MatmulKernel::Texels8
            | MatmulKernel::Texels16
            | MatmulKernel::Workgroup => MATMUL,
        }
    }

    /// Why it cannot run on this adapter, if it cannot: the subgroup kernels broadcast across
    /// exactly 8 invocations, so they need subgroups that are always 8 wide.
    pub fn unavailable(self, gpu: &Gpu) -> Option<String> {
        if self.shader().features.is_empty() {
            return None;
        }
        let info = gpu.info();
        let subgroups = gpu.device().features().contains(wgpu::Features::SUBGROUP);
        (!subgroups || info.subgroup_min_size != LANES || info.subgroup_max_size != LANES).then(|| {
            format!(
                "{} needs subgroups of exactly {LANES} invocations; {} has {}",
                self.entry(),
                info.name,
                match subgroups {
                    true => format!("subgroups of {} to {}", info.subgroup_min_size, info.subgroup_max_size),
                    false => "no subgroups".into(),
                }
            )
        })
    }
}

/// The subgroup width the subgroup kernels are written for.
const LANES: u32 = 8;

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

/// How a product `y = op(a)·op(b)` runs: its kernel, whether K is cut into slices summed by a
/// second dispatch (their partial products then need a scratch buffer), how many rows of
/// invocations a workgroup spans at most, and whether a batch sharing A runs on along the
/// columns (`folded`, the subgroup kernels: see matmul_lanes.wgsl's FOLDED_BATCH).
#[derive(Clone, Copy, Debug)]
pub struct MatmulPlan {
    m: MatMul,
    kernel: MatmulKernel,
    sizes: Sizes,
    slicing: Option<Slicing>,
    workgroup_rows: u32,
    folded: bool,
}

/// The rows of invocations a workgroup spans at most, unless the tuner measured fewer better
/// (a product whose rows of tiles are not a multiple of 8 leaves the last workgroups' rows
/// idle: 18 rows of tiles take 24 in workgroups 8 rows tall, 18 in workgroups 2 rows tall).
const WORKGROUP_ROWS: u32 = 8;

impl MatmulPlan {
    /// The plan for `a` and `y` of these shapes with `kernel`; without one, the kernel and
    /// slicing the tuner measured fastest on this adapter (see `tune`), or where it does not
    /// measure, the one the shapes' rules pick.
    pub fn new(gpu: &Gpu, m: MatMul, kernel: Option<MatmulKernel>, a: &Shape, b: &Shape, y: &Shape) -> Result<Self> {
        let sizes = Sizes::of(m, a, y);
        let kernel = match kernel {
            Some(kernel) => kernel,
            None => match tuned(gpu, m, sizes, a, b, y)? {
                Some(plan) => return Ok(plan),
                None => ruled_kernel(gpu, sizes),
            },
        };
        Self::sliced(gpu, m, kernel, k_slicing(kernel, sizes), a, b, y)
    }

    /// The plan with `kernel` and K cut into `slicing` (or whole), cut further where the
    /// adapter's loop budget needs it.
    fn sliced(
        gpu: &Gpu,
        m: MatMul,
        kernel: MatmulKernel,
        slicing: Option<Slicing>,
        a: &Shape,
        b: &Shape,
        y: &Shape,
    ) -> Result<Self> {
        let sizes = Sizes::of(m, a, y);
        if let Some(reason) = kernel.unavailable(gpu) {
            return Err(Error::Unsupported(reason));
        }
        if kernel.wide() && !sizes.aligned() {
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
        let slicing = within_budget(gpu, kernel, sizes, slicing, &[a, b])?;
        Ok(MatmulPlan { m, kernel, sizes, slicing, workgroup_rows: WORKGROUP_ROWS, folded: false })
    }

    /// Every plan the tuner may time for these shapes: each kernel the shapes allow except the
    /// naive baseline, with K whole, and where there are few invocations to share the work or K
    /// is long, also cut into 2 to 32 slices; K whole also in workgroups 4 and 2 rows tall.
    pub fn candidates(gpu: &Gpu, m: MatMul, a: &Shape, b: &Shape, y: &Shape) -> Result<Vec<Self>> {
        let sizes = Sizes::of(m, a, y);
        let limit = gpu.limits().max_storage_buffer_binding_size.min(gpu.limits().max_buffer_size);
        let mut plans = Vec::new();
        for kernel in MatmulKernel::ALL {
            if kernel == MatmulKernel::Naive || (kernel.wide() && !sizes.aligned()) || kernel.unavailable(gpu).is_some()
            {
                continue;
            }
            let steps = steps(kernel, sizes);
            let (bx, by) = kernel.block();
            let parallel = sizes.cols.div_ceil(bx) * sizes.rows.div_ceil(by) * sizes.batch;
            let few = if kernel == MatmulKernel::Workgroup { parallel < 512 } else { parallel < 4096 };
            // A long K also reads more of A and B than a cache holds: slices keep each pass's
            // rows and columns cached (the partial products cost a write and a read of y each).
            let few = few || steps >= 256;
            for wanted in [1, 2, 4, 8, 16, 32] {
                let slicing = (wanted > 1).then(|| Slicing::of(steps, wanted));
                let partial = u64::from(sizes.batch * wanted * sizes.rows * sizes.cols) * 4;
                let worth = wanted == 1 || (few && steps / wanted >= 8 && partial <= limit);
                if !worth || plans.iter().any(|p: &MatmulPlan| p.kernel == kernel && p.slicing == slicing) {
                    continue;
                }
                if let Ok(plan) = Self::sliced(gpu, m, kernel, slicing, a, b, y) {
                    plans.push(plan);
                }
            }
            let whole = plans.iter().find(|p| p.kernel == kernel && p.slicing.is_none()).copied();
            // The subgroup kernels' workgroups are one row of invocations.
            if let Some(whole) = whole
                && kernel.shader().features.is_empty()
                && kernel != MatmulKernel::Workgroup
                && sizes.rows.div_ceil(by) > 2
            {
                plans.extend([4, 2].map(|rows| MatmulPlan { workgroup_rows: rows, ..whole }));
            }
            // The subgroup kernels over a batch sharing A: also with the batch along the columns.
            let folded = whole.map(|whole| MatmulPlan { folded: true, ..whole });
            plans.extend(folded.filter(|plan| plan.folds(gpu, a)));
        }
        Ok(plans)
    }

    /// Whether this plan may run its batch on along the columns: a subgroup kernel, a batch
    /// sharing one A (2-D), and a grid within the adapter's limit.
    fn folds(&self, gpu: &Gpu, a: &Shape) -> bool {
        let s = self.sizes;
        let lanes = matches!(self.kernel, MatmulKernel::Lanes32x8 | MatmulKernel::Lanes32x4);
        let columns = u64::from(s.batch) * u64::from(s.cols);
        let workgroups = columns.div_ceil(u64::from(self.kernel.block().0)).div_ceil(u64::from(LANES));
        lanes
            && s.batch > 1
            && a.rank() == 2
            && workgroups <= u64::from(gpu.limits().max_compute_workgroups_per_dimension)
    }

    /// The kernel this plan runs.
    pub fn kernel_choice(&self) -> MatmulKernel {
        self.kernel
    }

    /// The slices K is cut into (1: whole).
    pub fn slices(&self) -> u32 {
        self.slicing.map_or(1, |k| k.slices)
    }

    /// The plan's name in the tuner's cache: its entry point, the slices of K, where not 8 the
    /// workgroup's rows, and whether the batch is folded into the columns
    /// (`matmul_texels_16x16/4`, `matmul_texels_16x16/1/rows2`, `matmul_lanes_32x4/1/folded`).
    pub fn choice(&self) -> String {
        let rows =
            if self.workgroup_rows == WORKGROUP_ROWS { String::new() } else { format!("/rows{}", self.workgroup_rows) };
        let folded = if self.folded { "/folded" } else { "" };
        format!("{}/{}{rows}{folded}", self.kernel.entry(), self.slices())
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
        self.kernel_with(gpu, a, b, y, partial, Epilogue::default())
    }

    /// The product's dispatches, storing what `epilogue` makes of each sum.
    pub fn kernel_with(
        &self,
        gpu: &Gpu,
        a: &B<'_>,
        b: &B<'_>,
        y: &B<'_>,
        partial: Option<&GpuBuffer>,
        epilogue: Epilogue<'_>,
    ) -> Result<GpuKernel> {
        if let Some(bias) = epilogue.bias
            && (self.sizes.batch != 1 || bias.shape.numel() != self.sizes.cols as usize || epilogue.row_bias.is_some())
        {
            return Err(Error::attribute(
                "linear",
                format!("a bias of {} for y {}: one value per column of a 2-D product", bias.shape, y.shape),
            ));
        }
        if let Some(bias) = epilogue.row_bias
            && bias.shape.numel() != self.sizes.rows as usize
        {
            return Err(Error::attribute(
                "conv2d",
                format!("a bias of {} for y {}: one value per row of each product", bias.shape, y.shape),
            ));
        }
        let (Some(slicing), Some(shape)) = (self.slicing, self.partial_shape()) else {
            return product(gpu, self, None, epilogue, [a, b, y]).map(GpuKernel::from);
        };
        let partial = crate::fits(partial, shape.bytes(), "matmul partial products")?;
        let partial_bound = B { buffer: partial, shape: &shape, dtype: DType::F32 };
        let plain = Epilogue::default();
        let mut first = product(gpu, self, Some(slicing), plain, [a, b, &partial_bound])?;
        first.label = format!("{}/{}", first.label, slicing.slices);
        let sum = sum_slices(gpu, partial, slicing.slices, self.sizes, epilogue, y)?;
        Ok(GpuKernel::new(vec![first, sum]))
    }
}

/// What a product stores for each sum: the sum itself, or plus a bias per column of y (a fused
/// `linear` op) or per row of each y[b] (a convolution's per-sample products, whose rows are
/// output channels), or the ReLU of any of these; or the sum where a tensor of y's shape is
/// positive, else 0 (ReLU's gradient there, a fused `matmul_relu_backward`).
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a B<'a>>,
    pub row_bias: Option<&'a B<'a>>,
    pub relu: bool,
    pub relu_mask: Option<&'a B<'a>>,
}

impl<'a> Epilogue<'a> {
    fn constants(&self) -> [(&'static str, f64); 4] {
        let flag = |on: bool| f64::from(u8::from(on));
        [
            ("BIAS", flag(self.bias.is_some())),
            ("ROW_BIAS", flag(self.row_bias.is_some())),
            ("RELU", flag(self.relu)),
            ("RELU_MASK", flag(self.relu_mask.is_some())),
        ]
    }

    /// Bindings 4 and 5: the bias and the mask, or where there is none `placeholder`
    /// (read-only, never read).
    fn bindings<'b>(&self, placeholder: &'b GpuBuffer) -> [(u32, &'b GpuBuffer); 2]
    where
        'a: 'b,
    {
        let bias = self.bias.or(self.row_bias);
        [(4, bias.map_or(placeholder, |b| b.buffer)), (5, self.relu_mask.map_or(placeholder, |x| x.buffer))]
    }
}

/// Today's rules, for shapes the tuner leaves alone: on a CPU adapter the subgroup kernel where
/// it has subgroups of 8, else the 16×16 texel tiles; elsewhere 4×4 blocks; scalar loads where
/// the shapes are not multiples of 4.
fn ruled_kernel(gpu: &Gpu, sizes: Sizes) -> MatmulKernel {
    match sizes.aligned() {
        // A CPU adapter runs an invocation as one SIMD lane: heavy tiles pay there, texel
        // fetches beat its buffer loads, and a broadcast across lanes beats a fetch.
        true if gpu.info().device_type == wgpu::DeviceType::Cpu => match MatmulKernel::Lanes32x8.unavailable(gpu) {
            None => MatmulKernel::Lanes32x8,
            Some(_) => MatmulKernel::Texels16,
        },
        true => MatmulKernel::Vec4,
        false => MatmulKernel::Blocked,
    }
}

/// The plan the tuner keeps for this product, or `None` where it does not tune (turned off,
/// a product too small to time, or no filesystem and no blocking waits, as in a browser).
fn tuned(gpu: &Gpu, m: MatMul, sizes: Sizes, a: &Shape, b: &Shape, y: &Shape) -> Result<Option<MatmulPlan>> {
    let flops = 2 * u64::from(sizes.rows) * u64::from(sizes.cols) * u64::from(sizes.inner) * u64::from(sizes.batch);
    if flops < crate::tune::MIN_FLOPS {
        return Ok(None);
    }
    let key = format!(
        "matmul {}{} {}x{}x{}x{} {}{}",
        u8::from(m.trans_a),
        u8::from(m.trans_b),
        sizes.batch,
        sizes.rows,
        sizes.inner,
        sizes.cols,
        a.rank(),
        b.rank()
    );
    // The rules' kernel first: the others' warm-up runs are measured against it.
    let mut candidates = MatmulPlan::candidates(gpu, m, a, b, y)?;
    let rule = ruled_kernel(gpu, sizes);
    candidates.sort_by_key(|plan| plan.kernel != rule);
    let named: Vec<(String, MatmulPlan)> = candidates.iter().map(|plan| (plan.choice(), *plan)).collect();
    let names: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
    let mut bench = None;
    let chosen = crate::tune::choose(gpu, &key, &names, |name| {
        let Some(index) = named.iter().position(|(n, _)| n == name) else { return Ok(None) };
        let bench = match &mut bench {
            Some(bench) => bench,
            None => bench.insert(Bench::new(gpu, a, b, y, &named)?),
        };
        bench.time(gpu, index, &named[index].1).map(Some)
    })?;
    Ok(chosen.and_then(|name| named.into_iter().find(|(n, _)| *n == name).map(|(_, plan)| plan)))
}

/// Operands and output of one product's shapes on the device, zero-filled, for timing its
/// candidate plans.
struct Bench {
    a: (GpuBuffer, Shape),
    b: (GpuBuffer, Shape),
    y: (GpuBuffer, Shape),
    partial: Option<GpuBuffer>,
    /// Each candidate's kernel, by its index, built on its first run.
    kernels: HashMap<usize, GpuKernel>,
}

impl Bench {
    fn new(gpu: &Gpu, a: &Shape, b: &Shape, y: &Shape, plans: &[(String, MatmulPlan)]) -> Result<Self> {
        let alloc =
            |shape: &Shape, label: &str| Ok::<_, Error>((gpu.alloc(shape.bytes().max(4), label)?, shape.clone()));
        let partial = plans.iter().filter_map(|(_, p)| p.scratch_bytes()).max();
        Ok(Bench {
            a: alloc(a, "tuning a")?,
            b: alloc(b, "tuning b")?,
            y: alloc(y, "tuning y")?,
            partial: partial.map(|bytes| gpu.alloc(bytes, "tuning partial products")).transpose()?,
            kernels: HashMap::new(),
        })
    }

    /// Seconds one run of candidate `index`, `plan`, takes on the device.
    fn time(&mut self, gpu: &Gpu, index: usize, plan: &MatmulPlan) -> Result<f64> {
        if !self.kernels.contains_key(&index) {
            let (a, b, y) = (bound(&self.a), bound(&self.b), bound(&self.y));
            let kernel = plan.kernel(gpu, &a, &b, &y, self.partial.as_ref())?;
            self.kernels.insert(index, kernel);
        }
        let dispatches: Vec<&Dispatch> = self.kernels[&index].dispatches.iter().collect();
        crate::tune::time(gpu, &dispatches)
    }
}

fn bound((buffer, shape): &(GpuBuffer, Shape)) -> B<'_> {
    B { buffer, shape, dtype: DType::F32 }
}

/// A product's K cut into `slices` runs of `steps_per_slice` steps of k (see
/// `MatmulKernel::k_per_step`; the last run possibly shorter, none empty).
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
    s.inner.div_ceil(kernel.k_per_step())
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
    let per_step = kernel.passes_per_step();
    let longest = slicing.map_or(total, |k| k.steps_per_slice);
    if (longest * per_step) < budget as u32 {
        return Ok(slicing);
    }
    let split = Slicing::of(total, (total * per_step).div_ceil(budget as u32 - 1));
    crate::check_loops(gpu, "matmul_sum_slices", split.slices as usize + 1, shapes)?;
    Ok(Some(split))
}

/// Whether and how to sum slices of K separately: the 16×16-tile and subgroup kernels give a
/// CPU adapter one SIMD lane per large tile, so a 2-D product with few tiles and a long K (a
/// weight gradient, `[64, 12544] · [12544, 288]`: 72 tiles of 16×16) would leave lanes and
/// cores idle. Each slice keeps at least `MIN_QUADS` steps of k.
fn k_slicing(kernel: MatmulKernel, s: Sizes) -> Option<Slicing> {
    const WANTED_INVOCATIONS: u32 = 512;
    const MIN_QUADS: u32 = 32;
    let large = matches!(
        kernel,
        MatmulKernel::Vec4Tile16 | MatmulKernel::Texels16 | MatmulKernel::Lanes32x8 | MatmulKernel::Lanes32x4
    );
    if s.batch != 1 || !large {
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
    plan: &MatmulPlan,
    slicing: Option<Slicing>,
    epilogue: Epilogue<'_>,
    [a, b, y]: [&B<'_>; 3],
) -> Result<Dispatch> {
    let (m, s) = (plan.m, plan.sizes);
    let texels = if plan.kernel.texels() { texel_uploads(gpu, a, b)? } else { None };
    let kernel = if texels.is_some() { plan.kernel } else { plan.kernel.without_texels() };
    // Folded, the grid's columns run through every sample and gid.z counts the slices alone.
    let folded = plan.folded && kernel == plan.kernel;
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
    let (samples, folded_batch) = if folded { (1, s.batch) } else { (s.batch, 0) };
    let depth = samples * slicing.map_or(1, |k| k.slices);
    let (block_x, block_y) = kernel.block();
    let invocations = [(s.cols * s.batch / samples).div_ceil(block_x), s.rows.div_ceil(block_y)];
    // The shared-memory kernel's workgroup is its tile; the subgroup kernels' one row of whole
    // subgroups; the others' is chosen to fit.
    let [wx, wy] = match kernel {
        MatmulKernel::Workgroup => [1, 1],
        MatmulKernel::Lanes32x8 | MatmulKernel::Lanes32x4 => {
            [invocations[0].next_multiple_of(LANES).clamp(LANES, 64), 1]
        }
        _ => workgroup_shape(invocations, depth, plan.workgroup_rows),
    };
    let workgroups = [invocations[0].div_ceil(wx), invocations[1].div_ceil(wy), depth];
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    if workgroups.iter().any(|&w| w > max) {
        return Err(Error::attribute(
            "matmul",
            format!("grid {workgroups:?} for y {} exceeds {max} workgroups per axis", y.shape),
        ));
    }
    let mut constants = vec![
        ("TRANS_A", f64::from(u8::from(m.trans_a))),
        ("TRANS_B", f64::from(u8::from(m.trans_b))),
        ("WORKGROUP_X", f64::from(wx)),
        ("WORKGROUP_Y", f64::from(wy)),
    ];
    constants.extend(epilogue.constants());
    if kernel.shader().name == MATMUL_LANES.name {
        constants.push(("FOLDED_BATCH", f64::from(folded_batch)));
    }
    let mut bindings = match texels {
        Some(_) => {
            constants.push(("TEXELS_PER_ROW", f64::from(TEXELS_PER_ROW)));
            vec![(3, y.buffer)]
        }
        None => vec![(1, a.buffer), (2, b.buffer), (3, y.buffer)],
    };
    bindings.extend(epilogue.bindings(a.buffer));
    let launch = Launch {
        shader: kernel.shader(),
        entry: kernel.entry(),
        constants,
        params: bytemuck::bytes_of(&params),
        bindings,
        workgroups,
    };
    let mut dispatch = match texels {
        Some(texels) => launch.build_with_texels(gpu, texels)?,
        None => launch.build(gpu)?,
    };
    if folded {
        dispatch.label = format!("{}/folded", dispatch.label);
    }
    Ok(dispatch)
}

/// `y[b] = Σ_s partial[b · slices + s]` over the K-slices of a split product, in order, finished
/// by `epilogue`.
fn sum_slices(
    gpu: &Gpu,
    partial: &GpuBuffer,
    slices: u32,
    s: Sizes,
    epilogue: Epilogue<'_>,
    y: &B<'_>,
) -> Result<Dispatch> {
    let params =
        Params { m: s.rows, n: s.cols, k: s.batch, steps_per_slice: 0, stride_a: 0, stride_b: 0, stride_y: 0, slices };
    let mut constants = vec![("WORKGROUP_X", 64.0), ("WORKGROUP_Y", 1.0)];
    constants.extend(epilogue.constants());
    // Four elements an invocation where rows are whole fours (and a bias per row is read in fours).
    let fours = s.cols.is_multiple_of(4) && (epilogue.row_bias.is_none() || s.rows.is_multiple_of(4));
    let (entry, per_invocation) = if fours { ("matmul_sum_slices_x4", 4) } else { ("matmul_sum_slices", 1) };
    let launch = Launch {
        shader: MATMUL,
        entry,
        constants,
        params: bytemuck::bytes_of(&params),
        bindings: [(1, partial), (3, y.buffer)].into_iter().chain(epilogue.bindings(partial)).collect(),
        workgroups: grid_1d(gpu, (s.batch * s.rows * s.cols / per_invocation) as usize),
    };
    launch.build(gpu)
}

/// `y = Σ_b partial[b]` over the planes of `partial [batch, rows, cols]`, in order: the sum of
/// a convolution's per-sample weight gradients.
pub(crate) fn sum_batches(gpu: &Gpu, partial: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let d = partial.shape.dims();
    let (batch, rows, cols) = match d {
        [batch, rows, cols] if rows * cols == y.shape.numel() => (*batch as u32, *rows as u32, *cols as u32),
        _ => {
            let expected = format!("[batch, rows, cols] planes of y's {} elements", y.shape.numel());
            return Err(Error::attribute(
                "matmul_sum_slices",
                format!("{} for y {}: expected {expected}", partial.shape, y.shape),
            ));
        }
    };
    crate::check_loops(gpu, "matmul_sum_slices", batch as usize + 1, &[partial.shape])?;
    let sizes = Sizes { rows, cols, inner: 0, batch: 1 };
    sum_slices(gpu, partial.buffer, batch, sizes, Epilogue::default(), y)
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

/// The workgroup's shape over `[x, y]` invocations: 64 of them, at most `rows` tall and no
/// taller than the rows of tiles there are (so none idles), halved while that leaves fewer than
/// 16 workgroups, so that every core of a CPU adapter stays busy.
fn workgroup_shape([x, y]: [u32; 2], batch: u32, rows: u32) -> [u32; 2] {
    let wy = y.next_power_of_two().clamp(1, rows);
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
