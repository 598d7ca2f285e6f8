#!/usr/bin/env bash
# Install what the test suite needs on a fresh machine: the Python packages
# used by scripts/ort_check.py and the real all-MiniLM-L6-v2 checkpoint.
# Idempotent: pip is a no-op when the pins are already satisfied and
# fetch-minilm.sh only re-checks the sha256 of a cached checkpoint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"

# --root-user-action: we run as root on CI; silence pip's venv warning.
"$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  -r scripts/requirements.txt
PYTHON="$PY" bash scripts/fetch-minilm.sh
