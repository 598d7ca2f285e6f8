//! PyTorch's own exports of tiny-base (TorchScript at opsets 14 and 17):
//! imported into the IR, run back out through bertc's emitter, and fused —
//! every layer norm, GELU and attention — without moving the numbers.

mod common;

use bertc::check::{check_equivalence, inputs_for};
use bertc::ir::Graph;
use bertc::onnx::{export_bytes, read_model, ExportOptions};
use bertc::passes::{level_passes, Level, PassManager};
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

    let mut fused = original.clone();
    PassManager::from_names(level_passes(Level::O2))
        .unwrap()
        .verify_each(true)
        .run(&mut fused)
        .unwrap();
    assert_eq!(count(&fused, "LayerNormalization"), 5, "{file}");
    assert_eq!(count(&fused, "Gelu"), 2, "{file}");
    assert_eq!(count(&fused, "Attention"), 2, "{file}");
    for gone in ["Softmax", "Erf", "ReduceMean", "Transpose"] {
        assert_eq!(count(&fused, gone), 0, "{file}: {gone} left");
    }
    // Within 1e-5 of the unoptimized file in tract, on padded inputs both sides.
    bertc::runtime::set_threads(2);
    let inputs = inputs_for(&original, 3, 16);
    for c in check_equivalence(&original, &fused, &inputs).unwrap() {
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
        err.contains("must stay inside the model's folder") && err.contains("opset 17"),
        "{err}"
    );
}
