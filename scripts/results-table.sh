#!/usr/bin/env bash
# Regenerates the README's results table: BERT-base and all-MiniLM-L6-v2 at
# -O0 and -O2 (and int8 / fp16 when `bertc compile` supports them), in tract
# (`bertc bench`) and onnxruntime (scripts/ort_latency.py), B=1 and B=8 at
# S=128, 2 threads. Within each runtime the files of one model run
# interleaved (A B A B ...), and the two runtimes take turns in ROUNDS
# blocks (tract, onnxruntime, tract, ...) so that both sample the same
# periods of a noisy machine; each cell reports the median of the rounds'
# medians. Absolute times do not travel between machines.
#
# usage: scripts/results-table.sh    (ROUNDS=3 RUNS=7 per round, THREADS=2 BATCH=1,8 SEQ=128 by default)
# Needs onnxruntime and onnx (scripts/requirements.txt). MiniLM uses the real
# checkpoint when scripts/fetch-minilm.sh has cached it, else the preset's
# random weights (same speed). Prints the Markdown table on stdout; the
# models and raw JSON stay in $BERTC_OUT (default target/results).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
RUNS="${RUNS:-7}"
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
  for round in $(seq 1 "$ROUNDS"); do
    echo "results-table: $name round $round of $ROUNDS" >&2
    "$bertc" bench "${files[@]}" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" \
      --runs "$RUNS" --warmup 3 --json > "$out/$name-tract-$round.json"
    python3 scripts/ort_latency.py "${files[@]}" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" \
      --runs "$RUNS" --warmup 3 --json > "$out/$name-onnxruntime-$round.json"
  done
}

measure bert-base-uncased bert-base-uncased
measure all-MiniLM-L6-v2 "${minilm[@]}"

python3 - "$out" "$ROUNDS" <<'EOF'
import json, os, re, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])
rows, info = [], {"peak": 0.0}
key = lambda r: (r["model"], r["batch"], r["seq"])
for name in ["bert-base-uncased", "all-MiniLM-L6-v2"]:
    p50 = {"tract": {}, "onnxruntime": {}}
    flops = {}
    for i in range(1, rounds + 1):
        tract = json.load(open(os.path.join(out, f"{name}-tract-{i}.json")))
        ort = json.load(open(os.path.join(out, f"{name}-onnxruntime-{i}.json")))
        info.update(threads=tract["threads"], runs=tract["runs"], ort=ort["version"])
        if tract.get("machine_peak"):
            info["peak"] = max(info["peak"], tract["machine_peak"]["gflops"])
        for r in tract["results"]:
            p50["tract"].setdefault(key(r), []).append(r["p50_ms"])
            flops[key(r)] = r["flops_per_sequence"] * r["batch"]
        for r in ort["results"]:
            p50["onnxruntime"].setdefault(key(r), []).append(r["p50_ms"])
    for k in sorted(p50["tract"], key=lambda k: (k[1], k[0])):
        t = statistics.median(p50["tract"][k])
        o = statistics.median(p50["onnxruntime"][k]) if k in p50["onnxruntime"] else float("nan")
        variant = re.search(r"-(O0|O2|int8|fp16)\.onnx$", k[0]).group(1)
        graph = {"O0": "fp32 -O0", "O2": "fp32 -O2", "int8": "int8 (dynamic)", "fp16": "fp16"}[variant]
        gflops = flops[k] / (t / 1e3) / 1e9
        rows.append(f"| {name} | {graph} | {k[1]} | {k[2]} | {t:.1f} | {gflops:.1f} | {o:.1f} | {t / o:.2f} |")
print(f"Median latency (ms): median over {rounds} rounds (tract and onnxruntime taking turns) of each "
      f"round's median of {info['runs']} interleaved runs; {info['threads']} threads; tract's achieved "
      f"GFLOP/s beside the machine's measured fp32 peak of {info['peak']:.0f} GFLOP/s; "
      f"onnxruntime {info['ort']}.\n")
print("| model | graph | B | S | tract p50 ms | tract GFLOP/s | onnxruntime p50 ms | tract / onnxruntime |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
print("\n".join(rows))
EOF
