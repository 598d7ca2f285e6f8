#!/usr/bin/env python3
"""The fp32 floor of a model file: its linear products alone, in onnxruntime, beside the anchor.

usage: products_floor.py --anchor ANCHOR.onnx [--seq 128] [--threads 2] [--rounds 3] [--runs 5]
                         [--work DIR] [--save RESULT.json] MODEL.onnx

Issue 23's speed line asks bertc's fp32 file to run in at most 0.8x the anchor's time (Optimum's
export). No rewrite of the rest of a graph makes its products cheaper: a file that keeps the
model's fp32 arithmetic runs every product of a token against a weight matrix, in the same
onnxruntime GEMM kernel the anchor uses. This script measures that floor:

1. Reads MODEL.onnx (shapes only) and lists every product the file runs per token: a MatMul, Gemm
   or com.microsoft FusedMatMul whose left operand is computed from the model's inputs and whose
   right operand is a 2-D initializer [K, N]; a com.microsoft Attention's packed projection
   (input 1, [K, 3H]). Products of constants only (DeBERTa's projected relative tables) are
   folded when onnxruntime loads the file, and are not counted.
2. Writes a model of those products alone (WORK/products-SEQ.onnx): `input_ids` [1, SEQ] becomes
   one [1, SEQ, K] activation per K (a Cast, a Mul and an Expand: microseconds), each product reads
   its activation and its own random N(0, 0.02) weight of the listed shape, every product is an
   output (nothing is pruned).
3. Runs scripts/runtimes.py in onnxruntime (B=1, interleaved rounds) on [ANCHOR, MODEL, products]
   and prints its table, the products' GFLOP and the floor: products / anchor. When the floor is
   above 0.8, no fp32 graph of these products reaches 0.8x of the anchor on this CPU.

scripts/ort_profile.py gives the same floor from onnxruntime's profiler (the kernel times of one
file's products); this one runs the products as a model of their own, interleaved with the anchor,
so the ratio comes from one run's rounds like every other table.

Run it with a Python that has onnx, numpy and onnxruntime (the anchors' venv); never in the tests.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def products(path):
    """[(node name, K, N)] for every per-token product of the file (see the module doc)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    g = model.graph
    dims = {t.name: list(t.dims) for t in g.initializer}
    dynamic = {i.name for i in g.input if i.name not in dims}
    found = []
    for node in g.node:  # ONNX nodes are in topological order
        if any(x in dynamic for x in node.input if x):
            dynamic.update(o for o in node.output if o)
        else:
            continue
        left = node.input[0] if node.input else ""
        right = node.input[1] if len(node.input) > 1 else ""
        if left not in dynamic or len(dims.get(right, [])) != 2:
            continue
        k, n = dims[right]
        if node.op_type == "Gemm":
            if any(a.name == "transB" and a.i == 1 for a in node.attribute):
                k, n = n, k
        elif node.op_type == "FusedMatMul":
            if any(a.name == "transB" and a.i == 1 for a in node.attribute):
                k, n = n, k
        elif node.op_type not in ("MatMul", "Attention"):
            continue
        found.append((node.name, k, n))
    return found


def products_model(found, seq, out):
    """The products alone, as one model reading `input_ids` [1, seq]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "last_axis"], ["ids_col"]),
        helper.make_node("Mul", ["ids_col", "small"], ["x1"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array(1e-3, dtype=np.float32), "small"),
    ]
    outputs = []
    for k in sorted({k for _, k, _ in found}):
        inits.append(numpy_helper.from_array(np.array([1, seq, k], dtype=np.int64), f"shape_{k}"))
        nodes.append(helper.make_node("Expand", ["x1", f"shape_{k}"], [f"x_{k}"]))
    for i, (_, k, n) in enumerate(found):
        w = rng.normal(0.0, 0.02, size=(k, n)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"x_{k}", f"w{i}"], [f"y{i}"]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, seq, n]))
    graph = helper.make_graph(
        nodes,
        "products",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--anchor", required=True)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--work", default=os.path.join(ROOT, "target", "products-floor"))
    p.add_argument("--save", metavar="RESULT.json")
    a = p.parse_args()

    if a.seq < 1:
        raise SystemExit(f"--seq must be at least 1, got {a.seq}")
    for f in (a.model, a.anchor):
        if not os.path.isfile(f):
            raise SystemExit(f"{f}: no such file")
    floor = os.path.join(a.work, f"products-{a.seq}.onnx")
    # WORK is this script's own folder (its two files are replaced on each run); never one of the
    # files it reads.
    if os.path.exists(floor) and any(os.path.samefile(f, floor) for f in (a.model, a.anchor)):
        raise SystemExit(f"{floor} is one of the files to time; give another --work")
    found = products(a.model)
    if not found:
        raise SystemExit(f"{a.model}: no product of a model input against a 2-D weight")
    shapes = {}
    for _, k, n in found:
        shapes[(k, n)] = shapes.get((k, n), 0) + 1
    gflop = 2 * a.seq * sum(k * n for _, k, n in found) / 1e9
    print(f"{len(found)} products at S={a.seq}, {gflop:.1f} GFLOP: "
          + ", ".join(f"{c}x[{k}, {n}]" for (k, n), c in sorted(shapes.items())))
    os.makedirs(a.work, exist_ok=True)
    products_model(found, a.seq, floor)
    save = os.path.join(a.work, f"runtimes-{a.seq}.json")
    cmd = [
        sys.executable, os.path.join(HERE, "runtimes.py"), "--runtimes", "onnxruntime",
        "--seq", str(a.seq), "--batch", "1", "--threads", str(a.threads), "--rounds", str(a.rounds),
        "--runs", str(a.runs), "--save", save, a.anchor, a.model, floor,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"runtimes.py failed:\n{r.stderr}")
    print(r.stdout)
    with open(save) as f:
        doc = json.load(f)
    cells = doc["cells"]["onnxruntime"]
    floor_ratio = cells[floor].get("ratio_to_first")
    model_ratio = cells[a.model].get("ratio_to_first")
    floor_ms = cells[floor].get("p50_ms")
    doc["products"] = {
        "count": len(found),
        "gflop": gflop,
        "gflop_per_s": gflop / floor_ms * 1e3 if floor_ms else None,
        "shapes": {f"{k}x{n}": c for (k, n), c in sorted(shapes.items())},
        "floor_ratio_to_anchor": floor_ratio,
        "model_ratio_to_anchor": model_ratio,
    }
    if floor_ratio is None or model_ratio is None:
        raise SystemExit("a file did not run; see the table")
    print(f"the file: {model_ratio:.2f}x the anchor; its products alone: {floor_ratio:.2f}x "
          f"({gflop / floor_ms * 1e3:.0f} GFLOP/s); the rest of the file: "
          f"{model_ratio - floor_ratio:.2f}x")
    if a.save:
        with open(a.save, "w") as f:
            json.dump(doc, f, indent=2)

if __name__ == "__main__":
    main()
