#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need
# (onnx, onnxruntime, numpy from PyPI; the real MiniLM checkpoint), then
# formatting, lints, and every test. Snapshot mismatches fail (no update).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-env.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
INSTA_UPDATE=no cargo test --locked
