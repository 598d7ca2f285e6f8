//! Compiled models against PyTorch's outputs: the seeded tiny checkpoints
//! and the real all-MiniLM-L6-v2, every position (padding included), in
//! tract; and the same files in onnxruntime, after the ONNX checker.

mod common;

use common::*;

/// The tolerance the golden data supports for fp32 (see its README).
const ATOL: f64 = 1e-4;

fn check_case(case: &str) {
    let dir = fixture(case);
    let model = compile_checkpoint(&dir.join("config.json"), &dir.join("model.safetensors"));
    let golden = golden(&dir);
    let tract = run_tract(&model, &golden);
    assert_eq!(
        tract.keys().collect::<Vec<_>>(),
        ["last_hidden_state", "pooler_output"]
    );
    let worst = assert_close(&format!("{case} tract vs PyTorch"), &tract, &golden, ATOL);
    eprintln!("{case}: tract vs PyTorch max-abs {worst:e}");
    let ort = run_onnxruntime(&model, &golden);
    assert_close(&format!("{case} onnxruntime vs PyTorch"), &ort, &golden, ATOL);
    let worst = assert_close(&format!("{case} onnxruntime vs tract"), &ort, &tract, ATOL);
    eprintln!("{case}: onnxruntime vs tract max-abs {worst:e}");
}

#[test]
fn tiny_base_matches_pytorch() {
    check_case("tiny-base");
}

#[test]
fn tiny_gelu_new_matches_pytorch() {
    check_case("tiny-gelu-new");
}

#[test]
fn tiny_relu_3l_matches_pytorch() {
    check_case("tiny-relu-3l");
}

#[test]
fn tiny_silu_h8_matches_pytorch() {
    check_case("tiny-silu-h8");
}

#[test]
fn minilm_real_weights_match_pytorch() {
    let weights = minilm_dir();
    let model = compile_checkpoint(&weights.join("config.json"), &weights.join("model.safetensors"));
    let golden =
        bertc::runtime::read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap();
    let tract = run_tract(&model, &golden);
    let worst = assert_close("MiniLM tract vs PyTorch", &tract, &golden, ATOL);
    eprintln!("MiniLM: tract vs PyTorch max-abs {worst:e}");
    let ort = run_onnxruntime(&model, &golden);
    assert_close("MiniLM onnxruntime vs PyTorch", &ort, &golden, ATOL);
    assert_close("MiniLM onnxruntime vs tract", &ort, &tract, ATOL);
}
