//! Exports of other models than foreign2's, in forms no foreign2 file has
//! (tests/fixtures/foreign-variants/README.md; `scripts/foreign_variants.py`
//! makes 44 such and checks them all): MPNet's score bias added after the
//! scaling, dynamo's int64 position count, onnxruntime's segment-less
//! EmbedLayerNormalization. Each optimizes at -O2 with attention fused in
//! both layers and gives the file's own outputs (1e-5) and PyTorch's (1e-4;
//! on the right-aligned rows only where the file reads a 1-D mask index)
//! in tract and onnxruntime, and `--target onnxruntime` in onnxruntime.

mod common;

use bertc::onnx::read_model;
use bertc::passes::Target;
use bertc::pipeline::{run, PipelineOptions, Source};
use bertc::runtime::NamedTensors;
use common::*;

/// The golden's inputs, the file's own outputs and PyTorch's (`torch.*`).
fn parts(dir: &std::path::Path) -> (NamedTensors, NamedTensors, NamedTensors) {
    let (mut inputs, mut file, mut torch) = (NamedTensors::new(), NamedTensors::new(), NamedTensors::new());
    for (name, t) in golden(dir) {
        match name.strip_prefix("torch.") {
            Some(output) => torch.insert(output.to_string(), t),
            None if name == "input_ids" || name == "attention_mask" => inputs.insert(name, t),
            None => file.insert(name, t),
        };
    }
    (inputs, file, torch)
}

/// `case` optimized for `target` fuses attention in both layers and gives
/// the file's and PyTorch's numbers (PyTorch's on `torch_rows` rows).
fn check(case: &str, torch_rows: usize) {
    let dir = fixture(&format!("foreign-variants/{case}"));
    let original = read_model(&dir.join("model.onnx")).expect("the export imports");
    let (inputs, file, torch) = parts(&dir);
    assert!(
        !file.is_empty() && file.len() == torch.len(),
        "{case}: golden holds both references"
    );
    for target in [Target::Portable, Target::Onnxruntime] {
        let opts = PipelineOptions {
            target,
            ..Default::default()
        };
        let c = run(test_session(), Source::Graph(original.clone()), &opts).expect("optimizes at -O2");
        assert_eq!(
            fused_counts(&c).attention,
            2,
            "{case} {target:?}: attention in both layers"
        );
        let bytes = c.to_bytes().unwrap();
        let mut runs = vec![("onnxruntime", run_onnxruntime(&bytes, &inputs))];
        if target == Target::Portable {
            runs.push(("tract", run_tract(&bytes, &inputs)));
        }
        for (runtime, outputs) in runs {
            let what = format!("{case} {target:?} in {runtime}");
            assert_close(&format!("{what} vs the file"), &outputs, &file, 1e-5);
            let (got, want) = (first_rows(&outputs, torch_rows), first_rows(&torch, torch_rows));
            assert_close(&format!("{what} vs PyTorch"), &got, &want, 1e-4);
        }
    }
}

#[test]
fn mpnet_score_bias_after_the_scaling_fuses() {
    check("mpnet-cls--optimum", 3);
}

#[test]
fn dynamo_roberta_int64_position_count_runs_in_tract() {
    check("roberta-tok--dynamo-sdpa", 3);
}

/// The file reads onnxruntime's 1-D mask index: on the left-padded row it
/// is not PyTorch, and the optimized model computes what the file does.
#[test]
fn embed_layer_norm_without_segments_imports() {
    check("distilbert-qa--ortopt-level2", 2);
}
