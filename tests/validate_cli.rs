//! `bertc validate`: the tolerance follows the model's precision (max-abs
//! for fp32, worst-row cosine for fp16 and int8), golden outputs the model
//! does not produce fail, and meaningless arguments are refused.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn validate(model: &Path, golden: &Path, extra: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"));
    cmd.arg("validate")
        .arg(model)
        .arg("--golden")
        .arg(golden)
        .args(extra);
    cmd.output().expect("bertc runs")
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// MiniLM compiled through the CLI with `extra` flags.
fn minilm(dir: &Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let m = minilm_dir();
    let out_path = dir.join(name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .arg("compile")
        .arg(m.join("config.json"))
        .arg("--weights")
        .arg(m.join("model.safetensors"))
        .args(extra)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    out_path
}

fn golden() -> std::path::PathBuf {
    fixture("minilm-l6").join("minilm-l6-golden.safetensors")
}

#[test]
fn reduced_precision_models_pass_their_default_cosine_gate_and_fail_a_stricter_one() {
    let dir = tempfile::tempdir().unwrap();
    for (name, flags, gate) in [
        ("fp16.onnx", &["--precision", "fp16"][..], "0.9999"),
        ("int8.onnx", &["--quantize", "dynamic"][..], "0.99"),
    ] {
        let model = minilm(dir.path(), name, flags);
        // The golden also holds sentence_embedding, which the base model lacks.
        let ok = validate(&model, &golden(), &["--allow-missing"]);
        let shown = text(&ok);
        assert_eq!(ok.status.code(), Some(0), "{name}: {shown}");
        assert!(
            shown.contains(&format!("min worst-row cosine {gate}")),
            "{name}: {shown}"
        );
        // The same model, held to a cosine no reduced-precision model reaches.
        let strict = validate(
            &model,
            &golden(),
            &["--allow-missing", "--min-cosine", "0.9999999"],
        );
        let shown = text(&strict);
        assert_eq!(strict.status.code(), Some(1), "{name}: {shown}");
        assert!(
            shown.contains("FAIL: worst row cosine below 0.9999999"),
            "{name}: {shown}"
        );
    }
}

#[test]
fn golden_outputs_the_model_lacks_fail_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // The sentence-embedding head does not produce pooler_output, which the golden holds.
    let model = minilm(
        dir.path(),
        "embed.onnx",
        &["--head", "sentence-embedding", "--keep-last-hidden-state"],
    );
    let out = validate(&model, &golden(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("golden outputs the model does not produce: pooler_output"),
        "{}",
        text(&out)
    );
    let allowed = validate(&model, &golden(), &["--allow-missing"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
}

#[test]
fn meaningless_tolerances_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    for (flag, value) in [
        ("--atol", "NaN"),
        ("--atol", "-1"),
        ("--min-cosine", "2"),
        ("--threads", "0"),
    ] {
        let out = validate(&model, &golden(), &[flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{flag}: {}",
            text(&out)
        );
    }
}

#[test]
fn an_empty_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("tiny-base").join("config.json");
    let model = dir.path().join("tiny.onnx");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile"])
        .arg(&config)
        .arg("--weights")
        .arg(fixture("tiny-base").join("model.safetensors"))
        .arg("-o")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let empty = dir.path().join("empty.safetensors");
    let mut t = bertc::runtime::NamedTensors::new();
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        t.insert(name.into(), bertc::runtime::HostTensor::i64(vec![0, 8], vec![]));
    }
    bertc::runtime::write_safetensors(&empty, &t).unwrap();
    let out = validate(&model, &empty, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("empty batch"), "{}", text(&out));
}

/// An export folder validates like its model file — the one `run` loads in
/// tract — as `run`, `inspect` and `bench` take such folders (issue 25:
/// "a directory"); a model folder without a compiled file is refused with
/// what to do.
#[test]
fn an_export_folder_validates_its_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = minilm(dir.path(), "export/", &[]);
    let out = validate(&folder, &golden(), &["--allow-missing"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("last_hidden_state"), "{}", text(&out));
    let out = validate(
        &fixture("tiny-base"),
        &fixture("tiny-base/golden.safetensors"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("a model folder without model.onnx"),
        "{}",
        text(&out)
    );
}
