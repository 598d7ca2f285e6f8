#!/usr/bin/env bash
# Compiles every case scripts/family_variants.py wrote into DIR at -O0 and
# -O2 and checks it against PyTorch's outputs (1e-4 max-abs at every position,
# padding included, as family2's tolerance) in tract (`bertc validate`), and
# the -O2 `--target onnxruntime` file in onnxruntime (scripts/ort_check.py).
# Prints one line per case and form; exits 1 if any failed.
#   scripts/check_family_variants.sh DIR [BERTC]
set -uo pipefail
dir="$1"
bertc="${2:-target/release/bertc}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
for case in "$dir"/*/; do
  name="$(basename "$case")"
  for form in "-O0" "-O2" "-O2 --target onnxruntime"; do
    model="$work/$name.onnx"
    # shellcheck disable=SC2086
    if ! log="$("$bertc" compile "$case" $form --no-check -o "$model" 2>&1)"; then
      echo "FAIL $name $form: compile: $(echo "$log" | tail -1)"; failed=1; continue
    fi
    case "$form" in
      *onnxruntime*)
        python3 "$here/ort_check.py" "$model" "$case/golden.safetensors" "$work/ort.safetensors" >/dev/null 2>"$work/err" \
          || { echo "FAIL $name $form: onnxruntime: $(tail -1 "$work/err")"; failed=1; continue; }
        result="$(python3 - "$here" "$work/ort.safetensors" "$case/golden.safetensors" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from ort_check import read_safetensors
got, want = read_safetensors(sys.argv[2]), read_safetensors(sys.argv[3])
worst = max(float(np.abs(got[k] - want[k]).max()) for k in got if k in want)
print(f"max |diff| {worst:.2e}")
sys.exit(0 if worst <= 1e-4 else 1)
PY
)" ;;
      *)
        result="$("$bertc" validate "$model" --golden "$case/golden.safetensors" --threads 1 2>&1)" ;;
    esac
    status=$?
    worst="$(echo "$result" | awk '/max \|diff\|/ {print; exit} $NF == "ok" || $NF == "FAIL" {print $1, $2}' | head -1)"
    if [ $status -eq 0 ]; then echo "ok   $name $form $worst"; else echo "FAIL $name $form: $(echo "$result" | tail -2 | tr '\n' ' ')"; failed=1; fi
  done
done
exit $failed
