//! PyTorch's own exports of tiny-base (TorchScript at opsets 14 and 17),
//! and of RoBERTa and DistilBERT (tests/fixtures/family-foreign):
//! imported into the IR, run back out through bertc's emitter, and fused —
//! every layer norm, GELU and attention — without moving the numbers.

mod common;

use bertc::ir::Graph;
use bertc::onnx::{export_bytes, read_model, ExportOptions};
use bertc::passes::Target;
use bertc::pipeline::check::check_equivalence;
use bertc::pipeline::{run, PipelineOptions, Source};
use bertc::runtime::inputs_for;
use bertc::runtime::NamedTensors;
use common::*;

fn import(file: &str) -> Graph {
    read_model(&fixture("foreign-tiny-base").join(file)).expect("the export imports")
}

fn count(g: &Graph, kind: &str) -> usize {
    g.op_histogram().get(kind).copied().unwrap_or(0)
}

fn check_export(file: &str) {
    let golden = golden(&fixture("tiny-base"));
    let original = import(file);
    // As imported, re-emitted by bertc: PyTorch's numbers.
    let bytes = export_bytes(&original, ExportOptions::default()).unwrap();
    assert_close(
        &format!("{file} as imported"),
        &run_tract(&bytes, &golden),
        &golden,
        1e-4,
    );

    let fused = fused_o2(&original);
    assert_eq!(count(&fused, "LayerNormalization"), 5, "{file}");
    assert_eq!(count(&fused, "Gelu"), 2, "{file}");
    assert_eq!(count(&fused, "Attention"), 2, "{file}");
    for gone in ["Softmax", "Erf", "ReduceMean", "Transpose"] {
        assert_eq!(count(&fused, gone), 0, "{file}: {gone} left");
    }
    // Within 1e-5 of the unoptimized file in tract, on padded inputs both sides.
    let inputs = inputs_for(&original, 3, 16);
    for c in check_equivalence(test_session(), &original, &fused, &inputs).unwrap() {
        assert!(c.within(1e-5), "{file}: {} moved by {:e}", c.name, c.max_abs);
    }
    let bytes = export_bytes(&fused, ExportOptions::default()).unwrap();
    let tract = run_tract(&bytes, &golden);
    assert_close(&format!("{file} fused, tract"), &tract, &golden, 1e-4);
    let ort = run_onnxruntime(&bytes, &golden);
    assert_close(&format!("{file} fused, onnxruntime"), &ort, &golden, 1e-4);
}

#[test]
fn torchscript_opset14_export_fuses_everything() {
    check_export("torchscript-opset14.onnx");
}

#[test]
fn torchscript_opset17_export_fuses_everything() {
    check_export("torchscript-opset17.onnx");
}

#[test]
fn dynamo_opset18_export_fuses_everything() {
    // onnxruntime's transformers optimizer fuses no attention in this file
    // (shared notes); bertc fuses both layers'.
    check_export("dynamo-opset18.onnx");
}

/// Saves `file` with every initializer in an external `weights.bin`
/// (onnx's own writer) into `dir`, with `location` as the recorded path.
fn with_external_data(file: &str, dir: &std::path::Path, location: &str) -> std::path::PathBuf {
    let out = dir.join("model.onnx");
    let script = format!(
        "import onnx\nm = onnx.load({src:?})\n\
         onnx.save_model(m, {out:?}, save_as_external_data=True, all_tensors_to_one_file=True, location='weights.bin', size_threshold=0)\n\
         m = onnx.load({out:?}, load_external_data=False)\n\
         for t in m.graph.initializer:\n    for e in t.external_data:\n        e.value = {location:?} if e.key == 'location' else e.value\n\
         onnx.save_model(m, {out:?})\n",
        src = fixture("foreign-tiny-base").join(file).to_str().unwrap(),
        out = out.to_str().unwrap(),
    );
    let status = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "onnx could not write external data (run scripts/setup-test-env.sh)"
    );
    out
}

#[test]
fn external_data_initializers_load_from_the_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_external_data("torchscript-opset17.onnx", dir.path(), "weights.bin");
    let g = read_model(&path).unwrap();
    let golden = golden(&fixture("tiny-base"));
    let bytes = export_bytes(&g, ExportOptions::default()).unwrap();
    assert_close("external data", &run_tract(&bytes, &golden), &golden, 1e-4);
    // From bytes alone there is no folder to resolve it against.
    let err = bertc::onnx::import_bytes(&std::fs::read(&path).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("external data needs the model's folder"), "{err}");
}

#[test]
fn external_data_may_not_leave_the_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_external_data("torchscript-opset17.onnx", dir.path(), "../weights.bin");
    let err = read_model(&path).unwrap_err().to_string();
    assert!(
        err.contains("must be a relative path inside the model's folder") && err.contains("opset 17"),
        "{err}"
    );
}

/// PyTorch's TorchScript export (opset 17) of `case` in tests/fixtures/family.
fn family_export(case: &str) -> (Graph, NamedTensors) {
    let file = fixture(&format!("family-foreign/{case}-torchscript-opset17.onnx"));
    let g = read_model(&file).expect("the export imports");
    (g, golden(&family_dir(case)))
}

