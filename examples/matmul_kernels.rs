//! Times every matmul kernel this adapter runs on one product, K whole, with the slicing the
//! rules would give it: for contributors comparing kernels without the tuner.
//!
//! `cargo run --release --example matmul_kernels -- M K N [LAYOUT] [BATCH]`, LAYOUT `00` (the
//! default), `10` (A transposed), `01` (B transposed) or `11`; BATCH products of one A with
//! BATCH Bs (a convolution's per-sample products), 1 by default, also timed with the batch
//! folded into the columns where the kernel can. Each kernel runs four times, texel copies
//! included; the fastest run is printed.

use kiln::core::{Backend, Bound, DType, MatMul, Shape};
use kiln::kernels::{GpuBackend, MatmulKernel, MatmulPlan};

const USAGE: &str = "usage: matmul_kernels M K N [LAYOUT: 00, 10, 01 or 11] [BATCH]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = |i: usize| -> Result<usize, String> {
        let arg = args.get(i).ok_or(USAGE)?;
        arg.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| format!("{arg}: expected a positive size; {USAGE}"))
    };
    let (m, k, n) = (size(0)?, size(1)?, size(2)?);
    let (trans_a, trans_b) = match args.get(3).map_or("00", String::as_str) {
        "00" => (false, false),
        "10" => (true, false),
        "01" => (false, true),
        "11" => (true, true),
        other => return Err(format!("{other}: expected a layout 00, 10, 01 or 11; {USAGE}").into()),
    };
    let batch = if args.len() > 4 { size(4)? } else { 1 };
    let backend = GpuBackend::new(kiln::gpu::Gpu::new_blocking()?);
    let gpu = backend.gpu();
    println!("{} · {batch} × {m}×{k}×{n}, layout {}{}", gpu.info().name, u8::from(trans_a), u8::from(trans_b));
    let a = Shape::new(if trans_a { [k, m] } else { [m, k] });
    let batched = |dims: [usize; 2]| if batch == 1 { Shape::new(dims) } else { Shape::new([batch, dims[0], dims[1]]) };
    let b = batched(if trans_b { [n, k] } else { [k, n] });
    let y = batched([m, n]);
    let alloc = |shape: &Shape, label: &str| gpu.alloc(shape.bytes(), label);
    let (a_buffer, b_buffer, y_buffer) = (alloc(&a, "a")?, alloc(&b, "b")?, alloc(&y, "y")?);
    let bound = |buffer, shape| Bound { buffer, shape, dtype: DType::F32 };
    let flops = 2.0 * (batch * m * n * k) as f64;
    let mm = MatMul { trans_a, trans_b };
    let mut plans = Vec::new();
    for kernel in MatmulKernel::ALL {
        match MatmulPlan::new(gpu, mm, Some(kernel), &a, &b, &y) {
            Ok(plan) => plans.push(plan),
            Err(e) => println!("{:28} cannot run: {e}", kernel.entry()),
        }
    }
    // The subgroup kernels with a batch sharing A folded into the columns.
    let candidates = MatmulPlan::candidates(gpu, mm, &a, &b, &y)?;
    plans.extend(candidates.into_iter().filter(|plan| plan.choice().ends_with("/folded")));
    for plan in plans {
        let partial = plan.scratch_bytes().map(|bytes| gpu.alloc(bytes, "partial products")).transpose()?;
        let mut fastest = f64::INFINITY;
        for _ in 0..4 {
            let (ba, bb, by) = (bound(&a_buffer, &a), bound(&b_buffer, &b), bound(&y_buffer, &y));
            let prepared = plan.kernel(gpu, &ba, &bb, &by, partial.as_ref())?;
            let start = std::time::Instant::now();
            backend.run(&[prepared], &[(&y_buffer, 4)])?;
            fastest = fastest.min(start.elapsed().as_secs_f64());
        }
        println!("{:28} {:9.2} ms {:8.2} GFLOP/s", plan.choice(), fastest * 1e3, flops / fastest / 1e9);
    }
    Ok(())
}
