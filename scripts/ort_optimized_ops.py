#!/usr/bin/env python3
"""The op histogram of a model after onnxruntime's own graph optimizer:
which of bertc's patterns its fusions (MatMulIntegerToFloat,
DynamicQuantizeMatMul, ...) actually matched.

usage: ort_optimized_ops.py MODEL.onnx

Prints one JSON object {op_type: count} of the graph onnxruntime saves
after optimizing at ORT_ENABLE_EXTENDED (the fusions, without the
hardware-specific layout changes of ORT_ENABLE_ALL).
"""
import collections
import json
import os
import sys
import tempfile

import onnx
import onnxruntime as ort


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.join(tempfile.mkdtemp(), "optimized.onnx")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = out
    ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
    model = onnx.load(out, load_external_data=False)
    print(json.dumps(dict(collections.Counter(n.op_type for n in model.graph.node))))


if __name__ == "__main__":
    main()
