// 2-D convolution over NCHW tensors with [O, C/g, kH, kW] weights, and its gradients. Every
// kernel gathers, one invocation per element it writes, so results are deterministic.
//   conv2d:                  y[n,o,oh,ow] = b[o] + Σ_{c∈group(o), i, j} x[n,c,ih,iw]·w[o,c',i,j]
//                            with ih = oh·s - p + i·d (taps outside x read zero)
//   conv2d_backward_input:   dx[n,c,ih,iw] = Σ_{o∈group(c), i, j} dy[n,o,oh,ow]·w[o,c',i,j] over the
//                            taps with oh·s = ih + p - i·d inside dy (dy may stop short of the
//                            full output: the rest counts as zero)
//   conv_transpose2d:        the same gather, plus a bias: the adjoint of conv2d
//   conv2d_backward_weight:  dw[o,c',i,j] = Σ_{n, oh, ow} dy[n,o,oh,ow]·x[n,c,ih,iw], one workgroup
//                            per weight
// Without groups, the host lowers each of these to one matrix product (matmul.wgsl) over the
// whole batch, with K = C·kH·kW taps and P = H'·W' output positions per sample:
//   conv2d_im2col:       cols[(c,i,j), n, (oh,ow)] = x[n, c, ih, iw] (zero in the padding)
//   conv2d_col2im:       dx[n, c, ih, iw] = Σ over the taps reaching it of cols[(c,i,j), n, (oh,ow)]
//                        (+ b[c], for conv_transpose2d)
//   conv2d_from_rows:    y[n, o, p] = rows[o, n, p] + b[o]  (the product's [O, N·P] back to NCHW)
//   conv2d_to_rows:      rows[o, n, p] = dy[n, o, p]
// `x_*` always describe the convolution's input side and `y_*` its output side, whichever
// tensor plays each role. Bindings: 0 params, 1 x (or dy, or cols), 2 w, 3 out, 4 bias, 5 dy.

struct Params {
    batch: u32,
    x_c: u32,
    x_h: u32,
    x_w: u32,
    y_c: u32,
    y_h: u32,
    y_w: u32,
    groups: u32,
    k_h: u32,
    k_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    has_bias: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// The input coordinate read by output coordinate `o` through tap `k` along one axis, as i32
// (negative or past `size` when the tap lands in the padding).
fn input_at(o: u32, k: u32, stride: u32, pad: u32, dil: u32) -> i32 {
    return i32(o * stride + k * dil) - i32(pad);
}

fn bias_of(o: u32) -> f32 {
    return select(0.0, bias[o], p.has_bias != 0u);
}

@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let ow = e % p.y_w;
    let oh = (e / p.y_w) % p.y_h;
    let o = (e / (p.y_w * p.y_h)) % p.y_c;
    let n = e / (p.y_w * p.y_h * p.y_c);
    let per_group = p.x_c / p.groups;
    let c0 = o / (p.y_c / p.groups) * per_group;
    var acc = bias_of(o);
    for (var c = 0u; c < per_group; c++) {
        let x_plane = (n * p.x_c + c0 + c) * p.x_h;
        let w_plane = (o * per_group + c) * p.k_h;
        for (var i = 0u; i < p.k_h; i++) {
            let ih = input_at(oh, i, p.stride_h, p.pad_h, p.dil_h);
            if (ih < 0 || ih >= i32(p.x_h)) { continue; }
            for (var j = 0u; j < p.k_w; j++) {
                let iw = input_at(ow, j, p.stride_w, p.pad_w, p.dil_w);
                if (iw < 0 || iw >= i32(p.x_w)) { continue; }
                acc += x[(x_plane + u32(ih)) * p.x_w + u32(iw)] * w[(w_plane + i) * p.k_w + j];
            }
        }
    }
    out[e] = acc;
}

// Σ over the taps reaching input element e of dy (bound at 1, as `x`) times w.
fn gather_input(e: u32) -> f32 {
    let iw = e % p.x_w;
    let ih = (e / p.x_w) % p.x_h;
    let c = (e / (p.x_w * p.x_h)) % p.x_c;
    let n = e / (p.x_w * p.x_h * p.x_c);
    let per_group = p.x_c / p.groups;
    let outs = p.y_c / p.groups;
    let o0 = c / per_group * outs;
    let ci = c % per_group;
    var acc = 0.0;
    for (var i = 0u; i < p.k_h; i++) {
        let th = i32(ih + p.pad_h) - i32(i * p.dil_h);
        if (th < 0 || u32(th) % p.stride_h != 0u || u32(th) / p.stride_h >= p.y_h) { continue; }
        let oh = u32(th) / p.stride_h;
        for (var j = 0u; j < p.k_w; j++) {
            let tw = i32(iw + p.pad_w) - i32(j * p.dil_w);
            if (tw < 0 || u32(tw) % p.stride_w != 0u || u32(tw) / p.stride_w >= p.y_w) { continue; }
            let ow = u32(tw) / p.stride_w;
            for (var o = o0; o < o0 + outs; o++) {
                acc += x[((n * p.y_c + o) * p.y_h + oh) * p.y_w + ow] * w[((o * per_group + ci) * p.k_h + i) * p.k_w + j];
            }
        }
    }
    return acc;
}

