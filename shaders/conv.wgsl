// 2-D convolution over NCHW tensors with [O, C/g, kH, kW] weights, and its gradients. Every
// kernel gathers, one invocation per element it writes (or per four, the `_x4` forms), so
// results are deterministic.
//   conv2d:                  y[n,o,oh,ow] = b[o] + Σ_{c∈group(o), i, j} x[n,c,ih,iw]·w[o,c',i,j]
//                            with ih = oh·s - p + i·d (taps outside x read zero)
//   conv2d_backward_input:   dx[n,c,ih,iw] = Σ_{o∈group(c), i, j} dy[n,o,oh,ow]·w[o,c',i,j] over the
//                            taps with oh·s = ih + p - i·d inside dy (dy may stop short of the
//                            full output: the rest counts as zero)
//   conv_transpose2d:        the same gather, plus a bias: the adjoint of conv2d
//   conv2d_backward_weight:  dw[o,c',i,j] = Σ_{n, oh, ow} dy[n,o,oh,ow]·x[n,c,ih,iw], one workgroup
//                            per weight
// Without groups, the host lowers each of these to matrix products (matmul.wgsl) with
// K = C·kH·kW taps and P = H'·W' output positions per sample: one product per sample, reading
// and writing NCHW tensors as they are (`[N, O, P]`), where P is whole fours and long enough
// (the host decides); else one product over the whole batch, through rows `[O, N·P]`. The columns are laid out to match:
// per sample, cols[n, (c,i,j), (oh,ow)] (SAMPLE_TAPS rows per sample), or over the batch,
// cols[(c,i,j), n, (oh,ow)] (SAMPLE_TAPS 0).
//   conv2d_im2col:       cols[.., (c,i,j), .., (oh,ow)] = x[n, c, ih, iw] (zero in the padding,
//                        and in any rows the host adds to make K a multiple of 4)
//   conv2d_col2im:       dx[n, c, ih, iw] = Σ over the taps reaching it of cols[.., (c,i,j), .., (oh,ow)]
//                        (+ b[c], for conv_transpose2d)
//   conv2d_from_rows:    y[n, o, p] = rows[o, n, p] + b[o]  (the product's [O, N·P] back to NCHW)
// conv2d, depthwise_conv2d and conv2d_from_rows end in `epilogue`: with RELU, they compute
// conv2d_relu, the convolution fused with the ReLU after it.
//   conv2d_to_rows:      rows[o, n, p] = dy[n, o, p]
// `X_*` always describe the convolution's input side and `Y_*` its output side, whichever
// tensor plays each role. Bindings: 0 params, 1 x (or dy, or cols), 2 w, 3 out, 4 bias, 5 dy.

// The geometry, fixed per pipeline: Mesa's CPU drivers divide by a runtime value one lane at
// a time, through a scalar division, but by a constant with a few vector multiplications.
override BATCH: u32;
override X_C: u32;
override X_H: u32;
override X_W: u32;
override Y_C: u32;
override Y_H: u32;
override Y_W: u32;
override GROUPS: u32;
override K_H: u32;
override K_W: u32;
override STRIDE_H: u32;
override STRIDE_W: u32;
override PAD_H: u32;
override PAD_W: u32;
override DIL_H: u32;
override DIL_W: u32;
// 1: the forward kernels store max(y, 0) (a convolution fused with the ReLU after it).
override RELU: u32 = 0u;
// The rows of columns per sample (the taps, padded), or 0 for columns over the whole batch.
override SAMPLE_TAPS: u32 = 0u;

struct Params {
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

// What a forward kernel stores for output value v: v, or with RELU its ReLU, computed as the
// relu kernel computes it.
fn epilogue(v: f32) -> f32 {
    if (RELU != 0u) { return max(v, 0.0); }
    return v;
}

fn epilogue4(v: vec4f) -> vec4f {
    if (RELU != 0u) { return max(v, vec4f(0.0)); }
    return v;
}

@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let ow = e % Y_W;
    let oh = (e / Y_W) % Y_H;
    let o = (e / (Y_W * Y_H)) % Y_C;
    let n = e / (Y_W * Y_H * Y_C);
    let per_group = X_C / GROUPS;
    let c0 = o / (Y_C / GROUPS) * per_group;
    var acc = bias_of(o);
    for (var c = 0u; c < per_group; c++) {
        let x_plane = (n * X_C + c0 + c) * X_H;
        let w_plane = (o * per_group + c) * K_H;
        for (var i = 0u; i < K_H; i++) {
            let ih = input_at(oh, i, STRIDE_H, PAD_H, DIL_H);
            if (ih < 0 || ih >= i32(X_H)) { continue; }
            for (var j = 0u; j < K_W; j++) {
                let iw = input_at(ow, j, STRIDE_W, PAD_W, DIL_W);
                if (iw < 0 || iw >= i32(X_W)) { continue; }
                acc += x[(x_plane + u32(ih)) * X_W + u32(iw)] * w[(w_plane + i) * K_W + j];
            }
        }
    }
    out[e] = epilogue(acc);
}

