#!/usr/bin/env python3
"""bertc against Optimum on a modern encoder: one BERT-base-sized random model, its files, and the
interleaved latency table (issue 23's speed line).

usage: modern_speed.py --preset modernbert-base [--seqs 128,512,2048] [--work DIR] [--bertc PATH]
                       [--rounds 3] [--runs 5] [--threads 2] [--save RESULT.json]
                       [--runtimes-python PYTHON]

Run it with the anchors' Python (torch, transformers, optimum-onnx, onnxruntime, openvino); never in
the tests. What it does, in order:

1. The model: bertc's preset config (models/PRESET.json) read by transformers, weights drawn by
   transformers' own initializer (torch seed 0), saved with `save_pretrained` (safetensors) to
   WORK/PRESET/model/ — the folder a user fine-tunes and ships.
2. Optimum's file, as its users make it: `optimum.exporters.onnx.main_export(task=
   "feature-extraction")` (PyTorch's exporter; transformers' default sdpa attention), then
   onnxruntime's transformers optimizer through Optimum's `ORTOptimizer` at O2 where it accepts the
   model type. Where it refuses, the plain export is the anchor and the table says so.
3. bertc's files from the same folder: `--target onnxruntime` fp32 (the default a user of
   onnxruntime writes) and its int8 (`--quantize dynamic`), `--target openvino` fp32 and its int8
   (`--quantize static`); the compile's accuracy gate, MiniLM-like (`--min-row-cosine 0.99`: the
   whole output and every row a pipeline reads at cosine ≥ 0.99 against fp32 on bertc's realistic
   inputs), has to pass for an int8 file to be written, and its worst row cosine is recorded.
4. scripts/runtimes.py per sequence length, B=1: onnxruntime with [Optimum, bertc fp32, bertc int8],
   OpenVINO with [bertc fp32, bertc int8] — interleaved rounds, medians, ratios to the first file.

Files are reused when present (delete WORK/PRESET to start again).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_model(preset, folder):
    """transformers' own random init of the preset's config, saved as a hub folder."""
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return
    import torch
    from transformers import AutoConfig, AutoModel

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(ROOT, "models", f"{preset}.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(folder)).eval()
    model.save_pretrained(folder, safe_serialization=True)
    log(f"{preset}: {sum(p.numel() for p in model.parameters()):,} parameters in {folder}")


def optimum_file(folder, out_dir):
    """Optimum's export, then onnxruntime's transformers optimizer (O2) where it applies;
    returns (path, how it was made)."""
    plain = os.path.join(out_dir, "model.onnx")
    optimized = os.path.join(out_dir, "model_optimized.onnx")
    if not os.path.exists(plain):
        from optimum.exporters.onnx import main_export

        main_export(folder, output=out_dir, task="feature-extraction")
    if os.path.exists(optimized):
        return optimized, "optimum export + ORTOptimizer O2"
    # In a child process: the optimizer refuses model types it does not know
    # with an exception, and has died without one (DeBERTa-v2).
    code = (
        "import sys\n"
        "from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer\n"
        "ORTOptimizer.from_pretrained(sys.argv[1]).optimize(save_dir=sys.argv[1], "
        "optimization_config=AutoOptimizationConfig.O2())\n"
    )
    # Bounded: on DeBERTa-v2 it grows without end (19 GB resident after 7 min
    # on a 24 GB machine) — at OPTIMIZER_MEMORY_GB of address space it fails
    # like a refusal, and the plain export is the anchor. ModernBERT-base's
    # optimization, which succeeds, peaks at 9.6 GB of address space.
    limit = int(float(os.environ.get("OPTIMIZER_MEMORY_GB", "12")) * 2**30)

    def bounded():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        r = subprocess.run(
            [sys.executable, "-c", code, out_dir],
            capture_output=True,
            text=True,
            preexec_fn=bounded,
            timeout=1800,
        )
    except subprocess.TimeoutExpired:
        log("ORTOptimizer refused: still running after 30 minutes")
        return plain, "optimum export (ORTOptimizer O2 refused: still running after 30 minutes)"
    if r.returncode == 0 and os.path.exists(optimized):
        return optimized, "optimum export + ORTOptimizer O2"
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    reason = re.sub(r"\s+", " ", lines[-1] if lines else f"exit status {r.returncode}")[:200]
    log(f"ORTOptimizer refused: {reason}")
    return plain, f"optimum export (ORTOptimizer O2 refused: {reason})"


def bertc_compile(bertc, folder, out, args):
    """One bertc file; returns the worst-row cosine the int8 gate measured, if any."""
    if os.path.exists(out) and os.path.exists(out + ".log"):
        text = open(out + ".log").read()
    else:
        r = subprocess.run([bertc, "compile", folder, "-o", out, *args], capture_output=True, text=True)
        text = r.stdout + r.stderr
        if r.returncode != 0:
            raise SystemExit(f"bertc compile {' '.join(args)} failed:\n{text}")
        with open(out + ".log", "w") as f:
            f.write(text)
    cosines = [float(c) for c in re.findall(r"worst row ([0-9.]+)", text)]
    return min(cosines) if cosines else None


def runtimes_table(a, runtime, files, seq):
    save = os.path.join(a.work, a.preset, f"{runtime}-s{seq}.json")
    cmd = [
        a.runtimes_python, os.path.join(HERE, "runtimes.py"), "--runtimes", runtime, "--seq", str(seq),
        "--batch", "1", "--threads", str(a.threads), "--rounds", str(a.rounds), "--runs", str(a.runs),
        "--bertc", a.bertc, "--save", save, *files,
    ]
    log(" ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"runtimes.py failed:\n{r.stderr}")
    print(r.stdout, flush=True)
    with open(save) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--seqs", default="128,512")
    p.add_argument("--work", default=os.path.join(ROOT, "target", "modern-speed"))
    p.add_argument("--bertc", default=os.path.join(ROOT, "target", "release", "bertc"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--save", metavar="RESULT.json")
    p.add_argument(
        "--runtimes-python",
        default=sys.executable,
        help="the Python that runs scripts/runtimes.py (it needs onnxruntime and openvino; the "
        "torch environment may lack openvino)",
    )
    a = p.parse_args()
    base = os.path.join(a.work, a.preset)
    folder = os.path.join(base, "model")
    make_model(a.preset, folder)
    anchor, anchor_how = optimum_file(folder, os.path.join(base, "optimum"))
    files = {
        "bertc onnxruntime fp32": (os.path.join(base, "bertc_ort.onnx"), ["--target", "onnxruntime"]),
        "bertc onnxruntime int8": (
            os.path.join(base, "bertc_ort_int8.onnx"),
            ["--target", "onnxruntime", "--quantize", "dynamic", "--min-row-cosine", "0.99"],
        ),
        "bertc openvino fp32": (os.path.join(base, "bertc_ov.onnx"), ["--target", "openvino"]),
        "bertc openvino int8": (
            os.path.join(base, "bertc_ov_int8.onnx"),
            ["--target", "openvino", "--quantize", "static", "--min-row-cosine", "0.99"],
        ),
    }
    cosines = {}
    for name, (path, args) in files.items():
        log(f"bertc compile {' '.join(args)}")
        cosines[name] = bertc_compile(a.bertc, folder, path, args)
    doc = {"preset": a.preset, "anchor": anchor_how, "int8_worst_row_cosine": cosines, "tables": {}}
    for seq in [int(s) for s in a.seqs.split(",")]:
        ort = [anchor, files["bertc onnxruntime fp32"][0], files["bertc onnxruntime int8"][0]]
        ov = [files["bertc openvino fp32"][0], files["bertc openvino int8"][0]]
        doc["tables"][f"onnxruntime S={seq}"] = runtimes_table(a, "onnxruntime", ort, seq)
        doc["tables"][f"openvino S={seq}"] = runtimes_table(a, "openvino", ov, seq)
    print(json.dumps({"anchor": anchor_how, "int8_worst_row_cosine": cosines}, indent=2))
    if a.save:
        with open(a.save, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
