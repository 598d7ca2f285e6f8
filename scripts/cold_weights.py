#!/usr/bin/env python3
"""How fast onnxruntime's fp32 GEMM runs a transformer's products when their weights come from memory.

usage: cold_weights.py [--rows 512] [--k 768] [--n 1152] [--pairs 40] [--threads 2] [--rounds 7]

A BERT-base-sized encoder reads each of its weight matrices once per run (hundreds of MB), so its
products see every weight cold; a microbenchmark of one product keeps its weight in the cache.
This times, interleaved in one process (B=1, fp32, CPUExecutionProvider, no spinning threads):

- warm:      one pair of products [rows, k] x [k, n] x [n, k], its 2 weights (a few MB) in cache;
- cold:      a chain of --pairs such pairs, each with its own weights (pairs x 2 x k x n x 4 bytes);
- cold, cut: the same chain with every product's rows cut in 2 and in 4 (Split, products, Concat),
             to tell the weights' first read from the activations' size.

Each line gives the median time of one chain and its GFLOP/s. The chains compute the same numbers
(checked). Run it with the anchors' Python (onnx, numpy, onnxruntime); never in the tests.
"""
import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def chain(a, pairs, cuts, rng):
    """`pairs` pairs of products x·W·V, each product's rows cut into `cuts` parts."""
    nodes, weights = [], []
    for i in range(pairs):
        for name, (rows, cols) in ((f"w{i}", (a.k, a.n)), (f"v{i}", (a.n, a.k))):
            w = (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)
            weights.append(numpy_helper.from_array(w, name))
    if cuts > 1:
        weights.append(numpy_helper.from_array(np.full(cuts, a.rows // cuts, np.int64), "cut"))
    x = "x"
    for i in range(pairs):
        for w in (f"w{i}", f"v{i}"):
            y = f"{w}.out"
            if cuts == 1:
                nodes.append(helper.make_node("MatMul", [x, w], [y]))
            else:
                parts = [f"{w}.rows{c}" for c in range(cuts)]
                nodes.append(helper.make_node("Split", [x, "cut"], parts, axis=1))
                nodes += [helper.make_node("MatMul", [p, w], [p + ".out"]) for p in parts]
                nodes.append(helper.make_node("Concat", [p + ".out" for p in parts], [y], axis=1))
            x = y
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, a.rows, a.k])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, a.rows, a.k])],
        weights,
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--k", type=int, default=768)
    p.add_argument("--n", type=int, default=1152)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    if a.rows < 4 or a.rows % 4:
        p.error("--rows must be a positive multiple of 4 (the chains cut it in 2 and 4)")
    if min(a.k, a.n, a.pairs, a.threads, a.rounds) < 1:
        p.error("--k, --n, --pairs, --threads and --rounds must be at least 1")
    cases = {
        "warm (1 pair)": (chain(a, 1, 1, np.random.default_rng(0)), 1),
        f"cold ({a.pairs} pairs)": (chain(a, a.pairs, 1, np.random.default_rng(0)), a.pairs),
        "cold, rows cut in 2": (chain(a, a.pairs, 2, np.random.default_rng(0)), a.pairs),
        "cold, rows cut in 4": (chain(a, a.pairs, 4, np.random.default_rng(0)), a.pairs),
    }
    x = np.random.default_rng(1).standard_normal((1, a.rows, a.k)).astype(np.float32)
    outputs = [s.run(None, {"x": x})[0] for s, _ in list(cases.values())[1:]]
    assert all(np.array_equal(o, outputs[0]) for o in outputs), "the cut chains disagree"
    times = {name: [] for name in cases}
    for _ in range(a.rounds):
        for name, (session, _) in cases.items():
            session.run(None, {"x": x})
            start = time.perf_counter()
            session.run(None, {"x": x})
            times[name].append(time.perf_counter() - start)
    weights_mb = a.pairs * 2 * a.k * a.n * 4 / 1e6
    print(f"[{a.rows}, {a.k}] x [{a.k}, {a.n}] x [{a.n}, {a.k}], {a.threads} threads, {a.rounds} rounds; "
          f"the cold chain's weights {weights_mb:.0f} MB")
    for name, (_, pairs) in cases.items():
        t = float(np.median(times[name]))
        gflops = 2 * 2 * pairs * a.rows * a.k * a.n / t / 1e9
        print(f"  {name:24s} {t * 1e3:9.2f} ms  {gflops:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
