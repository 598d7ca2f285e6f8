//! `--target onnxruntime`: the contrib-op forms onnxruntime's optimizer
//! would produce, run in onnxruntime itself (tract cannot run them) against
//! PyTorch and against the portable graph in tract, with left padding too.

mod common;

use bertc::config::BertConfig;
use bertc::ir::Graph;
use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{pipeline, target_passes, Level, PassManager, Target};
use bertc::pipeline::{build, load_config, BuildOptions};
use bertc::runtime::inputs_for;
use common::*;

fn lowered(mut g: Graph) -> (Graph, Graph) {
    PassManager::from_names(pipeline(Level::O2, Target::Onnxruntime))
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    let portable = g.clone();
    let lowering = target_passes(Target::Onnxruntime, Level::O2);
    PassManager::from_names(lowering)
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    (portable, g)
}

fn count(g: &Graph, kind: &str) -> usize {
    g.op_histogram().get(kind).copied().unwrap_or(0)
}

#[test]
fn bert_base_gets_onnxruntime_fusion_counts() {
    let g = build(&load_config("bert-base-uncased").unwrap(), &shapes_only())
        .unwrap()
        .graph;
    let (_, g) = lowered(g);
    assert_eq!(count(&g, "EmbedLayerNormalization"), 1);
    // The residual layer norms stay LayerNormalization (see
    // passes/add_bias_after_residual.rs).
    assert_eq!(count(&g, "SkipLayerNormalization"), 0);
    assert_eq!(count(&g, "LayerNormalization"), 24);
    assert_eq!(count(&g, "BiasGelu"), 12);
    assert_eq!(count(&g, "com.microsoft.Attention"), 12);
    for gone in ["Gelu", "Attention", "Softmax"] {
        assert_eq!(count(&g, gone), 0, "{gone} left");
    }
}

#[test]
fn tanh_gelu_becomes_fast_gelu() {
    let c = BertConfig::from_path(&fixture("tiny-gelu-new").join("config.json")).unwrap();
    let (_, g) = lowered(build(&c, &shapes_only()).unwrap().graph);
    assert_eq!(count(&g, "FastGelu"), c.num_hidden_layers);
}

#[test]
fn onnxruntime_target_matches_pytorch_and_tract_with_either_padding() {
    for case in ["tiny-base", "tiny-gelu-new", "tiny-relu-3l", "tiny-silu-h8"] {
        let dir = fixture(case);
        let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
        let opts = BuildOptions {
            weights: Some(dir.join("model.safetensors")),
            ..Default::default()
        };
        let (portable, ort_graph) = lowered(build(&config, &opts).unwrap().graph);
        let ort_model = export_bytes(&ort_graph, ExportOptions::default()).unwrap();
        // Against PyTorch (right padding).
        let golden = golden(&dir);
        assert_close(
            &format!("{case} onnxruntime target"),
            &run_onnxruntime(&ort_model, &golden),
            &golden,
            1e-4,
        );
        // Against the portable graph in tract, on right- and left-padded rows.
        let inputs = inputs_for(&portable, 3, 16);
        let reference = run_tract(
            &export_bytes(&portable, ExportOptions::default()).unwrap(),
            &inputs,
        );
        assert_close(
            &format!("{case} left padding"),
            &run_onnxruntime(&ort_model, &inputs),
            &reference,
            1e-4,
        );
    }
}

#[test]
fn minilm_onnxruntime_target_matches_pytorch() {
    let dir = minilm_dir();
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let opts = BuildOptions {
        weights: Some(dir.join("model.safetensors")),
        ..Default::default()
    };
    let (_, g) = lowered(build(&config, &opts).unwrap().graph);
    let model = export_bytes(&g, ExportOptions::default()).unwrap();
    let golden =
        bertc::runtime::read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap();
    let worst = assert_close(
        "MiniLM onnxruntime target",
        &run_onnxruntime(&model, &golden),
        &golden,
        1e-4,
    );
    eprintln!("MiniLM --target onnxruntime in onnxruntime vs PyTorch: max-abs {worst:e}");
}

#[test]
fn every_bert_preset_gets_onnxruntime_fusion_counts() {
    // BERT's relatives have their own counts (no token types, ALBERT's
    // gelu_new, RoBERTa-style positions): tests/families.rs.
    for (name, _) in bertc::presets::PRESETS {
        let c = load_config(name).unwrap();
        if c.family != bertc::family::Family::Bert {
            continue;
        }
        let (_, g) = lowered(build(&c, &shapes_only()).unwrap().graph);
        let layers = c.num_hidden_layers;
        assert_eq!(count(&g, "EmbedLayerNormalization"), 1, "{name}");
        assert_eq!(count(&g, "SkipLayerNormalization"), 0, "{name}");
        assert_eq!(count(&g, "LayerNormalization"), 2 * layers, "{name}");
        assert_eq!(count(&g, "BiasGelu"), layers, "{name}");
        assert_eq!(count(&g, "com.microsoft.Attention"), layers, "{name}");
    }
}
