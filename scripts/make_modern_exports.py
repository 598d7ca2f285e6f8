#!/usr/bin/env python3
"""PyTorch's exports of the tiny seeded ModernBERT and DeBERTa-v3 checkpoints
(tests/fixtures/family2, copies of the golden set), made the way users make them: Optimum's default export
(`optimum.exporters.onnx.main_export`, what `optimum-cli export onnx` runs; SDPA
attention where the model has it) and torch.onnx's TorchScript exporter with eager
attention. Written to OUT_DIR/<case>-<form>.onnx with each case's golden.safetensors
(PyTorch's outputs, transformers 5.23) copied beside as <case>.golden.safetensors.

Run with the anchors' Python (torch 2.15, transformers 4.57, optimum 2.1):

    /path/to/anchors/python scripts/make_modern_exports.py \
        tests/fixtures/family2 tests/fixtures/foreign-modern

transformers 4.57 reads ModernBERT's 4.x config fields (`global_rope_theta`,
`local_rope_theta`, `global_attn_every_n_layers`), not 5.x's `rope_parameters` /
`layer_types`: the config is rewritten into them (the same model) before loading.
Each export is checked against the case's golden in onnxruntime before it is kept.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import torch
from safetensors.numpy import load_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

CASES = {
    "modernbert-base": (AutoModel, "feature-extraction", "last_hidden_state"),
    "modernbert-cls": (AutoModelForSequenceClassification, "text-classification", "logits"),
    "deberta-v3-base": (AutoModel, "feature-extraction", "last_hidden_state"),
    "deberta-v3-cls": (AutoModelForSequenceClassification, "text-classification", "logits"),
}


def legacy_config(config):
    """ModernBERT's 5.x config fields as transformers 4.x names them."""
    if config.get("model_type") != "modernbert" or "layer_types" not in config:
        return config
    config = dict(config)
    rope = config.pop("rope_parameters")
    types = config.pop("layer_types")
    config["global_rope_theta"] = rope["full_attention"]["rope_theta"]
    config["local_rope_theta"] = rope["sliding_attention"]["rope_theta"]
    every = next((i for i in range(1, len(types)) if types[i] == "full_attention"), len(types))
    assert all((t == "full_attention") == (i % every == 0) for i, t in enumerate(types)), types
    config["global_attn_every_n_layers"] = every
    return config


def hub_folder(src, dst):
    """The case as a folder transformers 4.57 loads."""
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        config = legacy_config(json.load(f))
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(os.path.join(src, "model.safetensors"), dst)


def check(path, golden, output):
    """onnxruntime on the golden inputs against PyTorch's golden output."""
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = {n: golden[n] for n in names}
    got = sess.run([output], feed)[0]
    return float(np.abs(got - golden[output]).max())


def optimum_export(folder, task, out_path):
    from optimum.exporters.onnx import main_export

    with tempfile.TemporaryDirectory() as tmp:
        main_export(folder, output=tmp, task=task, no_post_process=False)
        shutil.copy(os.path.join(tmp, "model.onnx"), out_path)


def eager_export(folder, cls, output, golden, out_path):
    model = cls.from_pretrained(folder, attn_implementation="eager").eval()
    feed = (torch.from_numpy(golden["input_ids"]), torch.from_numpy(golden["attention_mask"]))

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return getattr(self.m(input_ids=input_ids, attention_mask=attention_mask), output)

    dynamic = {"batch_size": 0, "sequence_length": 1}
    axes = {n: {v: k for k, v in dynamic.items()} for n in ("input_ids", "attention_mask")}
    axes[output] = {0: "batch_size"} if output == "logits" else {0: "batch_size", 1: "sequence_length"}
    torch.onnx.export(
        Wrapped(model),
        feed,
        out_path,
        dynamo=False,
        opset_version=17,
        input_names=["input_ids", "attention_mask"],
        output_names=[output],
        dynamic_axes=axes,
    )


def main():
    src_root, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for case, (cls, task, output) in CASES.items():
        golden = load_file(os.path.join(src_root, case, "golden.safetensors"))
        shutil.copy(
            os.path.join(src_root, case, "golden.safetensors"),
            os.path.join(out, f"{case}.golden.safetensors"),
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, case)
            hub_folder(os.path.join(src_root, case), folder)
            for form, make in (
                ("optimum", lambda p: optimum_export(folder, task, p)),
                ("torchscript-eager", lambda p: eager_export(folder, cls, output, golden, p)),
            ):
                path = os.path.join(out, f"{case}-{form}.onnx")
                try:
                    make(path)
                except Exception as e:  # noqa: BLE001 - report and go on
                    print(f"{case} {form}: export failed: {type(e).__name__}: {e}")
                    continue
                print(f"{case} {form}: max-abs vs PyTorch golden {check(path, golden, output):.2e}")


if __name__ == "__main__":
    main()
