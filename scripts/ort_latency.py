#!/usr/bin/env python3
"""Latency of ONNX models in onnxruntime, interleaved (A B A B ...).

usage: ort_latency.py [--batch 1] [--seq 128] [--threads 2] [--runs 20]
                      [--ort-optimize NUM_HEADS HIDDEN] MODEL.onnx [MODEL.onnx ...]

Inputs are realistic: random token ids (seeded), token types 0, the second
half of every row after the first padded. --ort-optimize also runs
onnxruntime's own transformers optimizer (model_type bert) on the first
model, the way onnxruntime users deploy, and measures its output alongside
the others in the same interleaved run. Prints one line per model: median
ms, ratio to the first, path.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def inputs_for(session, batch, seq, vocab=1000):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    for b in range(1, batch):
        mask[b, seq // 2:] = 0
    ids[mask == 0] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {i.name: feeds[i.name] for i in session.get_inputs()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--ort-optimize", nargs=2, type=int, metavar=("NUM_HEADS", "HIDDEN"))
    a = p.parse_args()

    paths = list(a.models)
    if a.ort_optimize:
        from onnxruntime.transformers import optimizer
        # opt_level=0: the fusions alone; levels 1+ first run onnxruntime's
        # graph optimizer from Python, which imports torch.
        opt = optimizer.optimize_model(paths[0], model_type="bert", num_heads=a.ort_optimize[0],
                                       hidden_size=a.ort_optimize[1], opt_level=0)
        fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        print(f"onnxruntime's optimizer on {paths[0]} fused: {fused}", file=sys.stderr)
        out = os.path.join(tempfile.mkdtemp(), "ort-optimized.onnx")
        opt.save_model_to_file(out)
        paths.append(out)

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(m, so, providers=["CPUExecutionProvider"]) for m in paths]
    feeds = [inputs_for(s, a.batch, a.seq) for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(3):
            s.run(None, f)
    times = [[] for _ in sessions]
    for _ in range(a.runs):
        for i, (s, f) in enumerate(zip(sessions, feeds)):
            t = time.perf_counter()
            s.run(None, f)
            times[i].append((time.perf_counter() - t) * 1e3)
    base = None
    labels = list(a.models) + ([f"{a.models[0]} after onnxruntime's optimizer"] if a.ort_optimize else [])
    for m, t in zip(labels, times):
        med = statistics.median(t)
        base = base or med
        print(f"{med:8.2f} ms  {med / base:5.2f}x  {m}  (onnxruntime {ort.__version__}, B={a.batch}, "
              f"S={a.seq}, {a.threads} threads, {a.runs} runs)")


if __name__ == "__main__":
    main()
