#!/usr/bin/env python3
"""What Optimum's ORTModelForFeatureExtraction and sentence-transformers'
ONNX backend (`SentenceTransformer(folder, backend="onnx")`) do with an
export folder, without PyTorch: find the model file where they look
(`model.onnx` at the root, else `onnx/model.onnx`), tokenize with the
folder's tokenizer.json cut at sentence_bert_config.json's
max_seq_length, run it in onnxruntime, read the output they read by name
(`last_hidden_state`: Optimum raises KeyError without it), and pool it as
the folder's modules.json says (Pooling's mode, then Normalize if listed).

Prints one JSON document: per text the pooled vector, and the largest
difference from the file's own `sentence_embedding` output.

    python3 scripts/st_onnx_loaders.py EXPORT_FOLDER "a text" "another"
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def model_file(folder):
    for candidate in (folder / "model.onnx", folder / "onnx" / "model.onnx"):
        if candidate.is_file():
            return candidate
    sys.exit(f"{folder}: neither model.onnx nor onnx/model.onnx")


def modules(folder):
    listed = json.loads((folder / "modules.json").read_text())
    pooling, normalize = None, False
    for m in listed:
        kind = m["type"].rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling = json.loads((folder / m["path"] / "config.json").read_text())
        elif kind == "Normalize":
            normalize = True
    if pooling is None:
        sys.exit(f"{folder}: modules.json lists no Pooling module")
    return pooling, normalize


def pool(tokens, mask, config):
    """sentence_transformers.models.Pooling.forward for one mode."""
    mask = mask[..., None].astype(np.float32)
    if config.get("pooling_mode_cls_token"):
        return tokens[:, 0]
    if config.get("pooling_mode_max_tokens"):
        return np.where(mask > 0, tokens, -1e9).max(axis=1)
    summed = (tokens * mask).sum(axis=1)
    count = np.clip(mask.sum(axis=1), 1e-9, None)
    if config.get("pooling_mode_mean_sqrt_len_tokens"):
        return summed / np.sqrt(count)
    return summed / count


def main():
    folder, texts = Path(sys.argv[1]), sys.argv[2:]
    model = model_file(folder)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    sbert = json.loads((folder / "sentence_bert_config.json").read_text())
    tokenizer.enable_truncation(sbert["max_seq_length"])
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(texts)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    names = [i.name for i in session.get_inputs()]
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {k: feeds[k] for k in names})))
    tokens = outputs["last_hidden_state"]
    pooling, normalize = modules(folder)
    vectors = pool(tokens, feeds["attention_mask"], pooling)
    if normalize:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    own = outputs.get("sentence_embedding")
    print(json.dumps({
        "model_file": model.relative_to(folder).as_posix(),
        "outputs": sorted(outputs),
        "embeddings": vectors.tolist(),
        "max_diff_from_sentence_embedding": None if own is None else float(np.abs(own - vectors).max()),
    }))


if __name__ == "__main__":
    main()
