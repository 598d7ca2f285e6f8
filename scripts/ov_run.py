#!/usr/bin/env python3
"""Runs an ONNX model in OpenVINO (CPU, f32 inference precision) on the
inputs of a safetensors file and writes its outputs to another, so tests
can compare OpenVINO's numbers with tract's and PyTorch's.

usage: ov_run.py MODEL.onnx INPUTS.safetensors OUTPUTS.safetensors
"""
import json
import struct
import sys

import numpy as np
import openvino as ov

DTYPES = {"I64": np.int64, "F32": np.float32, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    model, inputs, outputs = sys.argv[1:4]
    core = ov.Core()
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})
    feeds = read_safetensors(inputs)
    names = [i.get_any_name() for i in compiled.inputs]
    result = compiled({n: feeds[n] for n in names})
    write_safetensors(outputs, {o.get_any_name(): np.asarray(result[o]) for o in compiled.outputs})


if __name__ == "__main__":
    main()