/// `bertc optimize` at -O2 (portable) and with `--target onnxruntime` on a
/// relative's export: every layer's attention, layer norms and GELU fused,
/// within 1e-5 of the export in tract (golden inputs, left padding
/// included, and generated ones) and within 1e-4 of PyTorch in tract and
/// onnxruntime.
fn check_family_export(case: &str, layers: usize) {
    let (original, golden) = family_export(case);
    let fused = fused_o2(&original);
    assert_eq!(count(&fused, "Attention"), layers, "{case}");
    assert_eq!(count(&fused, "LayerNormalization"), 2 * layers + 1, "{case}");
    assert_eq!(count(&fused, "Gelu"), layers, "{case}");
    for gone in ["Softmax", "Erf", "Transpose", "Div"] {
        assert_eq!(count(&fused, gone), 0, "{case}: {gone} left");
    }
    let on_golden = moved(&original, &fused, &golden);
    assert!(
        on_golden <= 1e-5,
        "{case}: moved by {on_golden:e} on the golden inputs"
    );
    let inputs = inputs_for(&original, 3, 16);
    for c in check_equivalence(test_session(), &original, &fused, &inputs).unwrap() {
        assert!(c.within(1e-5), "{case}: {} moved by {:e}", c.name, c.max_abs);
    }
    let bytes = export_bytes(&fused, ExportOptions::default()).unwrap();
    let tract = assert_close(
        &format!("{case} fused, tract"),
        &run_tract(&bytes, &golden),
        &golden,
        1e-4,
    );
    let ort = assert_close(
        &format!("{case} fused, onnxruntime"),
        &run_onnxruntime(&bytes, &golden),
        &golden,
        1e-4,
    );

    let opts = PipelineOptions {
        target: Target::Onnxruntime,
        ..Default::default()
    };
    let lowered = run(test_session(), Source::Graph(original), &opts).expect("optimizes for onnxruntime");
    assert_eq!(
        count(lowered.graph(), "com.microsoft.Attention"),
        layers,
        "{case}"
    );
    assert_eq!(count(lowered.graph(), "BiasGelu"), layers, "{case}");
    // Each layer's two residual layer norms stay LayerNormalization (with
    // the bias added after the residual: onnxruntime's SkipLayerNormalization
    // is slower), as does the embeddings'.
    let skips = count(lowered.graph(), "SkipLayerNormalization");
    let plain = count(lowered.graph(), "LayerNormalization");
    assert!(skips == 0 && plain == 2 * layers + 1, "{case}: {skips} + {plain}");
    let bytes = lowered.to_bytes().unwrap();
    let ort_target = assert_close(
        &format!("{case} --target onnxruntime"),
        &run_onnxruntime(&bytes, &golden),
        &golden,
        1e-4,
    );
    eprintln!(
        "{case}: moved {on_golden:e} (golden inputs); vs PyTorch: tract {tract:e}, \
         onnxruntime {ort:e}, --target onnxruntime {ort_target:e}"
    );
}

#[test]
fn roberta_export_fuses_every_layer() {
    // Position ids from the non-pad tokens: Equal/Not/Cast/CumSum.
    check_family_export("roberta-base", 2);
}

#[test]
fn distilbert_export_fuses_every_layer() {
    // Q scaled before its product with K; the mask a Where over the scores.
    check_family_export("distilbert-base", 2);
}

/// DistilBERT's export with each layer's `Where(cond, lowest, scores)`
/// rewritten by `edit` (given the graph and the Where): a near miss of the
/// select mask, which must stay unfused and unchanged in value.
fn distilbert_near_miss(edit: impl Fn(&mut Graph, bertc::ir::NodeId)) {
    let (mut g, golden) = family_export("distilbert-base");
    let wheres: Vec<_> = g
        .node_ids()
        .filter(|&id| g.node(id).op == bertc::ir::Op::Where && g.node(id).name.contains("attention"))
        .collect();
    assert_eq!(wheres.len(), 2);
    for id in wheres {
        edit(&mut g, id);
    }
    let fused = fused_o2(&g);
    assert_eq!(count(&fused, "Attention"), 0);
    assert_eq!(count(&fused, "Softmax"), 2);
    let on_golden = moved(&g, &fused, &golden);
    assert!(on_golden <= 1e-5, "moved by {on_golden:e}");
}

#[test]
fn a_milder_where_fill_is_left_unfused() {
    // -1e4 does not absorb the scores: a fully masked row would still see them.
    distilbert_near_miss(|g, id| {
        let name = g.fresh_name("mild_fill");
        let c = g.add_const(&name, bertc::ir::Tensor::scalar_f32(-1e4)).unwrap();
        g.set_input(id, 1, c);
    });
}

#[test]
fn a_where_keeping_the_scores_where_true_is_left_unfused() {
    // Where(cond, scores, lowest): the fill on the other branch.
    distilbert_near_miss(|g, id| {
        let ins = g.inputs_of(id);
        let (fill, scores) = (ins[1].unwrap(), ins[2].unwrap());
        g.set_input(id, 1, scores);
        g.set_input(id, 2, fill);
    });
}
