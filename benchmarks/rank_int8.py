"""Could 8-bit products make the exact NEJM ranking at 100k twice as fast? Measured: no.

It also times the float32 products both ways the ranking can run them: one
product per render slab over all identities with BLAS's own threads, and
worker threads each folding chunks of identities with single-threaded
products (what ``rank_gallery`` does with more than one CPU).

The ranking's cost at scale is one product per (photo, render) pair and a
maximum over each identity's renders (``bids_app.rank.blocked``,
``_best_render_similarity``): 500k photos x 1M renders x 128 dimensions at
100k participants. onnxruntime's ``MatMulInteger`` (uint8 x int8, int32
sums; VNNI where the CPU has it) is the fastest product available offline.
An exact ranking could use it only as a certified pre-selection: the 8-bit
similarity of a unit photo and render is within

    beta = s_p s_r (|p_q| |e_r| + |e_p| |r_q| + |e_p| |e_r|)

of the true one (``s`` the scales, ``q`` the quantised vectors, ``e`` the
rounding residuals; Cauchy-Schwarz), so each photo's exact top-k lies among
the identities within ``2 beta`` of its 8-bit k-th best, which would then be
scored exactly (render weights kept to 7 bits so that the AVX2 kernel's
16-bit pair sums cannot saturate).

This script times, for one block of photos against ``--identities`` x 10
renders, the float32 products with the maximum folded per render (what the
ranking does now), the 8-bit products alone, and the 8-bit products with the
maximum folded inside onnxruntime (MatMulInteger, Reshape, ReduceMax: the
fastest 8-bit variant found), as medians of ``--repeat`` runs, and prints the
speed-up and beta. The speed-up bounds what the pre-selection could gain
before its exact rescoring, which costs more on top.

    python benchmarks/rank_int8.py
    python benchmarks/rank_int8.py --identities 100000 --photos 256 --repeat 5
"""

from __future__ import annotations

import argparse
import time

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bids_app.rank.blocked import _best_render_similarity  # noqa: E402

DIM, RENDERS = 128, 10


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _session(nodes, inputs, outputs, initializers=(), threads: int = 2) -> ort.InferenceSession:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=20000)
    parser.add_argument("--photos", type=int, default=256, help="photos per block (the ranking's block)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.identities
    renders = _unit(rng.normal(size=(n, RENDERS, DIM)))
    photos = _unit(rng.normal(size=(args.photos, DIM)))
    slabs = [np.ascontiguousarray(renders[:, s]) for s in range(RENDERS)]

    def float32_fold():  # one product per slab over all identities, BLAS threads
        return _best_render_similarity(photos, slabs, workers=1)

    def float32_chunks():  # the ranking's default: worker threads on chunks, single-threaded BLAS
        with threadpool_limits(1, user_api="blas"):
            return _best_render_similarity(photos, slabs, workers=args.threads)

    # 8-bit: photos uint8 around 128 (a_zero_point), renders int8 within +-63 (7 bits)
    s_p = float(np.abs(photos).max()) / 127.0
    s_r = float(np.abs(renders).max()) / 63.0
    p_q = np.round(photos / s_p)
    r_q = np.round(renders / s_r)
    a = (p_q + 128).astype(np.uint8)
    b_slabs = [np.ascontiguousarray(r_q[:, s].T.astype(np.int8)) for s in range(RENDERS)]
    b_all = np.ascontiguousarray(np.concatenate(b_slabs, axis=1))
    zero = helper.make_tensor("zp", TensorProto.UINT8, [], [128])
    a_in = helper.make_tensor_value_info("A", TensorProto.UINT8, [None, DIM])
    b_in = helper.make_tensor_value_info("B", TensorProto.INT8, [DIM, None])
    y_out = helper.make_tensor_value_info("Y", TensorProto.INT32, [None, None])
    product = _session([helper.make_node("MatMulInteger", ["A", "B", "zp"], ["Y"])], [a_in, b_in], [y_out],
                       [zero], args.threads)
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, RENDERS, -1])
    fused = _session([helper.make_node("MatMulInteger", ["A", "B", "zp"], ["Y3d"]),
                      helper.make_node("Reshape", ["Y3d", "shape"], ["Y3"]),
                      helper.make_node("ReduceMax", ["Y3"], ["Y"], axes=[1], keepdims=0)],
                     [a_in, b_in], [y_out], [zero, shape], args.threads)

    def int8_products():
        for b in b_slabs:
            product.run(None, {"A": a, "B": b})

    def int8_fused():
        return fused.run(None, {"A": a, "B": b_all})[0]

    # the fused graph gives the 8-bit maximum over each identity's renders, exactly (checked on
    # the first identities: the float64 reference holds every product)
    m = min(n, 4000)
    b_sub = np.ascontiguousarray(np.concatenate([b[:, :m] for b in b_slabs], axis=1))
    q_max = (p_q @ r_q[:m].reshape(m * RENDERS, DIM).T).reshape(args.photos, m, RENDERS).max(axis=2)
    assert np.array_equal(fused.run(None, {"A": a, "B": b_sub})[0], q_max.astype(np.int32)), \
        "8-bit products are not exact"
    e_p = np.linalg.norm(photos / s_p - p_q, axis=1)
    e_r = float(np.linalg.norm(renders / s_r - r_q, axis=2).max())
    beta = s_p * s_r * (np.linalg.norm(p_q, axis=1) * e_r + e_p * float(np.linalg.norm(r_q, axis=2).max())
                        + e_p * e_r)
    error = np.abs(s_p * s_r * q_max - (photos @ renders[:m].reshape(m * RENDERS, DIM).T).reshape(
        args.photos, m, RENDERS).max(axis=2))

    assert np.array_equal(float32_fold(), float32_chunks()), "the chunked products differ"
    base = _median_seconds(float32_fold, args.repeat)
    chunks = _median_seconds(float32_chunks, args.repeat)
    raw = _median_seconds(int8_products, args.repeat)
    fold = _median_seconds(int8_fused, args.repeat)
    pairs = args.photos * n * RENDERS
    print(f"{args.photos} photos x {n} identities x {RENDERS} renders, {args.threads} threads, "
          f"median of {args.repeat}")
    print(f"  float32 products + maximum, BLAS threads:    {base:.3f} s  ({2 * pairs * DIM / base / 1e9:.0f} GFLOP/s)")
    print(f"  float32, {args.threads} worker threads on chunks (now): {chunks:.3f} s  "
          f"({2 * pairs * DIM / chunks / 1e9:.0f} GFLOP/s)  speed-up {base / chunks:.2f}  (same floats)")
    print(f"  8-bit products only:                {raw:.3f} s  speed-up {base / raw:.2f}")
    print(f"  8-bit products + maximum (fused):   {fold:.3f} s  speed-up {base / fold:.2f}")
    print(f"  certified error bound beta: median {np.median(beta):.4f}, max {beta.max():.4f} "
          f"(largest error seen {error.max():.4f}); an identity stays a candidate within 2 beta "
          f"of the photo's 8-bit k-th best")
    print(f"  at 100k participants (500k photos): float32 {chunks * 500000 / args.photos * 1e5 / n / 60:.1f} min, "
          f"8-bit fused {fold * 500000 / args.photos * 1e5 / n / 60:.1f} min before rescoring")


if __name__ == "__main__":
    main()
