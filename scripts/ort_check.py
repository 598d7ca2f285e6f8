#!/usr/bin/env python3
"""Validate an ONNX model and run it in onnxruntime.

usage: ort_check.py MODEL.onnx INPUTS.safetensors OUTPUTS.safetensors [LEVELS]

1. onnx.checker.check_model(full_check=True); on failure the message goes to
   stderr and the exit code is 2.
2. Runs the model on CPU with the tensors of INPUTS whose names are model
   inputs (others are ignored; exit 3 if a model input is missing) and writes
   every model output to OUTPUTS under its own name.
3. Prints one line per output: `name dtype shape`, e.g. `last_hidden_state F32 [2,8,32]`.

LEVELS (optional): graph optimization levels, comma-separated, among
disable_all, basic, extended, all (onnxruntime's ORT_DISABLE_ALL ... ORT_ENABLE_ALL;
default: onnxruntime's default, all). With LEVELS, OUTPUTS must contain `{level}`
and one file is written per level, from one session per level.
A model with external data (MODEL.onnx_data beside it) is read from its folder.

Other errors (unreadable files, onnxruntime failures) exit 1 with a traceback.
safetensors is read and written by hand so the only dependencies are
onnx, onnxruntime and numpy (scripts/requirements.txt).
"""
import json
import os
import struct
import sys

import numpy as np

# safetensors dtype name <-> numpy dtype (always little-endian on disk).
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
NAMES = {dt.newbyteorder("="): name for name, dt in DTYPES.items()}


def st_dtype(dt):
    """safetensors name of a numpy dtype, whatever its byte order (None if unsupported)."""
    return NAMES.get(dt.newbyteorder("="))


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} exceeds file size")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r}: unsupported dtype {info['dtype']}")
        dt = DTYPES[info["dtype"]]
        shape = tuple(int(d) for d in info["shape"])
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(buf) or end - begin != dt.itemsize * int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r}: bad data_offsets {begin, end} for {info['dtype']}{list(shape)}")
        # Copy so the array owns native-order, writable memory.
        tensors[name] = np.frombuffer(buf[begin:end], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
    return tensors


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        st = st_dtype(a.dtype)
        if st is None:
            raise ValueError(f"tensor {name!r}: unsupported dtype {a.dtype}")
        raw = np.ascontiguousarray(a, dtype=DTYPES[st]).tobytes()
        header[name] = {"dtype": st, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)  # pad so the data buffer starts 8-aligned
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for raw in chunks:
            f.write(raw)
    os.replace(tmp, path)  # never leave a half-written file under the final name


def level_names():
    import onnxruntime as ort
    g = ort.GraphOptimizationLevel
    return {"disable_all": g.ORT_DISABLE_ALL, "basic": g.ORT_ENABLE_BASIC,
            "extended": g.ORT_ENABLE_EXTENDED, "all": g.ORT_ENABLE_ALL}


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    model_path, inputs_path, outputs_path = argv[1:4]
    levels = argv[4].split(",") if len(argv) == 5 else [None]
    if levels != [None] and "{level}" not in outputs_path:
        print("with LEVELS, OUTPUTS must contain {level}", file=sys.stderr)
        return 1

    import onnx
    try:
        # By path: external data is checked where it lies, and models over
        # protobuf's 2 GB limit are never loaded into one message.
        onnx.checker.check_model(model_path, full_check=True)
    except Exception as e:  # ValidationError, InferenceError, DecodeError, ...
        print(f"onnx checker: {e}", file=sys.stderr)
        return 2

    import onnxruntime as ort
    given = read_safetensors(inputs_path)
    for level in levels:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.log_severity_level = 3  # errors only: keep stderr for real problems
        if level is not None:
            opts.graph_optimization_level = level_names()[level]
        sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])

        wanted = [i.name for i in sess.get_inputs()]
        missing = [n for n in wanted if n not in given]
        if missing:
            print(f"missing model inputs in {inputs_path}: {', '.join(missing)} "
                  f"(has: {', '.join(sorted(given)) or 'nothing'})", file=sys.stderr)
            return 3

        names = [o.name for o in sess.get_outputs()]
        results = sess.run(names, {n: given[n] for n in wanted})
        outputs = dict(zip(names, (np.asarray(r) for r in results)))
        write_safetensors(outputs_path.replace("{level}", level or ""), outputs)
        for name in names:
            a = outputs[name]
            prefix = f"{level} " if level else ""
            print(f"{prefix}{name} {st_dtype(a.dtype)} [{','.join(map(str, a.shape))}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
