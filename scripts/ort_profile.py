#!/usr/bin/env python3
"""Where an ONNX file's time goes in onnxruntime: kernel time per op type, per layer-normalized node
name, and the part no graph rewrite can remove — the linear layers' products (MatMul / Gemm and their
int8 forms whose weight is an initializer).

usage: ort_profile.py MODEL.onnx [MODEL.onnx ...] [--seq 128] [--batch 1] [--threads 2] [--runs 10]
                      [--by op|node] [--top 20]

For each file: B×S inputs (ids in 5..1000, a full attention mask, token types 0), 3 warm-up runs and
--runs profiled runs with onnxruntime's own profiler (CPUExecutionProvider, intra-op threads =
--threads, ORT_ENABLE_ALL), kernel times averaged per run. The "linear floor" line is the sum of the
products against constant weights: two files of one model do the same linear products, so
floor / (the other file's total) is the best ratio any rewrite of everything else can reach.
Node names have their layer index replaced by N, so "encoder.layer.N.attention.self" sums the layers.
--kept REGEX (repeatable) names the other kernels no rewrite removes — matched against the
"node [op]" key of --by node, e.g. '\[Attention\]' or 'LayerNorm' — and prints their time and their
share of everything beside the products: the README's fp32 floor scales "the rest" by that share.

Run it on a quiet machine (or at autogroup nice -20): the profile is a sequence, not interleaved.
"""
import argparse
import collections
import json
import os
import re
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

LAYER = re.compile(r"layers?[./_]\d+")
PRODUCTS = {"MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul", "QLinearMatMul", "QAttention"}


def feeds_for(session, batch, seq):
    rng = np.random.default_rng(0)
    feeds = {}
    for i in session.get_inputs():
        shape = [batch if k == 0 else seq for k in range(len(i.shape))]
        if "mask" in i.name:
            feeds[i.name] = np.ones(shape, np.int64)
        elif "type" in i.name:
            feeds[i.name] = np.zeros(shape, np.int64)
        else:
            feeds[i.name] = rng.integers(5, 1000, shape).astype(np.int64)
    return feeds


def linear_nodes(path):
    """Names of the product nodes whose second operand is an initializer (a weight), as written;
    onnxruntime's fused nodes keep the name of the node they grew from, or extend it."""
    m = onnx.load(path, load_external_data=False)
    weights = {t.name for t in m.graph.initializer}
    weights |= {n.output[0] for n in m.graph.node if n.op_type == "Constant"}
    return {n.name for n in m.graph.node
            if n.op_type in PRODUCTS and len(n.input) > 1 and n.input[1] in weights}


def profile(path, a):
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "ort_profile")
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = feeds_for(s, a.batch, a.seq)
    for _ in range(3):
        s.run(None, feeds)
    walls = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        s.run(None, feeds)
        walls.append(time.perf_counter() - t0)
    trace = s.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    runs = 3 + a.runs
    return kernels, runs, float(np.median(walls)) * 1e3


def regex(text):
    try:
        return re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"not a regular expression ({e}): {text!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--by", choices=["op", "node"], default="op")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--kept", action="append", default=[], metavar="REGEX", type=regex,
                   help="kernels (their 'node [op]' key) no rewrite removes; repeatable")
    a = p.parse_args()
    kept_patterns = a.kept
    print(f"onnxruntime {ort.__version__}, B={a.batch}, S={a.seq}, {a.threads} threads, {a.runs} profiled runs")
    for path in a.models:
        kernels, runs, wall = profile(path, a)
        linear = linear_nodes(path)
        by = collections.Counter()
        count = collections.Counter()
        floor = 0.0
        kept = 0.0
        for e in kernels:
            node = e["name"][: -len("_kernel_time")]
            op = e["args"]["op_name"]
            node_key = f"{LAYER.sub('layer.N', node)} [{op}]"
            if op in PRODUCTS and any(node == n or node.startswith(n) for n in linear):
                floor += e["dur"]
            elif any(k.search(node_key) for k in kept_patterns):
                kept += e["dur"]
            key = op if a.by == "op" else node_key
            by[key] += e["dur"]
            count[key] += 1
        total = sum(by.values())
        print(f"\n{path}: {wall:.1f} ms per run (median wall), kernels {total / runs / 1e3:.1f} ms, "
              f"{len(kernels) // runs} kernels per run")
        print(f"  linear floor (products against weights): {floor / runs / 1e3:.1f} ms "
              f"({100 * floor / total:.1f} % of the kernel time)")
        if kept_patterns:
            rest = total - floor
            print(f"  kept beside them (--kept): {kept / runs / 1e3:.1f} ms of the rest's "
                  f"{rest / runs / 1e3:.1f} ms ({100 * kept / rest:.1f} %)")
        for k, v in by.most_common(a.top):
            print(f"  {k:60s} {v / runs / 1e3:8.2f} ms {100 * v / total:5.1f} %  x{count[k] // runs}")


if __name__ == "__main__":
    main()
