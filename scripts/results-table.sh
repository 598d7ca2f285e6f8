#!/usr/bin/env bash
# Regenerates the README's results table: BERT-base and all-MiniLM-L6-v2 at
# -O0 and -O2 (and int8 / fp16 when `bertc compile` supports them), in tract
# (`bertc bench`) and onnxruntime (scripts/ort_latency.py), B=1 and B=8 at
# S=128, 2 threads. Within each runtime the files of one model run
# interleaved, so the ratios hold on a noisy machine; absolute times do not
# travel between machines.
#
# usage: scripts/results-table.sh            (RUNS=20 THREADS=2 BATCH=1,8 SEQ=128 by default)
# Needs onnxruntime and onnx (scripts/requirements.txt). MiniLM uses the real
# checkpoint when scripts/fetch-minilm.sh has cached it, else the preset's
# random weights (same speed). Prints the Markdown table on stdout; the
# models and raw JSON stay in $BERTC_OUT (default target/results).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-20}"
THREADS="${THREADS:-2}"
BATCH="${BATCH:-1,8}"
SEQ="${SEQ:-128}"
out="${BERTC_OUT:-target/results}"
mkdir -p "$out"
# BERTC=path/to/bertc measures an existing build instead of building one.
if [[ -z "${BERTC:-}" ]]; then
  cargo build --release --locked >&2
fi
bertc="${BERTC:-target/release/bertc}"

minilm_dir="${BERTC_CACHE:-$HOME/.cache/bertc}/minilm-l6"
if [[ -f "$minilm_dir/model.safetensors" ]]; then
  minilm=("$minilm_dir/config.json" --weights "$minilm_dir/model.safetensors")
else
  minilm=(all-MiniLM-L6-v2)
fi

# name, then the compile arguments of the model.
measure() {
  local name="$1"; shift
  local files=()
  for variant in O0 O2 int8 fp16; do
    local file="$out/$name-$variant.onnx"
    local flags=()
    case "$variant" in
      O0) flags=(-O0) ;;
      O2) flags=(-O2) ;;
      int8) flags=(-O2 --quantize dynamic) ;;
      fp16) flags=(-O2 --precision fp16) ;;
    esac
    if "$bertc" compile "$@" "${flags[@]}" -o "$file" >&2; then
      files+=("$file")
    else
      echo "results-table: $name $variant skipped: bertc compile ${flags[*]} failed (not supported yet?)" >&2
    fi
  done
  "$bertc" bench "${files[@]}" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" \
    --runs "$RUNS" --warmup 3 --json > "$out/$name-tract.json"
  python3 scripts/ort_latency.py "${files[@]}" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" \
    --runs "$RUNS" --warmup 3 --json > "$out/$name-onnxruntime.json"
}

measure bert-base-uncased bert-base-uncased
measure all-MiniLM-L6-v2 "${minilm[@]}"

python3 - "$out" <<'EOF'
import json, os, re, sys

out = sys.argv[1]
rows, versions = [], {}
for name in ["bert-base-uncased", "all-MiniLM-L6-v2"]:
    tract = json.load(open(os.path.join(out, f"{name}-tract.json")))
    ort = json.load(open(os.path.join(out, f"{name}-onnxruntime.json")))
    versions["threads"] = tract["threads"]
    versions["runs"] = tract["runs"]
    versions["ort"] = ort["version"]
    peak = tract.get("machine_peak")
    if peak:
        versions["peak"] = max(versions.get("peak", 0), peak["gflops"])
    key = lambda r: (r["model"], r["batch"], r["seq"])
    ort_by = {key(r): r for r in ort["results"]}
    for r in sorted(tract["results"], key=lambda r: (r["batch"], r["model"])):
        o = ort_by.get(key(r))
        variant = re.search(r"-(O0|O2|int8|fp16)\.onnx$", r["model"]).group(1)
        graph = {"O0": "fp32 -O0", "O2": "fp32 -O2", "int8": "int8 (dynamic)", "fp16": "fp16"}[variant]
        rows.append(
            f"| {name} | {graph} | {r['batch']} | {r['seq']} | {r['p50_ms']:.1f} | "
            f"{r['gflops']:.1f} | {o['p50_ms'] if o else float('nan'):.1f} | "
            f"{(r['p50_ms'] / o['p50_ms']) if o else float('nan'):.2f} |"
        )
print(f"Median latency (ms), {versions['threads']} threads, {versions['runs']} interleaved runs per file "
      f"and runtime; tract's achieved GFLOP/s beside the machine's measured fp32 peak of "
      f"{versions.get('peak', float('nan')):.0f} GFLOP/s; onnxruntime {versions['ort']}.\n")
print("| model | graph | B | S | tract p50 ms | tract GFLOP/s | onnxruntime p50 ms | tract / onnxruntime |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
print("\n".join(rows))
EOF
