#!/usr/bin/env python3
"""What onnxruntime's u8 x s8 kernel computes on x86 CPUs without VNNI, on any CPU.

usage: ort_saturation.py MODEL.onnx GOLDEN.safetensors

Without VNNI (AVX2, AVX-512 without VNNI), onnxruntime's MLAS multiplies u8
activations by s8 weights with `vpmaddubsw`, which adds each pair of adjacent
products along K in 16 bits with signed saturation before the exact 32-bit sums
(onnxruntime issue #6004). This script rewrites every MatMulInteger(A u8, B s8
constant, a_zero_point) of MODEL into exactly that arithmetic,

    sum_j clip(a[2j] b[2j] + a[2j+1] b[2j+1], -32768, 32767) - a_zp * sum_k b[k]

in f32 ops (every intermediate is an integer below 2^24, so f32 is exact), runs
both graphs in onnxruntime with graph optimizations off (so the MatMulIntegers
are not fused away), and prints, per output row, the cosine of the sentence
embedding with GOLDEN's `sentence_embedding` (the model's own
`sentence_embedding` output, or the masked mean of `last_hidden_state`).

Needs onnx, onnxruntime and numpy (scripts/requirements.txt).
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_check import read_safetensors  # noqa: E402


def constant(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def saturating(model):
    """MODEL with every MatMulInteger replaced by the AVX2 u8 x s8 arithmetic."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, extra = [], []
    for n in g.node:
        if n.op_type != "MatMulInteger":
            nodes.append(n)
            continue
        a, b = n.input[0], n.input[1]
        zp = n.input[2] if len(n.input) > 2 else ""
        if len(n.input) > 3 and n.input[3]:
            w_zp = numpy_helper.to_array(inits[n.input[3]])
            if np.any(w_zp != 0):
                sys.exit(f"{n.name}: weight zero points other than 0 are not emulated")
        w = numpy_helper.to_array(inits[b]).astype(np.float32)
        k = w.shape[0]
        if w.ndim != 2 or k % 2:
            sys.exit(f"{n.name}: weights {w.shape}: expected [K, N] with K even")
        p = n.name
        extra += [
            constant(p + ".b_even", w[0::2][None]),  # [1, K/2, N]
            constant(p + ".b_odd", w[1::2][None]),
            constant(p + ".b_colsum", w.sum(0)),
            constant(p + ".start0", np.array([0], np.int64)),
            constant(p + ".start1", np.array([1], np.int64)),
            constant(p + ".end", np.array([k], np.int64)),
            constant(p + ".last", np.array([-1], np.int64)),
            constant(p + ".step2", np.array([2], np.int64)),
            constant(p + ".pair_axis", np.array([-2], np.int64)),
            constant(p + ".i16_min", np.array(-32768, np.float32)),
            constant(p + ".i16_max", np.array(32767, np.float32)),
        ]
        nodes += [
            helper.make_node("Cast", [a], [p + ".a"], to=TensorProto.FLOAT),
            # a[..., M, K] -> even / odd columns, [..., M, K/2, 1]
            helper.make_node("Slice", [p + ".a", p + ".start0", p + ".end", p + ".last", p + ".step2"], [p + ".a_even"]),
            helper.make_node("Slice", [p + ".a", p + ".start1", p + ".end", p + ".last", p + ".step2"], [p + ".a_odd"]),
            helper.make_node("Unsqueeze", [p + ".a_even", p + ".last"], [p + ".a_even3"]),
            helper.make_node("Unsqueeze", [p + ".a_odd", p + ".last"], [p + ".a_odd3"]),
            helper.make_node("Mul", [p + ".a_even3", p + ".b_even"], [p + ".even"]),  # [..., M, K/2, N]
            helper.make_node("Mul", [p + ".a_odd3", p + ".b_odd"], [p + ".odd"]),
            helper.make_node("Add", [p + ".even", p + ".odd"], [p + ".pairs"]),
            helper.make_node("Clip", [p + ".pairs", p + ".i16_min", p + ".i16_max"], [p + ".saturated"]),
            helper.make_node("ReduceSum", [p + ".saturated", p + ".pair_axis"], [p + ".raw"], keepdims=0),
        ]
        if zp:
            nodes += [
                helper.make_node("Cast", [zp], [p + ".zp"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [p + ".zp", p + ".b_colsum"], [p + ".correction"]),
                helper.make_node("Sub", [p + ".raw", p + ".correction"], [p + ".acc"]),
            ]
        else:
            nodes.append(helper.make_node("Identity", [p + ".raw"], [p + ".acc"]))
        nodes.append(helper.make_node("Cast", [p + ".acc"], [n.output[0]], to=TensorProto.INT32))
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(extra)
    del g.value_info[:]
    return model


def sentence_cosines(name, out, golden):
    want = golden["sentence_embedding"]
    if name == "last_hidden_state":
        mask = golden["attention_mask"][..., None].astype(np.float32)
        out = (out * mask).sum(1) / mask.sum(1)
    out = out / np.linalg.norm(out, axis=1, keepdims=True)
    return (out * want).sum(1)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    model = onnx.load(argv[1])
    golden = read_safetensors(argv[2])
    outputs = [o.name for o in model.graph.output]
    name = next((o for o in ("sentence_embedding", "last_hidden_state") if o in outputs), None)
    if name is None:
        sys.exit(f"{argv[1]}: no sentence_embedding or last_hidden_state output")
    feed = {i.name: golden[i.name] for i in model.graph.input}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def run(m):
        session = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return session.run([name], feed)[0]

    exact = run(model)
    saturated = run(saturating(model))
    for what, out in [("exact u8 x s8 (VNNI, AMX, ARM)", exact), ("AVX2 pair saturation", saturated)]:
        cos = sentence_cosines(name, out, golden)
        print(f"{what:32s} worst row {cos.min():.5f}  rows {' '.join(f'{c:.5f}' for c in cos)}")
    print(f"{'max-abs exact vs saturated':32s} {np.abs(exact - saturated).max():.3g} ({name})")


if __name__ == "__main__":
    main(sys.argv)
