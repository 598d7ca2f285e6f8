//! Fusion counts on bertc's own graphs, and what the fused graphs no longer
//! contain: structure only, so every graph is built with placeholder
//! weights (no random draws, even for the 24-layer presets).

mod common;

use common::shapes_only;
use std::collections::BTreeMap;

use bertc::config::BertConfig;
use bertc::ir::{dump, verify, Graph, Op};
use bertc::passes::{level_passes, Level, PassManager};
use bertc::pipeline::{build, load_config};
use bertc::presets::PRESETS;

fn optimized(config: &BertConfig, level: Level) -> Graph {
    let mut g = build(config, &shapes_only()).unwrap().graph;
    PassManager::from_names(level_passes(level))
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    g
}

fn count(g: &Graph, kind: &str) -> usize {
    g.op_histogram().get(kind).copied().unwrap_or(0)
}

#[test]
fn bert_base_fuses_25_layer_norms_12_gelus_12_attentions() {
    let g = optimized(&load_config("bert-base-uncased").unwrap(), Level::O2);
    assert_eq!(count(&g, "LayerNormalization"), 25);
    assert_eq!(count(&g, "Gelu"), 12);
    assert_eq!(count(&g, "Attention"), 12);
    // One mask expansion shared by all layers.
    assert_eq!(count(&g, "Expand"), 1);
    for gone in [
        "Erf",
        "Softmax",
        "ReduceMean",
        "Pow",
        "Sqrt",
        "Transpose",
        "Reshape",
        "Div",
    ] {
        assert_eq!(count(&g, gone), 0, "{gone} left after fusion:\n{}", dump(&g));
    }
}

#[test]
fn every_preset_fuses_every_layer() {
    for (name, _) in PRESETS {
        let c = load_config(name).unwrap();
        let g = optimized(&c, Level::O2);
        let layers = c.num_hidden_layers;
        // Pre-norm ModernBERT has as many: its layer 0 lacks the attention
        // norm, and a final norm follows the last layer. So has EuroBERT,
        // whose embeddings are not normed: its RMSNorms. DeBERTa-v3 adds the
        // norm over its relative-position table, shared by every layer.
        let table_norm = c
            .disentangled
            .as_ref()
            .is_some_and(|d| d.relative_attention && d.normed_table());
        let norms = count(&g, "LayerNormalization") + count(&g, "RMSNormalization");
        assert_eq!(norms, 1 + 2 * layers + usize::from(table_norm), "{name}");
        // NomicBERT's SwiGLU gates with silu: no GELU to fuse.
        let gelus = match c.hidden_act {
            bertc::config::Activation::Silu => 0,
            _ => layers,
        };
        assert_eq!(count(&g, "Gelu"), gelus, "{name}");
        assert_eq!(count(&g, "Attention"), layers, "{name}");
    }
}

#[test]
fn each_activation_fuses_only_where_a_gelu_op_exists() {
    let expected: BTreeMap<&str, (usize, &str)> = BTreeMap::from([
        ("gelu", (2, "Gelu{approximate=None}")),
        ("gelu_new", (2, "Gelu{approximate=Tanh}")),
        ("gelu_pytorch_tanh", (2, "Gelu{approximate=Tanh}")),
        ("gelu_fast", (2, "Gelu{approximate=Tanh}")),
        ("relu", (0, "Relu")),
        ("silu", (0, "Sigmoid")),
        ("quick_gelu", (0, "Sigmoid")),
        ("tanh", (0, "Tanh")),
        ("mish", (0, "Softplus")),
    ]);
    for (act, (gelus, marker)) in expected {
        let json = format!(
            r#"{{"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 64, "vocab_size": 50, "hidden_act": "{act}"}}"#
        );
        let c = BertConfig::from_json_str(&json, act).unwrap();
        let g = optimized(&c, Level::O2);
        assert_eq!(count(&g, "Gelu"), gelus, "{act}");
        assert!(dump(&g).contains(marker), "{act}: expected {marker} in the dump");
        assert_eq!(count(&g, "Attention"), 2, "{act}");
    }
}

#[test]
fn o0_and_o1_fuse_nothing() {
    let c = load_config("bert-tiny").unwrap();
    for level in [Level::O0, Level::O1] {
        let g = optimized(&c, level);
        assert_eq!(
            count(&g, "LayerNormalization") + count(&g, "Gelu") + count(&g, "Attention"),
            0
        );
    }
}

#[test]
fn a_pattern_read_from_outside_is_left_alone() {
    // If a value inside a layer norm is also a graph output, fusing would
    // lose it: the fusion must not fire there (and only there).
    let c = load_config("bert-tiny").unwrap();
    let mut g = build(&c, &shapes_only()).unwrap().graph;
    let centered = g.find("embeddings.LayerNorm.sub").unwrap();
    g.set_output(
        "centered",
        bertc::ir::Value {
            node: centered,
            slot: 0,
        },
    );
    PassManager::from_names(level_passes(Level::O2))
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    verify(&g).unwrap();
    assert_eq!(count(&g, "LayerNormalization"), 2 * c.num_hidden_layers);
    assert!(g
        .node_ids()
        .any(|id| g.node(id).op == Op::Unary(bertc::ir::UnaryOp::Sqrt)));
}

/// Every target but onnxruntime writes the attention it recognized
/// decomposed (the measured-fastest form in tract, neutral elsewhere).
#[test]
fn target_tract_keeps_attention_decomposed() {
    use bertc::passes::{pipeline, Target};
    let c = load_config("bert-mini").unwrap();
    for target in [Target::Tract, Target::Portable, Target::Openvino] {
        let mut g = build(&c, &shapes_only()).unwrap().graph;
        let runs = PassManager::from_names(pipeline(Level::O2, target))
            .unwrap()
            .verify_each(true)
            .run(&mut g)
            .unwrap();
        let matches = |pass: &str| runs.iter().find(|r| r.pass == pass).map(|r| r.report.matches);
        assert_eq!(matches("fuse_attention"), Some(c.num_hidden_layers), "{target:?}");
        assert_eq!(
            matches("decompose_attention"),
            Some(c.num_hidden_layers),
            "{target:?}"
        );
        assert_eq!(count(&g, "Attention"), 0);
        assert_eq!(count(&g, "Softmax"), c.num_hidden_layers);
        assert_eq!(count(&g, "LayerNormalization"), 1 + 2 * c.num_hidden_layers);
        assert_eq!(count(&g, "Gelu"), c.num_hidden_layers);
    }
}

#[test]
fn merge_qkv_merges_the_three_projections_of_every_layer() {
    let c = load_config("bert-mini").unwrap();
    let mut g = build(&c, &shapes_only()).unwrap().graph;
    let before = count(&g, "MatMul");
    PassManager::from_names(["merge_qkv", "dead_node_elimination"])
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    assert_eq!(count(&g, "MatMul"), before - 2 * c.num_hidden_layers);
    assert_eq!(count(&g, "Slice"), 1 + 3 * c.num_hidden_layers);
}
