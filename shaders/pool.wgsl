// 2-D pooling over the planes of NCHW tensors, and its gradients (gathers: one invocation per
// element written). Window (oh, ow) covers rows oh·s - p .. oh·s - p + k - 1; taps in the
// padding are skipped (max: -inf, min: +inf, avg: zero).
//   max_pool2d / min_pool2d   y = the extreme tap, the first in scan order on ties
//   avg_pool2d                y = Σ taps / (k_h·k_w if count_include_pad else #taps inside x)
//   lp_pool2d                 y = (Σ |x|^p)^(1/p)
// Backward, per input element, over the windows that contain it:
//   max/min: dx = Σ dy of the windows whose winning tap it is
//   avg:     dx = Σ dy / divisor(window)
//   lp:      dx = Σ dy·sign(x)·(|x|/y)^(p-1)   (windows with y = 0 give nothing)
// When the windows tile the image exactly (stride = kernel, no padding, sizes divisible),
// `pool2d_backward_tiled` runs one invocation per window instead, writing its taps' gradients
// (KIND: 0 max, 1 min, 2 avg, 3 lp): one extreme search per window, not per element.
// Bindings: 0 params, 1 x, 2 y (the forward output), 3 dy, 4 out.

// The geometry, fixed per pipeline: Mesa's CPU drivers divide by a runtime value one lane at
// a time, by a constant with a few vector multiplications, and unroll loops of constant length.
override H: u32;
override W: u32;
override OUT_H: u32;
override OUT_W: u32;
override K_H: u32;
override K_W: u32;
override STRIDE_H: u32;
override STRIDE_W: u32;
override PAD_H: u32;
override PAD_W: u32;
override COUNT_INCLUDE_PAD: u32;
override KIND: u32;
// 1: the backward kernels store the ReLU's gradient at x of what they compute (x is then a
// ReLU's output: pool2d_backward_relu).
override RELU: u32 = 0u;

struct Params {
    n: u32,
    power: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// What a backward kernel stores at input element i for its gradient g: g, or with RELU the
// ReLU's gradient at x[i], computed as relu_backward computes it.
fn masked(g: f32, i: u32) -> f32 {
    if (RELU != 0u) { return select(0.0, g, x[i] > 0.0); }
    return g;
}

fn flat(gid: vec3u, groups: vec3u) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// A window: its plane, its first row and column (possibly in the padding), and where its
// taps inside the image start and stop (exclusive).
struct Window {
    plane: u32,
    h0: u32,
    h1: u32,
    w0: u32,
    w1: u32,
}

fn window(plane: u32, oh: u32, ow: u32) -> Window {
    let top = i32(oh * STRIDE_H) - i32(PAD_H);
    let left = i32(ow * STRIDE_W) - i32(PAD_W);
    let h0 = u32(max(top, 0));
    let w0 = u32(max(left, 0));
    let h1 = u32(min(top + i32(K_H), i32(H)));
    let w1 = u32(min(left + i32(K_W), i32(W)));
    return Window(plane, h0, h1, w0, w1);
}

// The window of output element e.
fn output_window(e: u32) -> Window {
    let ow = e % OUT_W;
    let oh = (e / OUT_W) % OUT_H;
    return window(e / (OUT_W * OUT_H), oh, ow);
}

fn at(plane: u32, ih: u32, iw: u32) -> u32 {
    return (plane * H + ih) * W + iw;
}

// Flat index of the window's extreme tap (the first one on ties).
fn extreme(win: Window, largest: bool) -> u32 {
    var best = at(win.plane, win.h0, win.w0);
    for (var ih = win.h0; ih < win.h1; ih++) {
        for (var iw = win.w0; iw < win.w1; iw++) {
            let i = at(win.plane, ih, iw);
            if ((largest && x[i] > x[best]) || (!largest && x[i] < x[best])) { best = i; }
        }
    }
    return best;
}

fn divisor(win: Window) -> f32 {
    if (COUNT_INCLUDE_PAD != 0u) { return f32(K_H * K_W); }
    return f32((win.h1 - win.h0) * (win.w1 - win.w0));
}

fn window_sum(win: Window, lp: bool) -> f32 {
    var acc = 0.0;
    for (var ih = win.h0; ih < win.h1; ih++) {
        for (var iw = win.w0; iw < win.w1; iw++) {
            let v = x[at(win.plane, ih, iw)];
            acc += select(v, pow(abs(v), p.power), lp);
        }
    }
    return acc;
}

@compute @workgroup_size(64)
fn max_pool2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = x[extreme(output_window(e), true)];
}

