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
target/release/bertc compile "$minilm/config.json" --weights "$minilm/model.safetensors" -o "$out/minilm-l6.onnx"
target/release/bertc validate "$out/minilm-l6.onnx" --golden tests/fixtures/minilm-l6/minilm-l6-golden.safetensors
# The same checkpoint as sentence-transformers uses it: the embedding head
# (mean over real tokens, L2-normalised) against the golden embeddings.
target/release/bertc compile "$minilm/config.json" --weights "$minilm/model.safetensors" \
  --head sentence-embedding --keep-last-hidden-state -o "$out/minilm-l6-embed.onnx"
target/release/bertc validate "$out/minilm-l6-embed.onnx" --golden tests/fixtures/minilm-l6/minilm-l6-golden.safetensors
