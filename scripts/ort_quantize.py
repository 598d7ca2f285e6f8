#!/usr/bin/env python3
"""onnxruntime's own int8 quantization of an fp32 model: the files bertc
must import (and the anchors it is measured against).

usage: ort_quantize.py IN.onnx OUT.onnx dynamic|qdq|qlinear-matmul

- dynamic: quantize_dynamic(per_channel=True, weight_type=QInt8), as Optimum's
  dynamic configs do: DynamicQuantizeLinear, MatMulInteger with zero points,
  DequantizeLinear for gathered tables.
- qdq: quantize_static in QDQ format (per-channel s8 weights, u8 activations):
  QuantizeLinear/DequantizeLinear pairs around every MatMul.
- qlinear-matmul: quantize_static in QOperator format, MatMuls only
  (per tensor): QLinearMatMul between QuantizeLinear and DequantizeLinear.

Static calibration runs 4 batches of 2 x 16 random token ids drawn from the
model's own vocabulary (seeded), all tokens real, token type 0.
"""
import logging
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)


class Batches(CalibrationDataReader):
    def __init__(self, path):
        model = onnx.load(path, load_external_data=False)
        dims = {t.name: list(t.dims) for t in model.graph.initializer}
        vocab = next((d[0] for n, d in dims.items() if "word_embeddings" in n and len(d) == 2), 100)
        names = [i.name for i in model.graph.input]
        rng = np.random.default_rng(0)
        shape = (2, 16)
        feeds = []
        for _ in range(4):
            all_inputs = {
                "input_ids": rng.integers(1, vocab, size=shape).astype(np.int64),
                "attention_mask": np.ones(shape, np.int64),
                "token_type_ids": np.zeros(shape, np.int64),
            }
            feeds.append({n: all_inputs[n] for n in names})
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, dst, mode = sys.argv[1:]
    logging.getLogger().setLevel(logging.ERROR)
    if mode == "dynamic":
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8)
    elif mode == "qdq":
        quantize_static(src, dst, Batches(src), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    elif mode == "qlinear-matmul":
        quantize_static(src, dst, Batches(src), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["MatMul"], per_channel=False,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    else:
        sys.exit(f"unknown mode {mode!r}\n{__doc__}")


if __name__ == "__main__":
    main()