@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = gather_input(e);
}

@compute @workgroup_size(64)
fn conv_transpose2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = gather_input(e) + bias_of((e / (p.x_w * p.x_h)) % p.x_c);
}

var<workgroup> partial: array<f32, 64>;

// One workgroup per weight: its 64 invocations stride over the output positions (each
// visiting every sample), then add their partial sums in a tree. Long reductions (a 1×1
// kernel over a large batch) stay accurate, and GPUs get one workgroup per weight.
@compute @workgroup_size(64)
fn conv2d_backward_weight(
    @builtin(workgroup_id) wid: vec3u,
    @builtin(num_workgroups) groups: vec3u,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = wid.y * groups.x + wid.x;
    let valid = e < p.n;
    let j = e % p.k_w;
    let i = (e / p.k_w) % p.k_h;
    let per_group = p.x_c / p.groups;
    let ci = (e / (p.k_w * p.k_h)) % per_group;
    let o = e / (p.k_w * p.k_h * per_group);
    let c = o / (p.y_c / p.groups) * per_group + ci;
    var acc = 0.0;
    for (var pos = lid; pos < p.y_h * p.y_w; pos += 64u) {
        let ih = input_at(pos / p.y_w, i, p.stride_h, p.pad_h, p.dil_h);
        let iw = input_at(pos % p.y_w, j, p.stride_w, p.pad_w, p.dil_w);
        if (valid && ih >= 0 && ih < i32(p.x_h) && iw >= 0 && iw < i32(p.x_w)) {
            let x_at = (c * p.x_h + u32(ih)) * p.x_w + u32(iw);
            let dy_at = o * p.y_h * p.y_w + pos;
            for (var n = 0u; n < p.batch; n++) {
                acc += dy[n * p.y_c * p.y_h * p.y_w + dy_at] * x[n * p.x_c * p.x_h * p.x_w + x_at];
            }
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u && valid) {
        out[e] = partial[0];
    }
}

@compute @workgroup_size(64)
fn conv2d_im2col(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let positions = p.y_h * p.y_w;
    let pos = e % positions;
    let n = (e / positions) % p.batch;
    let k = e / (positions * p.batch);
    let j = k % p.k_w;
    let i = (k / p.k_w) % p.k_h;
    let c = k / (p.k_w * p.k_h);
    let ih = input_at(pos / p.y_w, i, p.stride_h, p.pad_h, p.dil_h);
    let iw = input_at(pos % p.y_w, j, p.stride_w, p.pad_w, p.dil_w);
    let inside = ih >= 0 && ih < i32(p.x_h) && iw >= 0 && iw < i32(p.x_w);
    let at = ((n * p.x_c + c) * p.x_h + u32(max(ih, 0))) * p.x_w + u32(max(iw, 0));
    out[e] = select(0.0, x[min(at, p.batch * p.x_c * p.x_h * p.x_w - 1u)], inside);
}

@compute @workgroup_size(64)
fn conv2d_col2im(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let iw = e % p.x_w;
    let ih = (e / p.x_w) % p.x_h;
    let c = (e / (p.x_w * p.x_h)) % p.x_c;
    let n = e / (p.x_w * p.x_h * p.x_c);
    let positions = p.y_h * p.y_w;
    var acc = 0.0;
    for (var i = 0u; i < p.k_h; i++) {
        let th = i32(ih + p.pad_h) - i32(i * p.dil_h);
        if (th < 0 || u32(th) % p.stride_h != 0u || u32(th) / p.stride_h >= p.y_h) { continue; }
        for (var j = 0u; j < p.k_w; j++) {
            let tw = i32(iw + p.pad_w) - i32(j * p.dil_w);
            if (tw < 0 || u32(tw) % p.stride_w != 0u || u32(tw) / p.stride_w >= p.y_w) { continue; }
            let k = (c * p.k_h + i) * p.k_w + j;
            acc += x[(k * p.batch + n) * positions + (u32(th) / p.stride_h) * p.y_w + u32(tw) / p.stride_w];
        }
    }
    out[e] = acc + bias_of(c);
}

// y[n, o, p] = rows[o, n, p] (bound as x) + b[o].
@compute @workgroup_size(64)
fn conv2d_from_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let positions = p.y_h * p.y_w;
    let pos = e % positions;
    let o = (e / positions) % p.y_c;
    let n = e / (positions * p.y_c);
    out[e] = x[(o * p.batch + n) * positions + pos] + bias_of(o);
}

