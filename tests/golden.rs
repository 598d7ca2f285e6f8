//! Compiled models against PyTorch's outputs at -O0 and -O2: the seeded
//! tiny checkpoints and the real all-MiniLM-L6-v2, every position (padding
//! included), in tract; and the same files in onnxruntime, after the ONNX
//! checker (full_check).

mod common;

use bertc::passes::Level;
use common::*;

/// The tolerance the golden data supports for fp32 (see its README).
const ATOL: f64 = 1e-4;

fn check_case(case: &str) {
    for level in [Level::O0, Level::O2] {
        let what = format!("{case} {level:?}");
        let dir = fixture(case);
        let model = compile_checkpoint_at(&dir.join("config.json"), &dir.join("model.safetensors"), level);
        let golden = golden(&dir);
        let tract = run_tract(&model, &golden);
        assert_eq!(
            tract.keys().collect::<Vec<_>>(),
            ["last_hidden_state", "pooler_output"]
        );
        let worst = assert_close(&format!("{what} tract vs PyTorch"), &tract, &golden, ATOL);
        eprintln!("{what}: tract vs PyTorch max-abs {worst:e}");
        let ort = run_onnxruntime(&model, &golden);
        assert_close(&format!("{what} onnxruntime vs PyTorch"), &ort, &golden, ATOL);
        let worst = assert_close(&format!("{what} onnxruntime vs tract"), &ort, &tract, ATOL);
        eprintln!("{what}: onnxruntime vs tract max-abs {worst:e}");
    }
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
    let golden_file = fixture("minilm-l6").join("minilm-l6-golden.safetensors");
    let golden = bertc::runtime::read_safetensors(&golden_file).unwrap();
    for level in [Level::O0, Level::O2] {
        let (config, ckpt) = (weights.join("config.json"), weights.join("model.safetensors"));
        let model = compile_checkpoint_at(&config, &ckpt, level);
        let tract = run_tract(&model, &golden);
        let worst = assert_close(
            &format!("MiniLM {level:?} tract vs PyTorch"),
            &tract,
            &golden,
            ATOL,
        );
        eprintln!("MiniLM {level:?}: tract vs PyTorch max-abs {worst:e}");
        let ort = run_onnxruntime(&model, &golden);
        assert_close(
            &format!("MiniLM {level:?} onnxruntime vs PyTorch"),
            &ort,
            &golden,
            ATOL,
        );
        assert_close(
            &format!("MiniLM {level:?} onnxruntime vs tract"),
            &ort,
            &tract,
            ATOL,
        );
    }
}
