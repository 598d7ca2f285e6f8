#!/usr/bin/env python3
"""Latency of ONNX models in onnxruntime, interleaved (A B A B ...), over a
batch x sequence grid: the onnxruntime half of the README's comparison with
`bertc bench` (same files, same kind of inputs, same statistics).

usage: ort_latency.py [--batch 1,8] [--seq 128] [--threads 2] [--runs 20] [--warmup 3]
                      [--json] [--ort-optimize NUM_HEADS HIDDEN] MODEL.onnx [MODEL.onnx ...]

Inputs are bertc's realistic_inputs (src/runtime/inputs.rs): row 0 full,
row b of B keeps max(S - S*b/(2B), 1) real tokens, even rows b > 0
left-padded and odd rows right-padded; [CLS] (101) first, the second half of
the real tokens of token type 1 when the model has two types. Token ids are
drawn from the model's own vocabulary (the rows of its word-embedding table)
with numpy's generator, so values differ from bertc's, but speed does not
depend on them.

Each model gets an onnxruntime session with intra-op threads = --threads
(default 2) and one inter-op thread, a warm-up per cell, then timed runs
alternating between models. Prints one line per model and cell: p50, p90,
p99 ms, tokens/s, ratio of p50 to the first model's; --json prints one JSON
object instead (the keys of `bertc bench --json` results).

--ort-optimize also runs onnxruntime's transformers optimizer (model_type
bert) on the first model, the way onnxruntime users deploy, and measures its
output alongside the others.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def embedding_rows(path):
    """(vocab, type_vocab) from the model's embedding tables; (1000, 1) if unknown."""
    try:
        import onnx

        model = onnx.load(path, load_external_data=False)
        dims = {t.name: list(t.dims) for t in model.graph.initializer}
    except Exception:  # onnx missing or unreadable: sizes only shape the ids
        return 1000, 1
    vocab = next((d[0] for n, d in dims.items() if "word_embeddings" in n and len(d) == 2), 1000)
    types = next((d[0] for n, d in dims.items() if "token_type_embeddings" in n and len(d) == 2), 1)
    return vocab, types


def realistic_inputs(vocab, type_vocab, batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, seq), dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    types = np.zeros((batch, seq), dtype=np.int64)
    for b in range(batch):
        length = seq if b == 0 else max(seq - seq * b // (2 * batch), 1)
        start = seq - length if (b % 2 == 0 and b > 0) else 0
        real = slice(start, start + length)
        ids[b, real] = rng.integers(1, max(vocab, 2), size=length)
        ids[b, start] = min(101, vocab - 1)
        mask[b, real] = 1
        if type_vocab > 1:
            types[b, start + length // 2:start + length] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def feeds_for(session, tensors):
    return {i.name: tensors[i.name] for i in session.get_inputs()}


def percentile(sorted_ms, p):
    """Nearest rank, as bertc bench computes it."""
    k = max(1, min(len(sorted_ms), int(np.ceil(p * len(sorted_ms)))))
    return sorted_ms[k - 1]


def int_list(text):
    values = [int(v) for v in text.split(",")]
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text}: sizes must be at least 1")
    return values


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--batch", type=int_list, default=[1])
    p.add_argument("--seq", type=int_list, default=[128])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--ort-optimize", nargs=2, type=int, metavar=("NUM_HEADS", "HIDDEN"))
    a = p.parse_args()
    for m in a.models:
        if not os.path.isfile(m):
            p.error(f"{m}: no such file")

    paths = list(a.models)
    labels = list(a.models)
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
        labels.append(f"{a.models[0]} after onnxruntime's optimizer")

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    # The sessions take turns: an idle session's spinning threads would steal the
    # running one's cores (an int8 BERT-base read 82-88 ms instead of 45-49 ms).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = [ort.InferenceSession(m, so, providers=["CPUExecutionProvider"]) for m in paths]
    sizes = [embedding_rows(m) for m in paths]

    results = []
    for batch in a.batch:
        for seq in a.seq:
            feeds = [feeds_for(s, realistic_inputs(v, t, batch, seq)) for s, (v, t) in zip(sessions, sizes)]
            for s, f in zip(sessions, feeds):
                for _ in range(a.warmup):
                    s.run(None, f)
            times = [[] for _ in sessions]
            for _ in range(a.runs):
                for i, (s, f) in enumerate(zip(sessions, feeds)):
                    t = time.perf_counter()
                    s.run(None, f)
                    times[i].append((time.perf_counter() - t) * 1e3)
            first = None
            for label, t in zip(labels, times):
                t = sorted(t)
                p50 = percentile(t, 0.5)
                first = first or p50
                results.append({
                    "model": label, "batch": batch, "seq": seq, "runs": len(t),
                    "p50_ms": p50, "p90_ms": percentile(t, 0.9), "p99_ms": percentile(t, 0.99),
                    "mean_ms": statistics.fmean(t), "min_ms": t[0],
                    "sequences_per_s": batch / (p50 / 1e3), "tokens_per_s": batch * seq / (p50 / 1e3),
                    "ratio_to_first": p50 / first,
                })
    if a.json:
        print(json.dumps({"runtime": "onnxruntime", "version": ort.__version__, "threads": a.threads,
                          "runs": a.runs, "warmup": a.warmup, "results": results}, indent=2))
        return
    print(f"onnxruntime {ort.__version__}, {a.threads} threads, {a.runs} timed runs after {a.warmup} warm-up "
          f"per cell, models interleaved")
    print(f"{'B':>4} {'S':>5}  {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'tokens/s':>10} {'ratio':>6}  model")
    for r in results:
        print(f"{r['batch']:>4} {r['seq']:>5}  {r['p50_ms']:>9.2f} {r['p90_ms']:>9.2f} {r['p99_ms']:>9.2f} "
              f"{r['tokens_per_s']:>10.0f} {r['ratio_to_first']:>5.2f}x  {r['model']}")


if __name__ == "__main__":
    main()
