#!/usr/bin/env python3
"""The least any i8 x i8 form can cost in tract: a timing-only copy of a bertc int8 file.

usage: tract_int8_floor.py INT8.onnx FLOOR.onnx

INT8.onnx is bertc's tract/portable int8 file (`bertc compile M --quantize dynamic`).
FLOOR.onnx keeps only what tract must do around each integer product:

    x -> Cast<i8> -> MatMulInteger(·, W int8) -> Cast<f32> -> + bias

with no range, no scaling and no rounding; its outputs are meaningless. Its
per-op profile (`cargo run --release --example profile -- FLOOR.onnx
--inputs-from INT8.onnx --runs 20`) shows what tract spends around the
products whatever the graph (the Casts and the int8 activation packing), and
its whole run bounds what any usable form can reach against fp32: a usable form
adds at least one scaling pass before each Cast<i8> and after each Cast<f32>.
Note that without the Exp bertc's form runs on the row scales, this file's
Casts follow kernels that leave the upper vector registers dirty and run up to
3x slower than in bertc's file (see passes/quantize_int8.rs).

Needs onnx (scripts/requirements.txt).
"""
import os
import sys

import onnx


def floor(model):
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    rewired = 0
    for n in g.node:
        # bertc's quantizer: Mul(x, inv_scale) -> Add(R) -> Sub(R) -> Cast<i8>.
        if n.op_type == "Cast" and n.input[0].endswith(".input_rounded"):
            sub = producer[n.input[0]]
            add = producer[sub.input[0]]
            mul = producer[add.input[0]]
            n.input[0] = mul.input[0]
            rewired += 1
        # Its dequantization: Mul(row) -> Mul(col) -> Add(bias): the Add reads the Cast.
        if n.op_type == "Add" and n.input[0].endswith(".col_scale"):
            n.input[0] = n.input[0][: -len(".col_scale")] + ".to_f32"
    if rewired == 0:
        sys.exit("no bertc int8 quantizer found (compile with --quantize dynamic, the tract form)")
    # Drop what no output reads any more (the ranges, the scales).
    live = {o.name for o in g.output}
    kept = []
    for n in reversed(list(g.node)):
        if any(o in live for o in n.output):
            kept.append(n)
            live.update(n.input)
    del g.node[:]
    g.node.extend(reversed(kept))
    return rewired


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, out = sys.argv[1], sys.argv[2]
    if os.path.exists(out) and os.path.samefile(source, out):
        sys.exit(f"{out} is the input model: choose another output path")
    model = onnx.load(source)
    n = floor(model)
    # Written beside the output and renamed: no partial file on failure.
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"{out}: {n} quantized inputs reduced to a bare Cast, {len(model.graph.node)} nodes")


if __name__ == "__main__":
    main()
