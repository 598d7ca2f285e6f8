#!/usr/bin/env bash
# Starts infinity-emb (PyPI 0.0.78, its onnxruntime "optimum" engine), the
# CPU embedding server a user would pick instead of `bertc serve`, on an
# Optimum export of a sentence-transformers model, for side-by-side load
# tests (scripts/ only; never tests or CI). Runs until killed.
#   scripts/infinity_server.sh OPTIMUM_EXPORT_DIR PORT
# OPTIMUM_EXPORT_DIR: `optimum-cli export onnx --task feature-extraction
# --library-name transformers` of the model (output last_hidden_state, which
# infinity's optimum engine reads; the sentence-transformers export's outputs
# it does not), plus its 1_Pooling/, modules.json and sentence_bert_config.json.
# POOLING (default mean): infinity's `--pooling-method auto` is CLS pooling
# in its optimum engine, whatever 1_Pooling says; MiniLM is mean-pooled, and
# with `mean` infinity's vectors equal sentence-transformers' (checked on
# "hello world": -0.0344772 first component in both).
#
# The venv (made once, outside the repo): infinity 0.0.78 pins optimum < 2
# and transformers < 4.49, so it gets its own venv whose .pth falls back on
# the benchmark venv's torch and onnxruntime:
#   python3 -m venv /work/venv-infinity
#   echo /work/venv-anchors/lib/python3.11/site-packages \
#     > /work/venv-infinity/lib/python3.11/site-packages/zz_anchors.pth
#   /work/venv-infinity/bin/pip install "infinity-emb[server]==0.0.78" "optimum<2" "transformers==4.48.3"
#   /work/venv-infinity/bin/pip uninstall -y numpy   # the benchmark venv's numpy 2 is what its wheels need
# plus a sitecustomize.py giving torch 2.15's symbolic_opset14 the private
# names optimum 1.27's exporter imports (infinity loads model.onnx, never
# exports), in /work/venv-infinity/lib/python3.11/site-packages/:
#   import torch.onnx.symbolic_opset14 as old
#   from torch.onnx._internal.torchscript_exporter import symbolic_opset14 as new
#   for n in ("_attention_scale", "_causal_attention_mask", "_onnx_symbolic",
#             "_type_utils", "jit_utils", "symbolic_helper"):
#       if not hasattr(old, n): setattr(old, n, getattr(new, n))
# infinity globs a local folder into absolute file names that
# optimum 1.27 refuses, so it is started from inside the folder as `.`; it
# runs onnxruntime's transformers optimizer on the file first, as it does for
# every user, and caches the result under the hub cache keyed by the model id
# — `.` for every folder — so HF_HOME is pointed into the export folder: one
# cache per model, nothing written outside it.
set -euo pipefail
dir="$(cd "$1" && pwd)"
port="$2"
venv="${INFINITY_VENV:-/work/venv-infinity}"
cd "$dir"
export HF_HOME="$dir/.infinity_home"
exec "$venv/bin/infinity_emb" v2 --model-id . --served-model-name model --engine optimum \
  --device cpu --pooling-method "${POOLING:-mean}" --host 127.0.0.1 --port "$port"
