//! PyTorch's exports of the tiny seeded ModernBERT and DeBERTa-v3
//! checkpoints (tests/fixtures/foreign-modern, made by
//! scripts/make_modern_exports.py: Optimum's default export and
//! TorchScript with eager attention), against PyTorch's outputs of the
//! checkpoints (family2's goldens, transformers 5.23) at every position,
//! padding included.
//!
//! ModernBERT's files fuse as bertc's own graphs do: its packed Q/K/V
//! split into [B, n, S, d] heads, its rotation in that layout
//! (`x·cos + Concat(−x₂, x₁)·sin`, proven RoPE's tables per layer) and its
//! band mask are restated in the builder's forms, so that attention is
//! recognized in every layer, the sliding ones computed along their band,
//! and `--target onnxruntime` writes the rotations as RotaryEmbedding.
//! DeBERTa's files do not import: their relative-position buckets use
//! `Sign` (then `Ceil`, `Tile`, `GatherElements` and an `If`), which the
//! IR lacks.

mod common;

use bertc::onnx::read_model;
use bertc::passes::Target;
use bertc::pipeline::{run, PipelineOptions, Source};
use bertc::runtime::NamedTensors;
use common::*;

fn file(name: &str) -> std::path::PathBuf {
    fixture(&format!("foreign-modern/{name}"))
}

/// The case's golden: its inputs and PyTorch's output.
fn golden_of(case: &str) -> (NamedTensors, NamedTensors) {
    let all = bertc::runtime::read_safetensors(&file(&format!("{case}.golden.safetensors"))).unwrap();
    let (inputs, outputs) = all
        .into_iter()
        .partition(|(name, _)| name == "input_ids" || name == "attention_mask");
    (inputs, outputs)
}

/// The layers of each ModernBERT case (3) and how many are sliding (1:
/// layer 1 of 3, global_attn_every_n_layers 2), its fused norms (the
/// embeddings', the attention norms of layers 1 and 2, three MLP norms,
/// the final norm; modernbert-cls adds its head's) and GELUs (one per
/// GeGLU, the head's).
const MODERNBERT: [(&str, usize, usize); 2] = [("modernbert-base", 7, 3), ("modernbert-cls", 8, 4)];
const LAYERS: usize = 3;
const SLIDING_LAYERS: usize = 1;

/// How many matches `pass` reported in `c`'s pipeline.
fn matches_of(c: &bertc::pipeline::Compiled, pass: &str) -> usize {
    c.report
        .all_passes()
        .filter(|r| r.pass == pass)
        .map(|r| r.report.matches)
        .sum()
}

/// `optimize -O2` of `case`'s export `form` for `target`: attention fused
/// in every layer (the sliding one blocked along its band), the norms and
/// GELUs fused, and exact against PyTorch in `runtimes`.
fn check_modernbert(case: &str, form: &str, target: Target, norms: usize, gelus: usize) {
    let g = read_model(&file(&format!("{case}-{form}.onnx"))).expect("the export imports");
    let (inputs, torch) = golden_of(case);
    let options = PipelineOptions {
        target,
        ..PipelineOptions::default()
    };
    let compiled = run(test_session(), Source::Graph(g), &options).expect("optimizes");
    let what = format!("{case} {form} -O2 --target {}", target.name());
    let counts = fused_counts(&compiled);
    let h = compiled.graph().op_histogram();
    assert_eq!(
        counts,
        FusedCounts {
            attention: LAYERS,
            layer_norm: norms,
            gelu: gelus,
        },
        "{what}: {h:?}"
    );
    assert_eq!(
        matches_of(&compiled, "block_sliding_attention"),
        SLIDING_LAYERS,
        "{what}"
    );
    // Q and K rotated in every layer: RotaryEmbedding for onnxruntime,
    // the primitive rotation elsewhere.
    let rotations = h.get("RotaryEmbedding").copied();
    let expected = (target == Target::Onnxruntime).then_some(2 * LAYERS);
    assert_eq!(rotations, expected, "{what}: {h:?}");
    let bytes = compiled.to_bytes().unwrap();
    if target != Target::Onnxruntime {
        assert_close(
            &format!("{what}, tract"),
            &run_tract(&bytes, &inputs),
            &torch,
            1e-4,
        );
    }
    assert_close(
        &format!("{what}, onnxruntime"),
        &run_onnxruntime(&bytes, &inputs),
        &torch,
        1e-4,
    );
}

#[test]
fn modernbert_exports_fuse_every_layer_and_match_pytorch() {
    for (case, norms, gelus) in MODERNBERT {
        for form in ["optimum", "torchscript-eager"] {
            for target in [Target::Portable, Target::Onnxruntime] {
                check_modernbert(case, form, target, norms, gelus);
            }
        }
    }
}

#[test]
fn deberta_exports_are_refused_naming_the_missing_op() {
    for case in ["deberta-v3-base", "deberta-v3-cls"] {
        for form in ["optimum", "torchscript-eager"] {
            let err = read_model(&file(&format!("{case}-{form}.onnx")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("(Sign, opset") && err.contains("not supported by bertc's IR"),
                "{case} {form}: {err}"
            );
        }
    }
}