@compute @workgroup_size(64)
fn min_pool2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = x[extreme(output_window(e), false)];
}

@compute @workgroup_size(64)
fn avg_pool2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let win = output_window(e);
    out[e] = window_sum(win, false) / divisor(win);
}

@compute @workgroup_size(64)
fn lp_pool2d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = pow(window_sum(output_window(e), true), 1.0 / p.power);
}

// The range of window rows (or columns) [first, last) containing input coordinate v.
fn windows_over(v: u32, k: u32, stride: u32, pad: u32, count: u32) -> vec2u {
    let reach = i32(v + pad) - i32(k) + 1;
    let first = u32(max(reach + i32(stride) - 1, 0)) / stride;
    let last = min((v + pad) / stride + 1u, count);
    return vec2u(first, max(first, last));
}

// Σ over the windows containing input element e of their contribution, by pooling kind:
// 0 max, 1 min, 2 avg, 3 lp.
fn gather(e: u32, kind: u32) -> f32 {
    let iw = e % W;
    let ih = (e / W) % H;
    let plane = e / (W * H);
    let rows = windows_over(ih, K_H, STRIDE_H, PAD_H, OUT_H);
    let cols = windows_over(iw, K_W, STRIDE_W, PAD_W, OUT_W);
    var acc = 0.0;
    for (var oh = rows.x; oh < rows.y; oh++) {
        for (var ow = cols.x; ow < cols.y; ow++) {
            let win = window(plane, oh, ow);
            let o = (plane * OUT_H + oh) * OUT_W + ow;
            switch kind {
                case 0u, 1u: {
                    acc += select(0.0, dy[o], extreme(win, kind == 0u) == e);
                }
                case 2u: {
                    acc += dy[o] / divisor(win);
                }
                default: {
                    let v = x[e];
                    acc += select(0.0, dy[o] * sign(v) * pow(abs(v) / y[o], p.power - 1.0), y[o] > 0.0);
                }
            }
        }
    }
    return acc;
}

@compute @workgroup_size(64)
fn max_pool2d_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = masked(gather(e, 0u), e);
}

@compute @workgroup_size(64)
fn min_pool2d_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = masked(gather(e, 1u), e);
}

@compute @workgroup_size(64)
fn avg_pool2d_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = masked(gather(e, 2u), e);
}

@compute @workgroup_size(64)
fn lp_pool2d_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    out[e] = masked(gather(e, 3u), e);
}

@compute @workgroup_size(64)
fn pool2d_backward_tiled(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let o = flat(gid, groups);
    if (o >= p.n) { return; }
    let win = output_window(o);
    let winner = select(0u, extreme(win, KIND == 0u), KIND < 2u);
    for (var ih = win.h0; ih < win.h1; ih++) {
        for (var iw = win.w0; iw < win.w1; iw++) {
            let i = at(win.plane, ih, iw);
            var g = 0.0;
            switch KIND {
                case 0u, 1u: { g = select(0.0, dy[o], i == winner); }
                case 2u: { g = dy[o] / divisor(win); }
                default: {
                    let v = x[i];
                    g = select(0.0, dy[o] * sign(v) * pow(abs(v) / y[o], p.power - 1.0), y[o] > 0.0);
                }
            }
            out[i] = masked(g, i);
        }
    }
}