// rows[o, n, p] = dy[n, o, p].
@compute @workgroup_size(64)
fn conv2d_to_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let positions = p.y_h * p.y_w;
    let pos = e % positions;
    let n = (e / positions) % p.batch;
    let o = e / (positions * p.batch);
    out[e] = dy[(n * p.y_c + o) * positions + pos];
}

// Depthwise convolutions (groups = C, each output channel o reading input channel o / mult):
// four adjacent output columns per invocation share every weight load and the row checks.
//   depthwise_conv2d:                 y[n,o,oh,ow..ow+3]
//   depthwise_conv2d_backward_input:  dx[n,c,ih,iw..iw+3] = Σ_{o of c, i, j} dy[n,o,oh,ow]·w[o,0,i,j]
fn depthwise_tap(n: u32, c: u32, ih: i32, iw: i32) -> f32 {
    if (ih < 0 || ih >= i32(p.x_h) || iw < 0 || iw >= i32(p.x_w)) { return 0.0; }
    return x[((n * p.x_c + c) * p.x_h + u32(ih)) * p.x_w + u32(iw)];
}

@compute @workgroup_size(64)
fn depthwise_conv2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    let quads = (p.y_w + 3u) / 4u;
    if (e >= p.n) { return; }
    let ow0 = (e % quads) * 4u;
    let oh = (e / quads) % p.y_h;
    let o = (e / (quads * p.y_h)) % p.y_c;
    let n = e / (quads * p.y_h * p.y_c);
    let c = o / (p.y_c / p.x_c);
    var acc = vec4f(bias_of(o));
    for (var i = 0u; i < p.k_h; i++) {
        let ih = input_at(oh, i, p.stride_h, p.pad_h, p.dil_h);
        if (ih < 0 || ih >= i32(p.x_h)) { continue; }
        for (var j = 0u; j < p.k_w; j++) {
            let weight = w[(o * p.k_h + i) * p.k_w + j];
            let iw = input_at(ow0, j, p.stride_w, p.pad_w, p.dil_w);
            let s = i32(p.stride_w);
            let taps = vec4f(depthwise_tap(n, c, ih, iw), depthwise_tap(n, c, ih, iw + s),
                             depthwise_tap(n, c, ih, iw + 2 * s), depthwise_tap(n, c, ih, iw + 3 * s));
            acc += weight * taps;
        }
    }
    let row = ((n * p.y_c + o) * p.y_h + oh) * p.y_w;
    for (var q = 0u; q < 4u && ow0 + q < p.y_w; q++) {
        out[row + ow0 + q] = acc[q];
    }
}

// dy[n,o,oh,ow] (bound at 5) where the tap lands inside dy, else 0.
fn depthwise_gradient(n: u32, o: u32, th: i32, tw: i32) -> f32 {
    if (th < 0 || tw < 0) { return 0.0; }
    let sh = p.stride_h;
    let sw = p.stride_w;
    if (u32(th) % sh != 0u || u32(tw) % sw != 0u || u32(th) / sh >= p.y_h || u32(tw) / sw >= p.y_w) { return 0.0; }
    return dy[((n * p.y_c + o) * p.y_h + u32(th) / sh) * p.y_w + u32(tw) / sw];
}

@compute @workgroup_size(64)
fn depthwise_conv2d_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    let quads = (p.x_w + 3u) / 4u;
    if (e >= p.n) { return; }
    let iw0 = (e % quads) * 4u;
    let ih = (e / quads) % p.x_h;
    let c = (e / (quads * p.x_h)) % p.x_c;
    let n = e / (quads * p.x_h * p.x_c);
    let mult = p.y_c / p.x_c;
    var acc = vec4f(0.0);
    for (var m = 0u; m < mult; m++) {
        let o = c * mult + m;
        for (var i = 0u; i < p.k_h; i++) {
            let th = i32(ih + p.pad_h) - i32(i * p.dil_h);
            for (var j = 0u; j < p.k_w; j++) {
                let weight = w[(o * p.k_h + i) * p.k_w + j];
                let tw = i32(iw0 + p.pad_w) - i32(j * p.dil_w);
                let grads = vec4f(depthwise_gradient(n, o, th, tw), depthwise_gradient(n, o, th, tw + 1),
                                  depthwise_gradient(n, o, th, tw + 2), depthwise_gradient(n, o, th, tw + 3));
                acc += weight * grads;
            }
        }
    }
    let row = ((n * p.x_c + c) * p.x_h + ih) * p.x_w;
    for (var q = 0u; q < 4u && iw0 + q < p.x_w; q++) {
        out[row + iw0 + q] = acc[q];
    }
}
