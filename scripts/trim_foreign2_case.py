#!/usr/bin/env python3
"""Copies one folder of the shared foreign2 golden set into the test fixtures with
its word table cut to the rows the golden inputs read: BERT's 30522-row table is
most of each 4 MB file, and the three golden rows read a few dozen of its ids.

usage: trim_foreign2_case.py SHARED_FOREIGN2_DIR/CASE OUT_DIR/CASE

The table (the one initializer with the input ids' vocabulary as its first dim:
read by a Gather or by EmbedLayerNormalization) keeps the rows of the ids in
golden.safetensors' `input_ids`, in increasing id order; those ids are renumbered
to their new rows in the copied golden. Every other tensor of the golden
(onnxruntime's outputs, `torch.*`) is copied unchanged: the model computes the
same thing on the renumbered ids. README.md is copied with a line saying so.
Needs only onnx and numpy (scripts/requirements.txt).
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_check import read_safetensors, write_safetensors  # noqa: E402

VOCAB = 30522


def main(src, dst):
    golden = read_safetensors(os.path.join(src, "golden.safetensors"))
    ids = golden["input_ids"]
    kept = np.unique(ids)
    model = onnx.load(os.path.join(src, "model.onnx"))
    tables = [i for i in model.graph.initializer if i.dims and i.dims[0] == VOCAB]
    if len(tables) != 1:
        sys.exit(f"{src}: expected one [{VOCAB}, H] table, found {[t.name for t in tables]}")
    table = tables[0]
    table.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(table)[kept], table.name))
    os.makedirs(dst, exist_ok=True)
    onnx.save(model, os.path.join(dst, "model.onnx"))
    golden["input_ids"] = np.searchsorted(kept, ids).astype(ids.dtype)
    write_safetensors(os.path.join(dst, "golden.safetensors"), golden)
    with open(os.path.join(src, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(dst, "README.md"), "w") as f:
        f.write(readme.rstrip("\n") + "\n\n"
                f"Fixture copy (scripts/trim_foreign2_case.py): the word table `{table.name}` cut to the "
                f"{len(kept)} rows the golden inputs read, and `input_ids` renumbered to them.\n")
    print(dst, os.path.getsize(os.path.join(dst, "model.onnx")), "bytes,", len(kept), "rows kept")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
