#!/usr/bin/env python3
"""onnxruntime's int8 forms of an onnxruntime-optimized BERT, for tests/foreign2.rs:
what `quantize_dynamic` writes for a file onnxruntime's transformers optimizer made
(QAttention, QEmbedLayerNormalization, MatMulInteger chains), and the same file as
onnxruntime itself saves it after its load-time fusions (DynamicQuantizeMatMul).

usage: make_ort_int8_fixtures.py SHARED_FOREIGN2_DIR OUT_DIR

Source: SHARED_FOREIGN2_DIR/ortopt-seq-cls-level2/model.onnx (the shared golden set's
`--model_type bert --opt_level 2` file of a BERT classifier, hidden 32, 2 layers). Its
word table is cut to its first 2048 rows first, so the fixtures stay ~100 KB; the golden
inputs use ids below 2048 (seeded, rows full / right-padded / left-padded).

Writes OUT_DIR/ortq-dynamic-ortopt-level2/{model.onnx,golden.safetensors} and
OUT_DIR/ortq-dynamic-ortopt-level2-fused/{model.onnx,golden.safetensors}; each golden
holds the inputs and onnxruntime's outputs of that file (its default optimization level).
Needs only onnx, onnxruntime and numpy (scripts/requirements.txt).
"""
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_check import write_safetensors  # noqa: E402

ROWS = 2048
BATCH, SEQ = 3, 16


def cut_word_table(model):
    """The word table (the EmbedLayerNormalization's input 2) cut to its first ROWS rows."""
    node = next(n for n in model.graph.node if n.op_type == "EmbedLayerNormalization")
    init = next(i for i in model.graph.initializer if i.name == node.input[2])
    table = numpy_helper.to_array(init)[:ROWS]
    init.CopyFrom(numpy_helper.from_array(table, init.name))


def golden_inputs():
    """Seeded ids below ROWS framed by [CLS] 101 / [SEP] 102; row 0 full, row 1
    right-padded (10 real tokens), row 2 left-padded (7 real tokens)."""
    rng = np.random.default_rng(24)
    ids = np.zeros((BATCH, SEQ), np.int64)
    mask = np.zeros((BATCH, SEQ), np.int64)
    for row, (start, length) in enumerate([(0, SEQ), (0, 10), (SEQ - 7, 7)]):
        tokens = rng.integers(1000, ROWS, length)
        tokens[0], tokens[-1] = 101, 102
        ids[row, start:start + length] = tokens
        mask[row, start:start + length] = 1
    types = np.zeros((BATCH, SEQ), np.int64)
    types[0, SEQ // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def write_case(path, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model = os.path.join(out_dir, "model.onnx")
    os.replace(path, model)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = golden_inputs()
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    outputs = session.run(None, feed)
    golden = dict(feed)
    golden.update({o.name: v for o, v in zip(session.get_outputs(), outputs)})
    write_safetensors(os.path.join(out_dir, "golden.safetensors"), golden)
    ops = sorted({(n.domain or "ai.onnx", n.op_type) for n in onnx.load(model).graph.node})
    print(out_dir, os.path.getsize(model), "bytes:", ", ".join(f"{d}.{o}" for d, o in ops))


def main(shared, out):
    source = onnx.load(os.path.join(shared, "ortopt-seq-cls-level2", "model.onnx"))
    cut_word_table(source)
    with tempfile.TemporaryDirectory() as tmp:
        cut = os.path.join(tmp, "cut.onnx")
        onnx.save(source, cut)
        quantized = os.path.join(tmp, "quantized.onnx")
        # The contrib ops defeat the quantizer's shape inference: their
        # outputs are f32, which DefaultTensorType says.
        quantize_dynamic(cut, quantized, per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        fused = os.path.join(tmp, "fused.onnx")
        options.optimized_model_filepath = fused
        ort.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])
        write_case(quantized, os.path.join(out, "ortq-dynamic-ortopt-level2"))
        write_case(fused, os.path.join(out, "ortq-dynamic-ortopt-level2-fused"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
