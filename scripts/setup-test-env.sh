#!/usr/bin/env bash
# Install what the test suite needs on a fresh machine: the Python packages
# (pinned and checksummed) used by scripts/ort_check.py and the real all-MiniLM-L6-v2 checkpoint.
# Idempotent: pip is a no-op when the pins are already satisfied and
# fetch-minilm.sh only re-checks the sha256 of a cached checkpoint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"

# --root-user-action: we run as root on CI; silence pip's venv warning.
# The lock (scripts/lock-requirements.sh) pins every package, transitive
# ones included, to the version and SHA-256 of the wheel the tests ran with.
"$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --only-binary=:all: --require-hashes -r scripts/requirements.lock
PYTHON="$PY" bash scripts/fetch-minilm.sh