// Σ over the taps reaching input element e of dy (bound at 1, as `x`) times w.
fn gather_input(e: u32) -> f32 {
    let iw = e % X_W;
    let ih = (e / X_W) % X_H;
    let c = (e / (X_W * X_H)) % X_C;
    let n = e / (X_W * X_H * X_C);
    let per_group = X_C / GROUPS;
    let outs = Y_C / GROUPS;
    let o0 = c / per_group * outs;
    let ci = c % per_group;
    var acc = 0.0;
    for (var i = 0u; i < K_H; i++) {
        let th = i32(ih + PAD_H) - i32(i * DIL_H);
        if (th < 0 || u32(th) % STRIDE_H != 0u || u32(th) / STRIDE_H >= Y_H) { continue; }
        let oh = u32(th) / STRIDE_H;
        for (var j = 0u; j < K_W; j++) {
            let tw = i32(iw + PAD_W) - i32(j * DIL_W);
            if (tw < 0 || u32(tw) % STRIDE_W != 0u || u32(tw) / STRIDE_W >= Y_W) { continue; }
            let ow = u32(tw) / STRIDE_W;
            for (var o = o0; o < o0 + outs; o++) {
                acc += x[((n * Y_C + o) * Y_H + oh) * Y_W + ow] * w[((o * per_group + ci) * K_H + i) * K_W + j];
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
    out[e] = gather_input(e) + bias_of((e / (X_W * X_H)) % X_C);
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
    let j = e % K_W;
    let i = (e / K_W) % K_H;
    let per_group = X_C / GROUPS;
    let ci = (e / (K_W * K_H)) % per_group;
    let o = e / (K_W * K_H * per_group);
    let c = o / (Y_C / GROUPS) * per_group + ci;
    var acc = 0.0;
    for (var pos = lid; pos < Y_H * Y_W; pos += 64u) {
        let ih = input_at(pos / Y_W, i, STRIDE_H, PAD_H, DIL_H);
        let iw = input_at(pos % Y_W, j, STRIDE_W, PAD_W, DIL_W);
        if (valid && ih >= 0 && ih < i32(X_H) && iw >= 0 && iw < i32(X_W)) {
            let x_at = (c * X_H + u32(ih)) * X_W + u32(iw);
            let dy_at = o * Y_H * Y_W + pos;
            for (var n = 0u; n < BATCH; n++) {
                acc += dy[n * Y_C * Y_H * Y_W + dy_at] * x[n * X_C * X_H * X_W + x_at];
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

// The lowering's element e of each kind, shared by the one-element and four-element kernels.
fn im2col_at(e: u32) -> f32 {
    let positions = Y_H * Y_W;
    let pos = e % positions;
    var n = (e / positions) % BATCH;
    var k = e / (positions * BATCH);
    if (SAMPLE_TAPS != 0u) {
        // max(…, 1): the constant's other value must not divide by zero where it is folded.
        k = (e / positions) % max(SAMPLE_TAPS, 1u);
        n = e / (positions * max(SAMPLE_TAPS, 1u));
    }
    let j = k % K_W;
    let i = (k / K_W) % K_H;
    let c = k / (K_W * K_H);
    let ih = input_at(pos / Y_W, i, STRIDE_H, PAD_H, DIL_H);
    let iw = input_at(pos % Y_W, j, STRIDE_W, PAD_W, DIL_W);
    // Rows past the taps (padding K to a multiple of 4) are zero.
    let inside = c < X_C && ih >= 0 && ih < i32(X_H) && iw >= 0 && iw < i32(X_W);
    let at = ((n * X_C + c) * X_H + u32(max(ih, 0))) * X_W + u32(max(iw, 0));
    return select(0.0, x[min(at, BATCH * X_C * X_H * X_W - 1u)], inside);
}

fn col2im_at(e: u32) -> f32 {
    let iw = e % X_W;
    let ih = (e / X_W) % X_H;
    let c = (e / (X_W * X_H)) % X_C;
    let n = e / (X_W * X_H * X_C);
    let positions = Y_H * Y_W;
    var acc = 0.0;
    for (var i = 0u; i < K_H; i++) {
        let th = i32(ih + PAD_H) - i32(i * DIL_H);
        if (th < 0 || u32(th) % STRIDE_H != 0u || u32(th) / STRIDE_H >= Y_H) { continue; }
        for (var j = 0u; j < K_W; j++) {
            let tw = i32(iw + PAD_W) - i32(j * DIL_W);
            if (tw < 0 || u32(tw) % STRIDE_W != 0u || u32(tw) / STRIDE_W >= Y_W) { continue; }
            let k = (c * K_H + i) * K_W + j;
            let row = select(k * BATCH + n, n * SAMPLE_TAPS + k, SAMPLE_TAPS != 0u);
            acc += x[row * positions + (u32(th) / STRIDE_H) * Y_W + u32(tw) / STRIDE_W];
        }
    }
    return acc + bias_of(c);
}

@compute @workgroup_size(64)
fn conv2d_im2col(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = im2col_at(e);
}

@compute @workgroup_size(64)
fn conv2d_col2im(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = col2im_at(e);
}

// y[n, o, p] = rows[o, n, p] (bound as x) + b[o].
@compute @workgroup_size(64)
fn conv2d_from_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let positions = Y_H * Y_W;
    let pos = e % positions;
    let o = (e / positions) % Y_C;
    let n = e / (positions * Y_C);
    out[e] = epilogue(x[(o * BATCH + n) * positions + pos] + bias_of(o));
}

// rows[o, n, p] = dy[n, o, p].
@compute @workgroup_size(64)
fn conv2d_to_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let positions = Y_H * Y_W;
    let pos = e % positions;
    let n = (e / positions) % BATCH;
    let o = e / (positions * BATCH);
    out[e] = dy[(n * Y_C + o) * positions + pos];
}

// Four-element forms, for outputs of a multiple of 4 elements (p.n counts fours): one 4-wide
// store where Mesa's CPU drivers would store lane by lane, and for the row copies, whose runs
// of positions are then whole fours, one 4-wide load.
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(5) var<storage, read> dy4: array<vec4f>;

@compute @workgroup_size(64)
fn conv2d_im2col_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let q = flat(gid, groups);
    if (q >= p.n) { return; }
    let e = 4u * q;
    out4[q] = vec4f(im2col_at(e), im2col_at(e + 1u), im2col_at(e + 2u), im2col_at(e + 3u));
}

@compute @workgroup_size(64)
fn conv2d_col2im_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let q = flat(gid, groups);
    if (q >= p.n) { return; }
    let e = 4u * q;
    out4[q] = vec4f(col2im_at(e), col2im_at(e + 1u), col2im_at(e + 2u), col2im_at(e + 3u));
}

// With H'·W' a multiple of 4.
@compute @workgroup_size(64)
fn conv2d_from_rows_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let q = flat(gid, groups);
    if (q >= p.n) { return; }
    let quads = Y_H * Y_W / 4u;
    let pos = q % quads;
    let o = (q / quads) % Y_C;
    let n = q / (quads * Y_C);
    out4[q] = epilogue4(x4[(o * BATCH + n) * quads + pos] + vec4f(bias_of(o)));
}

// With H'·W' a multiple of 4.
@compute @workgroup_size(64)
fn conv2d_to_rows_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let q = flat(gid, groups);
    if (q >= p.n) { return; }
    let quads = Y_H * Y_W / 4u;
    let pos = q % quads;
    let n = (q / quads) % BATCH;
    let o = q / (quads * BATCH);
    out4[q] = dy4[(n * Y_C + o) * quads + pos];
}

// Depthwise convolutions (groups = C, each output channel o reading input channel o / mult):
// four adjacent output columns per invocation share every weight load and the row checks.
//   depthwise_conv2d:                 y[n,o,oh,ow..ow+3]
//   depthwise_conv2d_backward_input:  dx[n,c,ih,iw..iw+3] = Σ_{o of c, i, j} dy[n,o,oh,ow]·w[o,0,i,j]
fn depthwise_tap(n: u32, c: u32, ih: i32, iw: i32) -> f32 {
    if (ih < 0 || ih >= i32(X_H) || iw < 0 || iw >= i32(X_W)) { return 0.0; }
    return x[((n * X_C + c) * X_H + u32(ih)) * X_W + u32(iw)];
}

// The input columns four adjacent outputs read along one row, first to last: every tap of
// the row loads once (6 loads for a 3-wide stride-1 kernel, not 12), into a private array
// that constant indices keep in registers. Wider spans take the tap-by-tap path.
const MAX_SPAN: u32 = 12u;
override SPAN: u32 = 3u * STRIDE_W + (K_W - 1u) * DIL_W + 1u;

@compute @workgroup_size(64)
fn depthwise_conv2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    let quads = (Y_W + 3u) / 4u;
    if (e >= p.n) { return; }
    let ow0 = (e % quads) * 4u;
    let oh = (e / quads) % Y_H;
    let o = (e / (quads * Y_H)) % Y_C;
    let n = e / (quads * Y_H * Y_C);
    let c = o / (Y_C / X_C);
    var acc = vec4f(bias_of(o));
    let iw0 = input_at(ow0, 0u, STRIDE_W, PAD_W, DIL_W);
    for (var i = 0u; i < K_H; i++) {
        let ih = input_at(oh, i, STRIDE_H, PAD_H, DIL_H);
        if (ih < 0 || ih >= i32(X_H)) { continue; }
        if (SPAN <= MAX_SPAN) {
            var span: array<f32, MAX_SPAN>;
            for (var t = 0u; t < SPAN; t++) {
                span[t] = depthwise_tap(n, c, ih, iw0 + i32(t));
            }
            for (var j = 0u; j < K_W; j++) {
                let weight = w[(o * K_H + i) * K_W + j];
                let at = j * DIL_W;
                acc += weight * vec4f(span[at], span[at + STRIDE_W], span[at + 2u * STRIDE_W], span[at + 3u * STRIDE_W]);
            }
        } else {
            for (var j = 0u; j < K_W; j++) {
                let weight = w[(o * K_H + i) * K_W + j];
                let iw = input_at(ow0, j, STRIDE_W, PAD_W, DIL_W);
                let s = i32(STRIDE_W);
                let taps = vec4f(depthwise_tap(n, c, ih, iw), depthwise_tap(n, c, ih, iw + s),
                                 depthwise_tap(n, c, ih, iw + 2 * s), depthwise_tap(n, c, ih, iw + 3 * s));
                acc += weight * taps;
            }
        }
    }
    let row = ((n * Y_C + o) * Y_H + oh) * Y_W;
    for (var q = 0u; q < 4u && ow0 + q < Y_W; q++) {
        out[row + ow0 + q] = epilogue(acc[q]);
    }
}

