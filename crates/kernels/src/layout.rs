use bytemuck::{Pod, Zeroable};
use kiln_core::{Result, contiguous_strides};
use kiln_gpu::{Dispatch, Gpu};

use crate::binary::broadcast_strides;
use crate::{B, LAYOUT, Launch, grid_1d, pack8};

pub const ENTRY_POINTS: &[&str] =
    &["transpose", "broadcast_to", "slice", "slice_x4", "slice_backward", "slice_backward_x4", "concat_part", "assign"];
pub const PARAMS: &[(&str, usize)] = &[("Params", size_of::<Params>()), ("SliceBack", size_of::<SliceBack>())];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    rank: u32,
    scale: f32,
    offset: u32,
    shape: [u32; 8],
    strides: [u32; 8],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SliceBack {
    n: u32,
    full: u32,
    inner: u32,
    start: u32,
    len: u32,
    _pad: [u32; 3],
}

fn launch(gpu: &Gpu, entry: &'static str, params: &[u8], x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    launch_over(gpu, entry, params, x, y, y.shape.numel())
}

/// A layout kernel of `invocations` invocations.
fn launch_over(
    gpu: &Gpu,
    entry: &'static str,
    params: &[u8],
    x: &B<'_>,
    y: &B<'_>,
    invocations: usize,
) -> Result<Dispatch> {
    let launch = Launch {
        shader: LAYOUT,
        entry,
        constants: vec![],
        params,
        bindings: vec![(1, x.buffer), (2, y.buffer)],
        workgroups: grid_1d(gpu, invocations),
    };
    launch.build(gpu)
}

/// `y[i] = scale · x[offset + Σ_k coord_k(i)·strides_k]` over the shape of `y`.
fn gather(
    gpu: &Gpu,
    entry: &'static str,
    strides: &[usize],
    offset: usize,
    scale: f32,
    x: &B<'_>,
    y: &B<'_>,
) -> Result<Dispatch> {
    let params = Params {
        n: y.shape.numel() as u32,
        rank: y.shape.rank() as u32,
        scale,
        offset: offset as u32,
        shape: pack8(y.shape.dims()),
        strides: pack8(strides),
    };
    launch(gpu, entry, bytemuck::bytes_of(&params), x, y)
}

/// Axis k of `y` is axis `perm[k]` of `x`.
pub fn transpose(gpu: &Gpu, perm: &[usize], x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let x_strides = contiguous_strides(x.shape.dims());
    let strides: Vec<usize> = perm.iter().map(|&p| x_strides[p]).collect();
    gather(gpu, "transpose", &strides, 0, 1.0, x, y)
}

/// `y = scale · x` broadcast to the shape of `y`.
pub fn broadcast_to(gpu: &Gpu, scale: f32, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    gather(gpu, "broadcast_to", &broadcast_strides(y.shape, x.shape), 0, scale, x, y)
}

/// Elements `start..` of `axis` (as long as `y` is along it).
pub fn slice(gpu: &Gpu, axis: usize, start: usize, x: &B<'_>, y: &B<'_>) -> Result<Dispatch> {
    let (whole, part) = (x.shape.dims(), y.shape.dims());
    if let Some(params) = slice_in_fours(whole, axis, start, part[axis], y.shape.numel()) {
        return launch_over(gpu, "slice_x4", bytemuck::bytes_of(&params), x, y, params.n as usize);
    }
    let strides = contiguous_strides(whole);
    gather(gpu, "slice", &strides, start * strides[axis], 1.0, x, y)
}

/// The geometry of a slice of `len` at `start` along `axis` of `whole`, counted in fours of
/// the `elements` its kernel writes, where every edge of the slice and of the rows along the
/// axis falls at a multiple of 4 elements (each four of the slice is then a four of the
/// whole); `None` elsewhere.
fn slice_in_fours(whole: &[usize], axis: usize, start: usize, len: usize, elements: usize) -> Option<SliceBack> {
    let inner = whole[axis + 1..].iter().product::<usize>();
    let fours = len * inner > 0 && [start, len, whole[axis]].iter().all(|&at| (at * inner).is_multiple_of(4));
    fours.then(|| slice_geometry(whole, axis, start, len, elements / 4))
}

/// `whole` viewed as [outer, full, inner] around `axis`, with the stretch `start..start + len`
/// along it, for a kernel of `n` invocations.
fn slice_geometry(whole: &[usize], axis: usize, start: usize, len: usize, n: usize) -> SliceBack {
    SliceBack {
        n: n as u32,
        full: whole[axis] as u32,
        inner: whole[axis + 1..].iter().product::<usize>() as u32,
        start: start as u32,
        len: len as u32,
        _pad: [0; 3],
    }
}

/// `dy` placed at `start..` of `axis` in a zero tensor shaped like `dx`.
pub fn slice_backward(gpu: &Gpu, axis: usize, start: usize, dy: &B<'_>, dx: &B<'_>) -> Result<Dispatch> {
    let dims = dx.shape.dims();
    let len = dy.shape.dims()[axis];
    if let Some(params) = slice_in_fours(dims, axis, start, len, dx.shape.numel()) {
        return launch_over(gpu, "slice_backward_x4", bytemuck::bytes_of(&params), dy, dx, params.n as usize);
    }
    let params = slice_geometry(dims, axis, start, len, dx.shape.numel());
    launch(gpu, "slice_backward", bytemuck::bytes_of(&params), dy, dx)
}

/// `parts` one after another along `axis` of `y`: one dispatch per part, each writing its own
/// stretch of `y`.
pub fn concat(gpu: &Gpu, axis: usize, parts: &[B<'_>], y: &B<'_>) -> Result<Vec<Dispatch>> {
    let dims = y.shape.dims();
    let mut start = 0;
    let mut dispatches = Vec::with_capacity(parts.len());
    for part in parts {
        let len = part.shape.dims()[axis];
        let params = slice_geometry(dims, axis, start, len, part.shape.numel());
        let launch = Launch {
            shader: LAYOUT,
            entry: "concat_part",
            constants: vec![],
            params: bytemuck::bytes_of(&params),
            bindings: vec![(1, part.buffer), (2, y.buffer)],
            workgroups: grid_1d(gpu, part.shape.numel()),
        };
        dispatches.push(launch.build(gpu)?);
        start += len;
    }
    Ok(dispatches)
}

/// In place: `variable = value`.
pub fn assign(gpu: &Gpu, variable: &B<'_>, value: &B<'_>) -> Result<Dispatch> {
    let n = variable.shape.numel() as u32;
    let params = Params { n, rank: 0, scale: 1.0, offset: 0, shape: [0; 8], strides: [0; 8] };
    launch(gpu, "assign", bytemuck::bytes_of(&params), value, variable)
}
