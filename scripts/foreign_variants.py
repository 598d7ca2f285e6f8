#!/usr/bin/env python3
"""More exports made the ways users make them, from other models than
../shared/golden/foreign2's — the maintainers' "16 more made the same ways from
other models" — and bertc's check of each. Benchmark venv only (torch,
transformers, optimum, onnxruntime); never run by tests or CI.

    python3 scripts/foreign_variants.py OUT_DIR BERTC [--only NAME,...]

For each source (tests/fixtures/family and pipelines checkpoints: ALBERT,
DistilBERT, ELECTRA, MPNet, RoBERTa, XLM-R, BERT; classification, token
classification, QA, fill-mask, base) and each way (Optimum's CLI defaults,
torch.onnx dynamo with SDPA, TorchScript opset 17 with eager attention,
onnxruntime's transformers optimizer level 1 and 2 and Optimum's -O3 of the
Optimum export where it applies to the model type), writes
OUT_DIR/<source>--<way>/model.onnx with golden.safetensors (seeded ids
[3, 16]: full, right-padded, left-padded rows; every output onnxruntime gives
for the file), then runs `bertc optimize -O2 --report` and
`bertc validate --golden` on it and prints one line per export: the attention
layers recognised of the config's, the fused norm/GELU counts, the check.
A 1-D mask-index file (onnxruntime's own fused forms) is checked on its two
right-aligned rows only, since the file itself is wrong on the left-padded one.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import transformers
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SOURCES = {
    "albert-cls": FIXTURES / "family/albert-cls",
    "albert-mlm": FIXTURES / "family/albert-mlm",
    "distilbert-qa": FIXTURES / "family/distilbert-qa",
    "electra-tok": FIXTURES / "family/electra-tok",
    "mpnet-cls": FIXTURES / "family/mpnet-cls",
    "roberta-mlm": FIXTURES / "family/roberta-mlm",
    "roberta-tok": FIXTURES / "family/roberta-tok",
    "xlm-roberta-qa": FIXTURES / "family/xlm-roberta-qa",
    "bert-fill-mask": FIXTURES / "pipelines/fill-mask",
    "bert-token-cls": FIXTURES / "pipelines/token-cls",
}
# onnxruntime's transformers optimizer model types for these families.
ORT_TYPES = {"albert": None, "distilbert": "bert", "electra": "bert", "mpnet": None,
             "roberta": "bert", "xlm-roberta": "bert", "bert": "bert"}


def auto_class(config):
    arch = config.architectures[0]
    return getattr(transformers, arch)


def inputs_for(config, names):
    rng = np.random.default_rng(4242)
    seq = 16
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    ids = np.full((3, seq), pad, dtype=np.int64)
    mask = np.zeros((3, seq), dtype=np.int64)
    for row, n in enumerate([seq, 10, 7]):
        real = rng.integers(5, min(config.vocab_size, 300), n)
        if row == 2:
            ids[row, seq - n:], mask[row, seq - n:] = real, 1
        else:
            ids[row, :n], mask[row, :n] = real, 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {k: v for k, v in feeds.items() if k in names}


def task_of(config):
    arch = config.architectures[0]
    for suffix, task in [("SequenceClassification", "text-classification"),
                         ("TokenClassification", "token-classification"),
                         ("QuestionAnswering", "question-answering"), ("MaskedLM", "fill-mask")]:
        if arch.endswith(suffix):
            return task
    return "feature-extraction"


def export_optimum(src, out, config):
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["optimum-cli", "export", "onnx", "--model", str(src), "--task", task_of(config), str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])


def export_torch(src, out, dynamo, attn, opset):
    out.mkdir(parents=True, exist_ok=True)
    config = transformers.AutoConfig.from_pretrained(src)
    model = auto_class(config).from_pretrained(src, attn_implementation=attn).eval()
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0) and config.model_type not in ("roberta", "xlm-roberta", "mpnet", "distilbert"):
        names.append("token_type_ids")
    feeds = inputs_for(config, names)
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    with torch.no_grad():
        outputs = list(model(**{n: torch.from_numpy(feeds[n]) for n in names}, return_dict=True).keys())
    kwargs = dict(input_names=names, output_names=outputs, opset_version=opset, dynamo=dynamo)
    if dynamo:
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        kwargs["dynamic_shapes"] = {n: {0: batch, 1: seq} for n in names}
    else:
        kwargs["dynamic_axes"] = dyn
    class Wrapped(torch.nn.Module):
        """The model's outputs as a tuple, its inputs by name (as exporters see them)."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = dict(input_ids=input_ids, attention_mask=attention_mask)
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            return tuple(self.m(**kw, return_dict=True).values())
    torch.onnx.export(Wrapped(model), args, str(out / "model.onnx"), **kwargs)
    config.save_pretrained(out)