// dy[n,o,oh,ow] (bound at 5) where the tap lands inside dy, else 0.
fn depthwise_gradient(n: u32, o: u32, th: i32, tw: i32) -> f32 {
    if (th < 0 || tw < 0) { return 0.0; }
    let sh = STRIDE_H;
    let sw = STRIDE_W;
    if (u32(th) % sh != 0u || u32(tw) % sw != 0u || u32(th) / sh >= Y_H || u32(tw) / sw >= Y_W) { return 0.0; }
    return dy[((n * Y_C + o) * Y_H + u32(th) / sh) * Y_W + u32(tw) / sw];
}

// The dy columns four adjacent input columns gather from along one row, first to last (in
// steps of one column of dx: those off the stride read zero).
override BACK_SPAN: u32 = 3u + (K_W - 1u) * DIL_W + 1u;

@compute @workgroup_size(64)
fn depthwise_conv2d_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    let quads = (X_W + 3u) / 4u;
    if (e >= p.n) { return; }
    let iw0 = (e % quads) * 4u;
    let ih = (e / quads) % X_H;
    let c = (e / (quads * X_H)) % X_C;
    let n = e / (quads * X_H * X_C);
    let mult = Y_C / X_C;
    // The tap j = K_W - 1 reaches furthest left.
    let tw0 = i32(iw0 + PAD_W) - i32((K_W - 1u) * DIL_W);
    var acc = vec4f(0.0);
    for (var m = 0u; m < mult; m++) {
        let o = c * mult + m;
        for (var i = 0u; i < K_H; i++) {
            let th = i32(ih + PAD_H) - i32(i * DIL_H);
            if (BACK_SPAN <= MAX_SPAN) {
                var span: array<f32, MAX_SPAN>;
                for (var t = 0u; t < BACK_SPAN; t++) {
                    span[t] = depthwise_gradient(n, o, th, tw0 + i32(t));
                }
                for (var j = 0u; j < K_W; j++) {
                    let weight = w[(o * K_H + i) * K_W + j];
                    let at = (K_W - 1u - j) * DIL_W;
                    acc += weight * vec4f(span[at], span[at + 1u], span[at + 2u], span[at + 3u]);
                }
            } else {
                for (var j = 0u; j < K_W; j++) {
                    let weight = w[(o * K_H + i) * K_W + j];
                    let tw = i32(iw0 + PAD_W) - i32(j * DIL_W);
                    let grads = vec4f(depthwise_gradient(n, o, th, tw), depthwise_gradient(n, o, th, tw + 1),
                                      depthwise_gradient(n, o, th, tw + 2), depthwise_gradient(n, o, th, tw + 3));
                    acc += weight * grads;
                }
            }
        }
    }
    let row = ((n * X_C + c) * X_H + ih) * X_W;
    for (var q = 0u; q < 4u && iw0 + q < X_W; q++) {
        out[row + iw0 + q] = acc[q];
    }
}

