#!/usr/bin/env bash
# md5 of every written form of every preset: -O0, -O2, fp16, int8 and each
# target's fp32 and int8 forms. A refactor that must keep the written files
# byte-identical is checked by running this before and after and diffing:
#
#   scripts/forms-md5.sh target/release/bertc > before.txt
#   … change …
#   scripts/forms-md5.sh target/release/bertc > after.txt && diff before.txt after.txt
#
# Each line: `preset form md5 bytes` (external data files get their own
# line). Random weights are seeded, so the files repeat on any machine; the
# checks are skipped (--no-check): they decide only whether a file is
# written, never its bytes. PRESETS="a b" limits the presets, FORMS="O0 O2"
# the forms.
set -euo pipefail
bin=${1:?usage: forms-md5.sh BERTC_BINARY}
bin=$(realpath "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

presets=${PRESETS:-$("$bin" presets | awk '{print $1}')}
forms=${FORMS:-"O0 O2 fp16 int8 int8-static tract tract-int8 tract-int8-static onnxruntime onnxruntime-int8 onnxruntime-int8-static openvino openvino-int8-static"}

flags_of() {
  case "$1" in
    O0) echo "-O0" ;;
    O2) echo "-O2" ;;
    fp16) echo "--precision fp16" ;;
    int8) echo "--precision int8" ;;
    int8-static) echo "--quantize static" ;;
    tract) echo "--target tract" ;;
    tract-int8) echo "--target tract --precision int8" ;;
    tract-int8-static) echo "--target tract --quantize static" ;;
    onnxruntime) echo "--target onnxruntime" ;;
    onnxruntime-int8) echo "--target onnxruntime --quantize dynamic" ;;
    onnxruntime-int8-static) echo "--target onnxruntime --quantize static" ;;
    openvino) echo "--target openvino" ;;
    openvino-int8-static) echo "--target openvino --quantize static" ;;
    *) echo "unknown form $1" >&2; exit 2 ;;
  esac
}

for p in $presets; do
  for f in $forms; do
    out="$work/$p-$f.onnx"
    # shellcheck disable=SC2046
    if "$bin" compile "$p" $(flags_of "$f") --no-check -o "$out" >/dev/null 2>"$work/err"; then
      for file in "$out" "$out"_data; do
        [ -f "$file" ] || continue
        printf '%s %s%s %s %s\n' "$p" "$f" "${file#"$out"}" "$(md5sum <"$file" | cut -c1-32)" "$(stat -c %s "$file")"
      done
    else
      printf '%s %s FAILED %s\n' "$p" "$f" "$(head -c 200 "$work/err" | tr '\n' ' ')"
    fi
    rm -f "$out" "$out"_data
  done
done
