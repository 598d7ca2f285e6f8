#!/usr/bin/env python3
"""More seeded checkpoints of the modern families, of other sizes and settings
than ../shared/golden/family2's, with PyTorch's outputs: the maintainers' "28
more of other sizes and seeds", for the families transformers has in-library
(ModernBERT, DeBERTa v1, v2/v3). Benchmark-venv only (torch, transformers);
never run by tests or CI.

    python3 scripts/family_variants.py OUT_DIR [--count N] [--seed S]

Writes OUT_DIR/<case>/ as family2 does: `save_pretrained`'s config.json and
model.safetensors, and golden.safetensors with the inputs (3 rows of a random
length 17..48: full, short, left-padded) and every output of the eager model.
Weights are drawn with initializer_range 0.2 and 0.1*randn added to every bias
and norm weight, as family2's README says, so that wrong wiring shows.
`scripts/check_family_variants.sh OUT_DIR` compiles and checks each.
"""
import argparse
import random
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file


def perturb(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower() and name.endswith("weight"):
                p.add_(0.1 * torch.randn_like(p))


def modernbert(rng, i):
    heads = rng.choice([2, 3, 4])
    head_dim = rng.choice([8, 16])
    config = transformers.ModernBertConfig(
        vocab_size=300,
        hidden_size=heads * head_dim,
        intermediate_size=rng.choice([32, 48, 80]),
        num_hidden_layers=rng.choice([2, 4, 5]),
        num_attention_heads=heads,
        max_position_embeddings=128,
        global_attn_every_n_layers=rng.choice([1, 2, 3]),
        local_attention=rng.choice([4, 8, 16]),
        global_rope_theta=rng.choice([160000.0, 500.0, 10000.0]),
        local_rope_theta=rng.choice([10000.0, 40.0, 1000.0]),
        attention_bias=rng.random() < 0.5,
        mlp_bias=rng.random() < 0.5,
        norm_bias=rng.random() < 0.5,
        classifier_bias=rng.random() < 0.5,
        classifier_pooling=rng.choice(["cls", "mean"]),
        initializer_range=0.2,
        pad_token_id=3,
        num_labels=rng.choice([2, 3, 5]),
    )
    arch = rng.choice(
        [
            transformers.ModernBertModel,
            transformers.ModernBertForSequenceClassification,
            transformers.ModernBertForTokenClassification,
            transformers.ModernBertForMaskedLM,
        ]
    )
    return f"modernbert-v{i}", config, arch


def deberta_v2(rng, i):
    heads = rng.choice([2, 4])
    head_dim = rng.choice([8, 16])
    hidden = heads * head_dim
    v3 = rng.random() < 0.6
    buckets = rng.choice([8, 16, 32]) if v3 else -1
    config = transformers.DebertaV2Config(
        vocab_size=300,
        hidden_size=hidden,
        intermediate_size=rng.choice([32, 64, 96]),
        num_hidden_layers=rng.choice([2, 3]),
        num_attention_heads=heads,
        max_position_embeddings=128,
        relative_attention=True,
        position_buckets=buckets,
        max_relative_positions=rng.choice([-1, 16, 48]) if v3 else rng.choice([6, 12, 64]),
        pos_att_type=rng.choice([["p2c", "c2p"], ["c2p"], ["p2c"]]),
        share_att_key=v3 or rng.random() < 0.5,
        norm_rel_ebd="layer_norm" if v3 else "none",
        position_biased_input=not v3,
        type_vocab_size=0 if v3 else 2,
        conv_kernel_size=0 if v3 else 3,
        embedding_size=rng.choice([hidden, 16]) if v3 else hidden,
        initializer_range=0.2,
        pad_token_id=0,
        num_labels=rng.choice([2, 3]),
        hidden_act="gelu",
    )
    arch = rng.choice(
        [
            transformers.DebertaV2Model,
            transformers.DebertaV2ForSequenceClassification,
            transformers.DebertaV2ForTokenClassification,
            transformers.DebertaV2ForQuestionAnswering,
        ]
    )
    return f"deberta-v{'3' if v3 else '2'}-v{i}", config, arch


def deberta_v1(rng, i):
    heads = rng.choice([2, 4])
    config = transformers.DebertaConfig(
        vocab_size=300,
        hidden_size=heads * 8,
        intermediate_size=rng.choice([32, 64]),
        num_hidden_layers=2,
        num_attention_heads=heads,
        max_position_embeddings=128,
        relative_attention=True,
        max_relative_positions=rng.choice([-1, 12, 40]),
        pos_att_type=rng.choice([["p2c", "c2p"], ["c2p"]]),
        position_biased_input=rng.random() < 0.5,
        type_vocab_size=0,
        initializer_range=0.2,
        pad_token_id=0,
        num_labels=2,
    )
    arch = rng.choice([transformers.DebertaModel, transformers.DebertaForSequenceClassification])
    return f"deberta-v1-v{i}", config, arch


def inputs(rng, config, pad):
    seq = rng.randint(17, 48)
    lengths = [seq, rng.randint(3, seq - 2), rng.randint(3, seq - 2)]
    ids = torch.full((3, seq), pad, dtype=torch.int64)
    mask = torch.zeros((3, seq), dtype=torch.int64)
    for row, n in enumerate(lengths):
        real = torch.randint(5, config.vocab_size, (n,))
        if row == 2:  # left-padded
            ids[row, seq - n :], mask[row, seq - n :] = real, 1
        else:
            ids[row, :n], mask[row, :n] = real, 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if getattr(config, "type_vocab_size", 0) > 1:
        types = torch.zeros_like(ids)
        types[:, seq // 2 :] = 1
        feeds["token_type_ids"] = types * mask
    return feeds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=10, help="cases per family")
    ap.add_argument("--seed", type=int, default=9100)
    args = ap.parse_args()
    for f, family in enumerate((modernbert, deberta_v2, deberta_v1)):
        for i in range(args.count):
            seed = args.seed + 1000 * f + i
            rng = random.Random(seed)
            torch.manual_seed(seed)
            name, config, arch = family(rng, i)
            if "QuestionAnswering" in arch.__name__:
                config.num_labels = 2
            config._attn_implementation = "eager"
            model = arch(config).eval()
            perturb(model)
            folder = args.out / name
            model.save_pretrained(folder, safe_serialization=True)
            feeds = inputs(rng, config, config.pad_token_id)
            with torch.no_grad():
                out = model(**feeds)
            golden = {k: v.contiguous() for k, v in feeds.items()}
            for key in ("last_hidden_state", "logits", "start_logits", "end_logits"):
                value = getattr(out, key, None)
                if value is not None:
                    golden[key] = value.float().contiguous()
            save_file(golden, folder / "golden.safetensors")
            print(name, arch.__name__, {k: tuple(v.shape) for k, v in golden.items()})


if __name__ == "__main__":
    main()