// Max or min pooling over 2×2 windows of stride 2 without padding (KIND: 0 max, 1 min), the
// image rows loaded as vectors where Mesa's CPU drivers would load lane by lane: `_x4` takes
// two neighbouring windows of a row per invocation from vec4s (W a multiple of 4), `_x2` one
// window from vec2s (W even). The taps are compared in the scan order `extreme` uses, so ties
// and NaNs pick the same tap.
@group(0) @binding(1) var<storage, read> x2: array<vec2f>;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(3) var<storage, read> dy2: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> out2: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4f>;

// The index of window o's top left tap, its second row W on: the window sits at row o / OUT_W
// of all planes' output rows, whose input rows are twice that and one more (H = 2·OUT_H).
fn window_2x2_top(o: u32) -> u32 {
    return 2u * (o / OUT_W) * W + 2u * (o % OUT_W);
}

fn beats(t: vec2f, best: vec2f) -> vec2<bool> {
    if (KIND == 0u) { return t > best; }
    return t < best;
}

// Each window's extreme (x the first window's, y the second's) and which tap it is (0..3 in
// scan order), given the windows' rows r0, r1 (x, y the first window's columns, z, w the
// second's). Written out, not looped over an array: lavapipe puts indexed arrays in memory.
struct PairExtremes { best: vec2f, which: vec2u }

fn pair_extremes(r0: vec4f, r1: vec4f) -> PairExtremes {
    var best = r0.xz;
    var which = vec2u(0u);
    var b = beats(r0.yw, best);
    best = select(best, r0.yw, b);
    which = select(which, vec2u(1u), b);
    b = beats(r1.xz, best);
    best = select(best, r1.xz, b);
    which = select(which, vec2u(2u), b);
    b = beats(r1.yw, best);
    best = select(best, r1.yw, b);
    which = select(which, vec2u(3u), b);
    return PairExtremes(best, which);
}

// The gradient of the taps of both windows' rows r0 and r1 (laid out as pair_extremes takes
// them) for the windows' gradients g: each window's to its extreme tap, masked as `masked`
// masks.
fn pair_gradients(r0: vec4f, r1: vec4f, g: vec2f) -> array<vec4f, 2> {
    let which = pair_extremes(r0, r1).which;
    let zero = vec2f(0.0);
    let g0 = select(zero, g, which == vec2u(0u));
    let g1 = select(zero, g, which == vec2u(1u));
    let g2 = select(zero, g, which == vec2u(2u));
    let g3 = select(zero, g, which == vec2u(3u));
    var d0 = vec4f(g0.x, g1.x, g0.y, g1.y);
    var d1 = vec4f(g2.x, g3.x, g2.y, g3.y);
    if (RELU != 0u) {
        d0 = select(vec4f(0.0), d0, r0 > vec4f(0.0));
        d1 = select(vec4f(0.0), d1, r1 > vec4f(0.0));
    }
    return array<vec4f, 2>(d0, d1);
}

@compute @workgroup_size(64)
fn pool2d_2x2_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let top = window_2x2_top(2u * e) / 4u;
    out2[e] = pair_extremes(x4[top], x4[top + W / 4u]).best;
}

@compute @workgroup_size(64)
fn pool2d_2x2_x2(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let top = window_2x2_top(e) / 2u;
    let r0 = x2[top];
    let r1 = x2[top + W / 2u];
    out[e] = pair_extremes(vec4f(r0, r0), vec4f(r1, r1)).best.x;
}

@compute @workgroup_size(64)
fn pool2d_backward_2x2_x4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let top = window_2x2_top(2u * e) / 4u;
    let d = pair_gradients(x4[top], x4[top + W / 4u], dy2[e]);
    out4[top] = d[0];
    out4[top + W / 4u] = d[1];
}

@compute @workgroup_size(64)
fn pool2d_backward_2x2_x2(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
    let e = flat(gid, groups);
    if (e >= p.n) { return; }
    let top = window_2x2_top(e) / 2u;
    let r0 = x2[top];
    let r1 = x2[top + W / 2u];
    let d = pair_gradients(vec4f(r0, r0), vec4f(r1, r1), vec2f(dy[e]));
    out2[top] = d[0].xy;
    out2[top + W / 2u] = d[1].xy;
}
