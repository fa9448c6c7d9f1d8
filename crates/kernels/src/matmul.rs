use bytemuck::{Pod, Zeroable};
use kiln_core::{Error, MatMul, Result};
use kiln_gpu::{Dispatch, Gpu};

use crate::{B, Launch, MATMUL};

pub const ENTRY_POINTS: &[&str] = &["matmul_naive", "matmul", "matmul_vec4", "matmul_vec4_16x16"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad0: u32,
    stride_a: u32,
    stride_b: u32,
    stride_y: u32,
    _pad1: u32,
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
}

impl MatmulKernel {
    fn entry(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "matmul_naive",
            MatmulKernel::Blocked => "matmul",
            MatmulKernel::Vec4 => "matmul_vec4",
            MatmulKernel::Vec4Tile16 => "matmul_vec4_16x16",
        }
    }

    /// Outputs per invocation along x (columns) and y (rows).
    fn block(self) -> (u32, u32) {
        match self {
            MatmulKernel::Naive => (1, 1),
            MatmulKernel::Blocked => (4, 4),
            MatmulKernel::Vec4 => (4, 4),
            MatmulKernel::Vec4Tile16 => (16, 16),
        }
    }
}

/// `y = op(a)·op(b)` with `kernel`, or the fastest kernel the shapes allow.
pub fn matmul_dispatch(
    gpu: &Gpu,
    m: MatMul,
    kernel: Option<MatmulKernel>,
    a: &B<'_>,
    b: &B<'_>,
    y: &B<'_>,
) -> Result<Dispatch> {
    let dims = y.shape.dims();
    let (rows, cols) = (dims[dims.len() - 2] as u32, dims[dims.len() - 1] as u32);
    let a_dims = a.shape.dims();
    let inner = (if m.trans_a { a_dims[a_dims.len() - 2] } else { a_dims[a_dims.len() - 1] }) as u32;
    let batch = if dims.len() == 3 { dims[0] as u32 } else { 1 };
    crate::check_loops(gpu, "matmul", inner as usize, &[a.shape, b.shape])?;
    let aligned = [rows, cols, inner].iter().all(|d| d.is_multiple_of(4));

    let kernel = kernel.unwrap_or(match aligned {
        // A CPU adapter runs an invocation as one SIMD lane: heavy tiles pay there.
        true if gpu.info().device_type == wgpu::DeviceType::Cpu => MatmulKernel::Vec4Tile16,
        true => MatmulKernel::Vec4,
        false => MatmulKernel::Blocked,
    });
    if matches!(kernel, MatmulKernel::Vec4 | MatmulKernel::Vec4Tile16) && !aligned {
        return Err(Error::attribute(
            "matmul",
            format!("{} needs M, K, N multiples of 4, got {rows}, {inner}, {cols}", kernel.entry()),
        ));
    }
    let params = Params {
        m: rows,
        n: cols,
        k: inner,
        _pad0: 0,
        stride_a: if a.shape.rank() == 3 { rows * inner } else { 0 },
        stride_b: if b.shape.rank() == 3 { inner * cols } else { 0 },
        stride_y: rows * cols,
        _pad1: 0,
    };
    let (block_x, block_y) = kernel.block();
    let invocations = [cols.div_ceil(block_x), rows.div_ceil(block_y)];
    let [wx, wy] = workgroup_shape(invocations, batch);
    let workgroups = [invocations[0].div_ceil(wx), invocations[1].div_ceil(wy), batch];
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    if workgroups.iter().any(|&w| w > max) {
        return Err(Error::attribute(
            "matmul",
            format!("grid {workgroups:?} for y {} exceeds {max} workgroups per axis", y.shape),
        ));
    }
    let launch = Launch {
        shader: MATMUL,
        entry: kernel.entry(),
        constants: vec![
            ("TRANS_A", f64::from(u8::from(m.trans_a))),
            ("TRANS_B", f64::from(u8::from(m.trans_b))),
            ("WORKGROUP_X", f64::from(wx)),
            ("WORKGROUP_Y", f64::from(wy)),
        ],
        params: bytemuck::bytes_of(&params),
        bindings: vec![(1, a.buffer), (2, b.buffer), (3, y.buffer)],
        workgroups,
    };
    launch.build(gpu)
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
