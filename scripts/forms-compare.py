#!/usr/bin/env python3
"""Compares two outputs of scripts/forms-md5.sh (`preset form md5 bytes` per
line) and checks `bertc inspect`'s weight bytes against each written int8
and fp16 file of the second.

    scripts/forms-compare.py BEFORE.txt AFTER.txt [--bertc target/debug/bertc]

Prints how many files are byte-identical, every one that changed (size
before -> after), and for each preset's fp16/int8 forms inspect's count
against the whole file (graph included), with the worst deviation.
"""
import argparse
import collections
import json
import subprocess


def read(path):
    rows = {}
    for line in open(path):
        p = line.split()
        if len(p) >= 4:
            rows[(p[0], p[1])] = (p[2], int(p[3]))
    return rows


# inspect's weight_bytes key for each written form (the Q/DQ forms store
# what the dynamic form does, plus zero points and outlier rows).
INSPECT_KEY = {
    "fp16": "fp16",
    "int8": "int8",
    "tract-int8": "int8",
    "onnxruntime-int8": "int8",
    "int8-static": "int8_static",
    "tract-int8-static": "int8_static",
    "onnxruntime-int8-static": "int8",
    "openvino-int8-static": "int8",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--bertc", default="target/debug/bertc")
    a = ap.parse_args()
    before, after = read(a.before), read(a.after)
    same = [k for k, v in after.items() if before.get(k, (None,))[0] == v[0]]
    print(f"identical {len(same)} of {len(after)}")
    for k, (md5, size) in sorted(after.items()):
        if k in before and before[k][0] != md5:
            print(f"  changed {k[0]} {k[1]}: {before[k][1]} -> {size} bytes ({size / before[k][1]:.3f}x)")
        elif k not in before:
            print(f"  new {k[0]} {k[1]}: {size} bytes")
    by_preset = collections.defaultdict(dict)
    for (preset, form), (_, size) in after.items():
        by_preset[preset][form] = size
    worst = 0.0
    for preset, forms in by_preset.items():
        out = subprocess.run([a.bertc, "inspect", preset, "--json"], capture_output=True, text=True, check=True)
        weights = json.loads(out.stdout)["weight_bytes"]
        for form, size in sorted(forms.items()):
            if form not in INSPECT_KEY:
                continue
            counted = weights[INSPECT_KEY[form]]
            off = (size - counted) / size
            worst = max(worst, abs(off))
            print(f"  inspect {preset} {form}: {counted / 1e6:.2f} MB counted, {size / 1e6:.2f} MB written ({100 * off:+.2f} %)")
    print(f"worst inspect deviation {100 * worst:.2f} %")


if __name__ == "__main__":
    main()
