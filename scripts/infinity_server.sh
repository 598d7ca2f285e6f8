#!/usr/bin/env bash
# Starts infinity-emb (PyPI 0.0.78, its onnxruntime "optimum" engine), the
# CPU embedding server a user would pick instead of `bertc serve`, on an
# Optimum export of a sentence-transformers model, for side-by-side load
# tests (scripts/ only; never tests or CI). Runs until killed.
#   scripts/infinity_server.sh OPTIMUM_EXPORT_DIR PORT
# OPTIMUM_EXPORT_DIR: `optimum-cli export onnx --task feature-extraction` of
# the model, plus its 1_Pooling/, modules.json and sentence_bert_config.json.
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
# exports). infinity globs a local folder into absolute file names that
# optimum 1.27 refuses, so it is started from inside the folder as `.`; it
# runs onnxruntime's transformers optimizer on the file first (cached in
# .infinity_cache/), as it does for every user.
set -euo pipefail
dir="$(cd "$1" && pwd)"
port="$2"
venv="${INFINITY_VENV:-/work/venv-infinity}"
cd "$dir"
exec "$venv/bin/infinity_emb" v2 --model-id . --served-model-name model --engine optimum \
  --device cpu --host 127.0.0.1 --port "$port"
