"""Golden cases for Kiln's ops at awkward shapes, computed by the shared JAX generator.

The public cases (tests/golden) use small, friendly shapes; these exercise what the kernels
find hard: sizes 1, primes, rank 5, tiles that overhang the edges, long rows, huge steps,
odd channel counts, non-square kernels, strides larger than the kernel, dilation 2 and 3,
groups and depthwise multipliers, output padding, large-magnitude activations. Every op of
the generator's OPS registry has cases here.

    pip install numpy jax jaxlib safetensors
    python3 tests/golden_awkward/generate_awkward.py   # from the repository root
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "golden"))
import generate as g  # noqa: E402

g.SEEDS["awkward"] = 20261124


def op_round_half(rng, x, scale):
    """Kiln's own op (not in FORMAT.md): x rounded to binary16, ties to even, by JAX's cast; its
    gradient passes through unchanged (as the cast in mixed-precision training)."""
    def fn(t):
        rounded = t["x"].astype(g.jnp.float16).astype(t["x"].dtype)
        return {"y": t["x"] + g.lax.stop_gradient(rounded - t["x"])}
    return g.Case("round_half", {}, {"x": g.normal(rng, x, scale)}, fn=fn)


g.OPS["round_half"] = op_round_half

AWKWARD = [
    ("matmul", "1x1x1", dict(a=(1, 1), b=(1, 1))),
    ("matmul", "primes", dict(a=(33, 67), b=(67, 17))),
    ("matmul", "tiles_overhang", dict(a=(36, 44), b=(44, 52))),
    ("matmul", "aligned_64", dict(a=(64, 128), b=(128, 96))),
    ("matmul", "batched_shared_b_aligned", dict(a=(5, 12, 20), b=(20, 36))),
    ("matmul", "batched_n1", dict(a=(3, 1, 7), b=(3, 7, 1))),
    ("matmul", "shared_a_batched_b", dict(a=(8, 4), b=(6, 4, 12))),
    ("linear", "odd", dict(x=(37, 129), o=65)),
    ("linear", "aligned", dict(x=(64, 64), o=64)),
    ("linear", "n1_o1", dict(x=(1, 1), o=1)),
    *g.for_ops(("add", "sub", "mul", "div"), [
        ("rank4_cross", dict(a=(7, 1, 5, 1), b=(1, 6, 1, 3))),
        ("scalars", dict(a=(), b=())),
        ("scalar_a", dict(a=(), b=(3, 5))),
        ("rank5", dict(a=(2, 3, 4, 5, 6), b=(4, 1, 6))),
        ("one_vs_many", dict(a=(1,), b=(9, 8, 1))),
    ]),
    *g.for_ops(("sum", "mean"), [
        ("middle_keep", dict(x=(7, 1, 13), axes=[-2], keepdims=True)),
        ("rank5_alternate", dict(x=(2, 3, 4, 5, 6), axes=[0, 2, 4], keepdims=False)),
        ("long", dict(x=(4099,), axes=[0], keepdims=False)),
        ("rows", dict(x=(65, 3), axes=[1], keepdims=False)),
        ("first_of_many", dict(x=(300, 7), axes=[0], keepdims=True)),
    ]),
    ("reshape", "drop_ones", dict(x=(5, 1, 7, 1), shape=[35])),
    ("reshape", "to_rank5", dict(x=(60,), shape=[1, 3, 1, 4, 5])),
    ("transpose", "rank5", dict(x=(2, 3, 4, 5, 6), perm=[4, 2, 0, 3, 1])),
    ("transpose", "row_vector", dict(x=(1, 7), perm=[1, 0])),
    ("transpose", "odd_2d", dict(x=(65, 33), perm=[1, 0])),
    *g.unary_rows([("odd_3d", (7, 13, 3), 3.0), ("long_wide", (4100,), 20.0), ("one", (1,), 1.0)],
                  ops=("relu", "sigmoid", "tanh")),
    *g.for_ops(("softmax", "log_softmax"), [
        ("rank4_axis2", dict(x=(2, 3, 4, 5), axis=2)),
        ("single", dict(x=(1, 1), axis=0)),
        ("long_rows_big", dict(x=(3, 300), axis=-1, big=40)),
        ("vector", dict(x=(17,), axis=0)),
    ]),
    ("cross_entropy", "c100", dict(n=33, c=100)),
    ("cross_entropy", "c1", dict(n=3, c=1)),
    ("cross_entropy", "n128", dict(n=128, c=10)),
    ("mse_loss", "one", dict(shape=(1,))),
    ("mse_loss", "rank4_odd", dict(shape=(3, 5, 7, 2))),
    ("sgd_step", "one", dict(shape=(1,), lr=0.5, momentum=0.1, weight_decay=0.0)),
    ("sgd_step", "odd_3d", dict(shape=(7, 11, 13), lr=0.01, momentum=0.99, weight_decay=0.5)),
    ("adam_step", "one_step2", dict(shape=(1,), lr=0.1, beta1=0.5, beta2=0.9, eps=1e-6,
                                    weight_decay=0.0, step=2)),
    ("adam_step", "late", dict(shape=(17, 19), lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                               weight_decay=0.05, step=100000)),
    # ---- rows below were appended later: the random draw of a case depends on its index in
    # this table, so new rows go at the end and the cases above keep their bytes.
    # convolutions: odd channel counts, non-square kernels, stride > kernel, dilation 2/3,
    # groups 2/3, depthwise with channel multiplier 1/2/3, 1x1, kernel = input, padding > kernel
    ("conv2d", "b1_c1_17x23_k3_p1", dict(x=(1, 1, 17, 23), w=(1, 1, 3, 3), padding=1)),
    ("conv2d", "c3_to_5_k1x3_p01", dict(x=(2, 3, 9, 11), w=(5, 3, 1, 3), padding=(0, 1))),
    ("conv2d", "c5_to_7_k3x1_s2_p10", dict(x=(1, 5, 11, 7), w=(7, 5, 3, 1), stride=2,
                                           padding=(1, 0))),
    ("conv2d", "k5x2_p21_nobias", dict(x=(1, 3, 13, 10), w=(5, 3, 5, 2), padding=(2, 1),
                                       bias=False)),
    ("conv2d", "c7_k2_s3", dict(x=(2, 7, 11, 13), w=(3, 7, 2, 2), stride=3)),
    ("conv2d", "k3_s4_p1_17x23", dict(x=(1, 3, 17, 23), w=(2, 3, 3, 3), stride=4, padding=1)),
    ("conv2d", "1x1_s2_c7", dict(x=(1, 7, 9, 9), w=(5, 7, 1, 1), stride=2)),
    ("conv2d", "dil2_p2_c5", dict(x=(1, 5, 13, 11), w=(3, 5, 3, 3), padding=2, dilation=2)),
    ("conv2d", "dil3_s2", dict(x=(2, 3, 15, 15), w=(4, 3, 3, 3), stride=2, dilation=3)),
    ("conv2d", "dil32_rect_p31", dict(x=(1, 2, 17, 15), w=(3, 2, 3, 2), padding=(3, 1),
                                      dilation=(3, 2))),
    ("conv2d", "groups3_c6_to_9_p1", dict(x=(1, 6, 8, 9), w=(9, 2, 3, 3), padding=1, groups=3)),
    ("conv2d", "groups2_c10_to_6_s2", dict(x=(2, 10, 7, 7), w=(6, 5, 3, 3), stride=2, groups=2)),
    ("conv2d", "depthwise_c5_m1_p1", dict(x=(1, 5, 11, 13), w=(5, 1, 3, 3), padding=1, groups=5)),
    ("conv2d", "depthwise_c7_m2_s2_p1", dict(x=(2, 7, 9, 9), w=(14, 1, 3, 3), stride=2, padding=1,
                                             groups=7)),
    ("conv2d", "depthwise_c3_m3_k5x2_p21", dict(x=(1, 3, 10, 9), w=(9, 1, 5, 2), padding=(2, 1),
                                                groups=3)),
    ("conv2d", "kernel_is_input", dict(x=(3, 2, 5, 7), w=(4, 2, 5, 7))),
    ("conv2d", "pad_gt_kernel", dict(x=(1, 3, 5, 4), w=(2, 3, 2, 3), padding=(3, 2))),
    ("conv2d", "all_ones_1x1", dict(x=(1, 1, 1, 1), w=(1, 1, 1, 1))),
    ("conv_transpose2d", "b1_c1_k3_s2_p1_op1", dict(x=(1, 1, 7, 5), w=(1, 1, 3, 3), stride=2,
                                                    padding=1, output_padding=1)),
    ("conv_transpose2d", "k1x3_s31_p01_op20", dict(x=(2, 3, 4, 5), w=(3, 5, 1, 3), stride=(3, 1),
                                                   padding=(0, 1), output_padding=(2, 0))),
    ("conv_transpose2d", "c5_to_7_k3x1_s2_nobias", dict(x=(1, 5, 5, 6), w=(5, 7, 3, 1), stride=2,
                                                        bias=False)),
    ("conv_transpose2d", "k2_s3_op2", dict(x=(1, 3, 5, 5), w=(3, 2, 2, 2), stride=3,
                                           output_padding=2)),
    ("conv_transpose2d", "k5x2_s2_p21_op1", dict(x=(1, 2, 6, 7), w=(2, 3, 5, 2), stride=2,
                                                 padding=(2, 1), output_padding=1)),
    ("conv_transpose2d", "dil3_op2", dict(x=(1, 2, 5, 4), w=(2, 3, 3, 3), dilation=3,
                                          output_padding=2)),
    ("conv_transpose2d", "dil2_s3_p2_op1", dict(x=(2, 3, 4, 4), w=(3, 2, 3, 3), stride=3,
                                                padding=2, dilation=2, output_padding=1)),
    ("conv_transpose2d", "groups3_c6_to_9_s2_op1", dict(x=(1, 6, 5, 5), w=(6, 3, 3, 3), stride=2,
                                                        padding=1, output_padding=1, groups=3)),
    ("conv_transpose2d", "groups2_c4_to_10_s12", dict(x=(2, 4, 3, 5), w=(4, 5, 2, 3),
                                                      stride=(1, 2), groups=2)),
    ("conv_transpose2d", "depthwise_c5_m1_p1", dict(x=(1, 5, 6, 7), w=(5, 1, 3, 3), padding=1,
                                                    groups=5)),
    ("conv_transpose2d", "depthwise_c3_m2_s2", dict(x=(2, 3, 4, 5), w=(3, 2, 3, 3), stride=2,
                                                    groups=3)),
    ("conv_transpose2d", "depthwise_c7_m3_k2_s2_op1", dict(x=(1, 7, 3, 4), w=(7, 3, 2, 2),
                                                           stride=2, output_padding=1, groups=7)),
    ("conv_transpose2d", "1x1_s3_op2_c7", dict(x=(1, 7, 3, 4), w=(7, 5, 1, 1), stride=3,
                                               output_padding=2)),
    ("conv_transpose2d", "b1_c1_17x23_p1", dict(x=(1, 1, 17, 23), w=(1, 2, 3, 3), padding=1)),
    ("conv_transpose2d", "in_1x1_k4_s2", dict(x=(2, 3, 1, 1), w=(3, 4, 4, 4), stride=2)),
    ("conv_transpose2d", "k5_p3_crops", dict(x=(1, 2, 4, 4), w=(2, 3, 5, 5), padding=3)),
    # pooling: overlapping windows (stride < kernel), stride > kernel, padding up to kernel/2
    *g.for_ops(("max_pool2d", "min_pool2d"), [
        ("b1_c1_17x23_k3_s1_p1", dict(x=(1, 1, 17, 23), kernel=3, stride=1, padding=1)),
        ("c5_k3_s2_p1_odd", dict(x=(2, 5, 11, 13), kernel=3, stride=2, padding=1)),
        ("c7_k2_s3", dict(x=(1, 7, 10, 11), kernel=2, stride=3)),
        ("k1x3_s12_p01", dict(x=(2, 3, 7, 9), kernel=(1, 3), stride=(1, 2), padding=(0, 1))),
        ("k3x1_s21_p10", dict(x=(1, 3, 9, 6), kernel=(3, 1), stride=(2, 1), padding=(1, 0))),
        ("k5x2_s32_p21", dict(x=(1, 5, 13, 8), kernel=(5, 2), stride=(3, 2), padding=(2, 1))),
        ("k4_s1_p2", dict(x=(1, 3, 7, 6), kernel=4, stride=1, padding=2)),
        ("k1_s3", dict(x=(2, 3, 7, 8), kernel=1, stride=3)),
        ("k3_s4_p1", dict(x=(1, 2, 14, 15), kernel=3, stride=4, padding=1)),
        ("kernel_is_input", dict(x=(3, 2, 5, 7), kernel=(5, 7), stride=1)),
    ]),
    ("avg_pool2d", "b1_c1_17x23_k3_s1_p1_incl", dict(x=(1, 1, 17, 23), kernel=3, stride=1,
                                                     padding=1, count_include_pad=True)),
    ("avg_pool2d", "b1_c1_17x23_k3_s1_p1_excl", dict(x=(1, 1, 17, 23), kernel=3, stride=1,
                                                     padding=1, count_include_pad=False)),
    ("avg_pool2d", "c5_k3_s2_odd", dict(x=(2, 5, 11, 13), kernel=3, stride=2)),
    ("avg_pool2d", "c7_k2_s3", dict(x=(1, 7, 10, 11), kernel=2, stride=3)),
    ("avg_pool2d", "k1x3_s12_p01_excl", dict(x=(2, 3, 7, 9), kernel=(1, 3), stride=(1, 2),
                                             padding=(0, 1), count_include_pad=False)),
    ("avg_pool2d", "k3x1_s21_p10_incl", dict(x=(1, 3, 9, 6), kernel=(3, 1), stride=(2, 1),
                                             padding=(1, 0), count_include_pad=True)),
    ("avg_pool2d", "k5x2_s32_p21_incl", dict(x=(1, 5, 13, 8), kernel=(5, 2), stride=(3, 2),
                                             padding=(2, 1), count_include_pad=True)),
    ("avg_pool2d", "k5x2_s32_p21_excl", dict(x=(1, 5, 13, 8), kernel=(5, 2), stride=(3, 2),
                                             padding=(2, 1), count_include_pad=False)),
    ("avg_pool2d", "k4_s1_p2_incl", dict(x=(1, 3, 7, 6), kernel=4, stride=1, padding=2,
                                         count_include_pad=True)),
    ("avg_pool2d", "k4_s1_p2_excl", dict(x=(1, 3, 7, 6), kernel=4, stride=1, padding=2,
                                         count_include_pad=False)),
    ("avg_pool2d", "k3_s4_p1_excl", dict(x=(1, 2, 14, 15), kernel=3, stride=4, padding=1,
                                         count_include_pad=False)),
    ("avg_pool2d", "k1_s3", dict(x=(2, 3, 7, 8), kernel=1, stride=3)),
    ("avg_pool2d", "kernel_is_input", dict(x=(3, 2, 5, 7), kernel=(5, 7), stride=1)),
    ("lp_pool2d", "b1_c1_17x23_k3_s1", dict(x=(1, 1, 17, 23), kernel=3, stride=1)),
    ("lp_pool2d", "c5_k3_s2_odd", dict(x=(2, 5, 11, 13), kernel=3, stride=2)),
    ("lp_pool2d", "c7_k2_s3", dict(x=(1, 7, 10, 11), kernel=2, stride=3)),
    ("lp_pool2d", "k1x3_s12", dict(x=(2, 3, 7, 9), kernel=(1, 3), stride=(1, 2))),
    ("lp_pool2d", "k3x1_s21", dict(x=(1, 3, 9, 6), kernel=(3, 1), stride=(2, 1))),
    ("lp_pool2d", "k5x2_s32", dict(x=(1, 5, 13, 8), kernel=(5, 2), stride=(3, 2))),
    ("lp_pool2d", "k1_s3", dict(x=(2, 3, 7, 8), kernel=1, stride=3)),
    ("lp_pool2d", "kernel_is_input", dict(x=(3, 2, 5, 7), kernel=(5, 7), stride=1)),
    ("lp_pool2d", "p4_k2_s1", dict(x=(1, 3, 6, 7), kernel=2, stride=1, p=4)),
    ("global_avg_pool2d", "b1_c1_1x1", dict(x=(1, 1, 1, 1))),
    ("global_avg_pool2d", "c7_17x23", dict(x=(1, 7, 17, 23))),
    ("global_avg_pool2d", "h1_w13", dict(x=(3, 5, 1, 13))),
    ("global_avg_pool2d", "w1_h9", dict(x=(5, 3, 9, 1))),
    # activations: large magnitudes (scale 30), rank 5, a single element
    *g.unary_rows([("odd_3d", (7, 13, 3), 3.0), ("large_scale30", (257,), 30.0),
                   ("one", (1,), 1.0), ("rank5", (2, 3, 1, 5, 7), 2.0)],
                  ops=("silu", "softplus", "identity")),
    ("leaky_relu", "one", dict(x=(1,), scale=1.0, negative_slope=0.2)),
    ("leaky_relu", "odd_3d", dict(x=(7, 13, 3), scale=3.0, negative_slope=0.01)),
    ("leaky_relu", "large_scale30", dict(x=(257,), scale=30.0, negative_slope=0.1)),
    ("leaky_relu", "rank5", dict(x=(2, 3, 1, 5, 7), negative_slope=0.3)),
    ("leaky_relu", "slope0", dict(x=(5, 7), negative_slope=0.0)),
    ("elu", "one", dict(x=(1,), scale=1.0, alpha=1.0)),
    ("elu", "odd_3d", dict(x=(7, 13, 3), scale=3.0, alpha=0.1)),
    ("elu", "large_scale30", dict(x=(257,), scale=30.0, alpha=1.0)),
    ("elu", "rank5", dict(x=(2, 3, 1, 5, 7), alpha=2.0)),
    *[("gelu", f"{tag}_{short}", dict(x=s, scale=sc, approximate=approx))
      for approx, short in (("none", "exact"), ("tanh", "tanh"))
      for tag, s, sc in (("odd_3d", (7, 13, 3), 3.0), ("large_scale30", (257,), 30.0),
                         ("one", (1,), 1.0), ("rank5", (2, 3, 1, 5, 7), 2.0))],
    ("prelu", "n1_c1", dict(x=(1, 1))),
    ("prelu", "rank3_c5", dict(x=(3, 5, 7))),
    ("prelu", "rank3_c1", dict(x=(5, 1, 9))),
    ("prelu", "rank5_c3", dict(x=(2, 3, 2, 3, 4))),
    ("prelu", "b1_c7_17x23", dict(x=(1, 7, 17, 23))),
    # max reduction: size-1 axes, unsorted negative axes, rank 5, long rows
    ("max", "middle_keep", dict(x=(7, 1, 13), axes=[-2], keepdims=True)),
    ("max", "unsorted_neg_keep", dict(x=(3, 5, 4, 2), axes=[-1, -3], keepdims=True)),
    ("max", "rank5_unsorted_neg", dict(x=(2, 3, 4, 5, 6), axes=[-2, 0, -4], keepdims=False)),
    ("max", "rank5_all_unsorted_keep", dict(x=(2, 1, 3, 1, 5), axes=[4, 2, 0, 1, 3],
                                            keepdims=True)),
    ("max", "long", dict(x=(4099,), axes=[0], keepdims=False)),
    ("max", "rows_keep", dict(x=(65, 3), axes=[-1], keepdims=True)),
    # losses
    ("l1_loss", "one", dict(shape=(1,))),
    ("l1_loss", "rank4_odd", dict(shape=(3, 5, 7, 2))),
    ("l1_loss", "long", dict(shape=(4099,))),
    ("l1_loss", "rank5", dict(shape=(2, 3, 1, 5, 7))),
    ("huber_loss", "one_delta0.1", dict(shape=(1,), delta=0.1)),
    ("huber_loss", "rank4_delta10", dict(shape=(3, 5, 7, 2), delta=10.0)),
    ("huber_loss", "long_delta0.01", dict(shape=(4099,), delta=0.01)),
    ("huber_loss", "rank5_delta1", dict(shape=(2, 3, 1, 5, 7), delta=1.0)),
    ("nll_loss", "c1", dict(n=3, c=1)),
    ("nll_loss", "n1_c1", dict(n=1, c=1)),
    ("nll_loss", "c100", dict(n=33, c=100)),
    ("nll_loss", "n128", dict(n=128, c=10)),
    ("bce_loss", "one", dict(shape=(1,))),
    ("bce_loss", "rank4_soft", dict(shape=(3, 5, 7, 2), soft=True)),
    ("bce_loss", "long", dict(shape=(4099,))),
    ("bce_loss", "rank5_soft", dict(shape=(2, 3, 1, 5, 7), soft=True)),
    ("bce_with_logits", "one", dict(shape=(1,))),
    ("bce_with_logits", "rank4", dict(shape=(3, 5, 7, 2))),
    ("bce_with_logits", "large_scale30_soft", dict(shape=(257,), soft=True, scale=30.0)),
    ("bce_with_logits", "rank5_soft", dict(shape=(2, 3, 1, 5, 7), soft=True)),
    ("hinge_loss", "one", dict(shape=(1,))),
    ("hinge_loss", "rank4_odd", dict(shape=(3, 5, 7, 2))),
    ("hinge_loss", "long", dict(shape=(4099,))),
    ("hinge_loss", "rank5", dict(shape=(2, 3, 1, 5, 7))),
    ("kl_div", "c1", dict(n=3, c=1)),
    ("kl_div", "n1_c2", dict(n=1, c=2)),
    ("kl_div", "c1000", dict(n=2, c=1000)),
    ("kl_div", "n33_c100", dict(n=33, c=100)),
    # normalization: [N, C] and rank 3/5, H = W = 1, batch 1, D = 1 and D = 129
    ("batch_norm", "nc_n3_c5", dict(x=(3, 5))),
    ("batch_norm", "nc_n37_c1", dict(x=(37, 1))),
    ("batch_norm", "b1_c7_odd", dict(x=(1, 7, 5, 3))),
    ("batch_norm", "hw1_n3_c5", dict(x=(3, 5, 1, 1))),
    ("batch_norm", "rank3_ncl", dict(x=(4, 3, 7))),
    ("batch_norm", "rank5", dict(x=(2, 3, 2, 3, 4))),
    ("batch_norm", "c1_17x23", dict(x=(2, 1, 17, 23))),
    ("batch_norm", "eps0.1_odd", dict(x=(3, 7, 3, 5), eps=0.1)),
    ("layer_norm", "d1", dict(x=(5, 1))),
    ("layer_norm", "d3", dict(x=(9, 3))),
    ("layer_norm", "d129", dict(x=(3, 129))),
    ("layer_norm", "rank4_d129", dict(x=(2, 3, 1, 129))),
    ("layer_norm", "rank5_d7", dict(x=(2, 1, 3, 2, 7))),
    ("layer_norm", "row1_d4099", dict(x=(1, 4099))),
    ("layer_norm", "eps0.1", dict(x=(7, 13), eps=0.1)),
    # embedding, recurrent cells, attention
    ("embedding", "vocab1_d1", dict(v=1, d=1, ids=(5,))),
    ("embedding", "vocab1_one_id", dict(v=1, d=7, ids=(1,))),
    ("embedding", "vocab3_many_repeats", dict(v=3, d=5, ids=(40,))),
    ("embedding", "3d_ids", dict(v=13, d=5, ids=(2, 3, 4))),
    ("embedding", "d129_2d_ids", dict(v=7, d=129, ids=(2, 5))),
    ("embedding", "vocab1000_few", dict(v=1000, d=2, ids=(3,))),
    *g.for_ops(("lstm_cell", "gru_cell"), [
        ("h1", dict(n=3, i=4, h=1)),
        ("n1_i1_h1", dict(n=1, i=1, h=1)),
        ("i1", dict(n=2, i=1, h=5)),
        ("h13", dict(n=5, i=7, h=13)),
        ("wide_i129", dict(n=2, i=129, h=3)),
    ]),
    ("attention", "t1_s1", dict(q=(1, 1, 1, 4), s=1)),
    ("attention", "t1_s9", dict(q=(2, 1, 1, 8), s=9)),
    ("attention", "d1", dict(q=(1, 2, 5, 1), s=5)),
    ("attention", "heads3", dict(q=(2, 3, 4, 6), s=4)),
    ("attention", "causal_t9", dict(q=(1, 2, 9, 8), s=9, causal=True)),
    ("attention", "causal_t1", dict(q=(3, 1, 1, 5), s=1, causal=True)),
    ("attention", "causal_heads3_d1", dict(q=(1, 3, 9, 1), s=9, causal=True)),
    ("attention", "cross_t3_s11", dict(q=(2, 3, 3, 7), s=11)),
    ("attention", "long_s129", dict(q=(1, 1, 3, 4), s=129)),
    # optimizer steps: first step, huge step counts, weight decay, eps and alpha extremes
    ("adamw_step", "one_step1", dict(shape=(1,), lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                                     weight_decay=0.0, step=1)),
    ("adamw_step", "odd_step1_wd", dict(shape=(7, 13), lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                                        weight_decay=0.1, step=1)),
    ("adamw_step", "late_step1e6", dict(shape=(17, 19), lr=0.001, beta1=0.9, beta2=0.999,
                                        eps=1e-8, weight_decay=0.05, step=1000000)),
    ("adamw_step", "rank5_eps1e-3", dict(shape=(2, 3, 1, 5, 7), lr=0.05, beta1=0.5, beta2=0.9,
                                         eps=1e-3, weight_decay=0.5, step=7)),
    ("adamw_step", "long_wd1_step2", dict(shape=(4099,), lr=0.3, beta1=0.99, beta2=0.9999,
                                          eps=1e-6, weight_decay=1.0, step=2)),
    ("adagrad_step", "one_first", dict(shape=(1,), lr=0.5, eps=1e-10, weight_decay=0.0,
                                       first=True)),
    ("adagrad_step", "odd_3d_wd", dict(shape=(7, 11, 13), lr=0.01, eps=1e-10, weight_decay=0.5)),
    ("adagrad_step", "rank5_eps0.1", dict(shape=(2, 3, 1, 5, 7), lr=0.1, eps=0.1,
                                          weight_decay=0.0)),
    ("adagrad_step", "long_first_wd", dict(shape=(4099,), lr=1.0, eps=1e-6, weight_decay=0.01,
                                           first=True)),
    ("rmsprop_step", "one_first", dict(shape=(1,), lr=0.01, alpha=0.99, eps=1e-8,
                                       weight_decay=0.0, first=True)),
    ("rmsprop_step", "odd_3d_wd", dict(shape=(7, 11, 13), lr=0.001, alpha=0.9, eps=1e-8,
                                       weight_decay=0.5)),
    ("rmsprop_step", "rank5_alpha0", dict(shape=(2, 3, 1, 5, 7), lr=0.1, alpha=0.0, eps=1e-3,
                                          weight_decay=0.0)),
    ("rmsprop_step", "long_first_eps1", dict(shape=(4099,), lr=0.05, alpha=0.999, eps=1.0,
                                             weight_decay=0.1, first=True)),
    ("round_half", "odd_3d", dict(x=(7, 13, 3), scale=3.0)),
    ("round_half", "subnormals", dict(x=(4101,), scale=1e-5)),
    ("round_half", "large_aligned", dict(x=(64, 32), scale=8000.0)),
]


def main():
    out = HERE
    for f in os.listdir(out):
        if f.endswith(".safetensors"):
            os.remove(os.path.join(out, f))
    for index, (op, tag, cfg) in enumerate(AWKWARD):
        name = f"{op}__{tag}"
        case, tensors, worst, _ = g.build("awkward", index, op, cfg)
        g.write_case(os.path.join(out, name + ".safetensors"), name, case, tensors)
        print(f"{name:45s} f32-vs-f64 {worst:.1e}")
    print(f"{len(AWKWARD)} cases in {out}")


if __name__ == "__main__":
    sys.exit(main())