// Σ over the batch and the output positions of dy[n,o,oh,ow..ow+3] times the input row taps
// they read, for every tap of channel o at once: one workgroup per output channel, its 64
// invocations striding over (sample, row, column quad) items, each loading its dy quad once
// and each input row's span once (see `SPAN`), then a tree per tap. Kernels up to MAX_TAPS
// taps with spans up to MAX_SPAN; the host sends the rest to conv2d_backward_weight.
const MAX_TAPS: u32 = 16u;
var<workgroup> tap_partial: array<array<f32, MAX_TAPS>, 64>;

@compute @workgroup_size(64)
fn depthwise_conv2d_backward_weight(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
    let o = wid.x;
    let c = o / (Y_C / X_C);
    let quads = (Y_W + 3u) / 4u;
    var acc: array<f32, MAX_TAPS>;
    for (var item = lid; item < BATCH * Y_H * quads; item += 64u) {
        let ow0 = (item % quads) * 4u;
        let oh = (item / quads) % Y_H;
        let n = item / (quads * Y_H);
        let dy_row = ((n * Y_C + o) * Y_H + oh) * Y_W;
        var g = vec4f(0.0);
        for (var q = 0u; q < 4u; q++) {
            g[q] = select(0.0, dy[dy_row + min(ow0 + q, Y_W - 1u)], ow0 + q < Y_W);
        }
        let iw0 = input_at(ow0, 0u, STRIDE_W, PAD_W, DIL_W);
        for (var i = 0u; i < K_H; i++) {
            let ih = input_at(oh, i, STRIDE_H, PAD_H, DIL_H);
            var span: array<f32, MAX_SPAN>;
            for (var t = 0u; t < SPAN; t++) {
                span[t] = depthwise_tap(n, c, ih, iw0 + i32(t));
            }
            for (var j = 0u; j < K_W; j++) {
                let at = j * DIL_W;
                let taps = vec4f(span[at], span[at + STRIDE_W], span[at + 2u * STRIDE_W], span[at + 3u * STRIDE_W]);
                acc[i * K_W + j] += dot(g, taps);
            }
        }
    }
    for (var t = 0u; t < K_H * K_W; t++) {
        tap_partial[lid][t] = acc[t];
    }
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (lid < half) {
            for (var t = 0u; t < K_H * K_W; t++) {
                tap_partial[lid][t] += tap_partial[lid + half][t];
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u && o * K_H * K_W < p.n) {
        for (var t = 0u; t < K_H * K_W; t++) {
            out[o * K_H * K_W + t] = tap_partial[0][t];
        }
    }
}