def ort_optimize(src_dir, out, model_type, level, hidden, heads):
    from onnxruntime.transformers.optimizer import optimize_model
    out.mkdir(parents=True, exist_ok=True)
    m = optimize_model(str(src_dir / "model.onnx"), model_type=model_type, num_heads=heads,
                       hidden_size=hidden, opt_level=level)
    m.save_model_to_file(str(out / "model.onnx"))


def optimum_o3(base, out):
    subprocess.run(["optimum-cli", "onnxruntime", "optimize", "--onnx_model", str(base), "-O3", "-o", str(out)],
                   check=True, capture_output=True)
    (out / "model_optimized.onnx").rename(out / "model.onnx")


def golden(folder, config, src):
    """The file's inputs and onnxruntime's outputs, and `torch.<output>`: the
    source model in PyTorch (eager attention) on the same inputs, for the
    outputs named as the model names them."""
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = inputs_for(config, names)
    types = {i.name: i.type for i in sess.get_inputs()}
    feeds = {k: (v.astype(np.int32) if "int32" in types[k] else v) for k, v in feeds.items()}
    outs = sess.run(None, feeds)
    tensors = {k: v.astype(np.int64) for k, v in feeds.items()}
    for o, v in zip(sess.get_outputs(), outs):
        tensors[o.name] = np.ascontiguousarray(v)
    model = auto_class(config).from_pretrained(src, attn_implementation="eager").eval()
    with torch.no_grad():
        reference = model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in feeds.items()}, return_dict=True)
    for key, value in reference.items():
        if key in tensors:
            tensors[f"torch.{key}"] = np.ascontiguousarray(value.numpy())
    save_file(tensors, str(folder / "golden.safetensors"))


def check(folder, bertc, layers):
    opt = folder / "optimized.onnx"
    rep = subprocess.run([bertc, "optimize", str(folder / "model.onnx"), "-O2", "--report", "-o", str(opt)],
                         capture_output=True, text=True)
    if rep.returncode != 0:
        return f"optimize FAILED: {rep.stderr.strip().splitlines()[-1] if rep.stderr.strip() else rep.returncode}"
    counts = {p: sum(int(n) for n in re.findall(rf"{p}\s+(\d+) matches", rep.stdout))
              for p in ("fuse_attention", "fuse_layer_norm", "fuse_gelu")}
    note = "mask-index" if "mask index" in (rep.stdout + rep.stderr).lower() else ""
    val = subprocess.run([bertc, "validate", str(opt), "--golden", str(folder / "golden.safetensors"),
                          "--allow-missing"], capture_output=True, text=True)
    worst = [l.split()[1] for l in val.stdout.splitlines()[1:] if l.split() and l.split()[-1] in ("ok", "FAIL")]
    ok = "ok" if val.returncode == 0 else "VALIDATE FAILED"
    att = counts["fuse_attention"]
    flag = "" if att == layers else "  <-- attention not recognised in every layer"
    return (f"attention {att}/{layers}, LN {counts['fuse_layer_norm']}, GELU {counts['fuse_gelu']}; "
            f"{ok} (max-abs {', '.join(worst)}) {note}{flag}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("bertc")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    failures = 0
    for name, src in SOURCES.items():
        if only and name not in only:
            continue
        config = transformers.AutoConfig.from_pretrained(src)
        layers = config.num_hidden_layers if config.model_type != "distilbert" else config.n_layers
        hidden = getattr(config, "hidden_size", None) or config.dim
        heads = getattr(config, "num_attention_heads", None) or config.n_heads
        ways = {
            "optimum": lambda o: export_optimum(src, o, config),
            "dynamo-sdpa": lambda o: export_torch(src, o, True, "sdpa", 20),
            "ts17-eager": lambda o: export_torch(src, o, False, "eager", 17),
        }
        ort_type = ORT_TYPES.get(config.model_type)
        if ort_type:
            base = args.out / f"{name}--optimum"
            ways["ortopt-level1"] = lambda o: ort_optimize(base, o, ort_type, 1, hidden, heads)
            ways["ortopt-level2"] = lambda o: ort_optimize(base, o, ort_type, 2, hidden, heads)
            ways["optimum-O3"] = lambda o: optimum_o3(base, o)
        for way, make in ways.items():
            folder = args.out / f"{name}--{way}"
            try:
                if not (folder / "model.onnx").exists():
                    make(folder)
                golden(folder, config, src)
            except Exception as e:  # an export the tool itself cannot make is reported, not fatal
                print(f"{name:16} {way:14} not made: {str(e).strip().splitlines()[-1][:150]}", flush=True)
                continue
            line = check(folder, args.bertc, layers)
            failures += "FAILED" in line or "<--" in line
            print(f"{name:16} {way:14} {line}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
