"""Golden cases for Kiln's ops at awkward shapes, computed by the shared JAX generator.

The public cases (tests/golden) use small, friendly shapes; these exercise what the kernels
find hard: sizes 1, primes, rank 5, tiles that overhang the edges, long rows, huge steps.

    pip install numpy jax jaxlib safetensors
    python3 tests/golden_awkward/generate_awkward.py   # from the repository root
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "golden"))
import generate as g  # noqa: E402

g.SEEDS["awkward"] = 20261124

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
