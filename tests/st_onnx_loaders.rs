//! A sentence-transformers export from bertc, read as Optimum's
//! ORTModelForFeatureExtraction and sentence-transformers' ONNX backend
//! read it (scripts/st_onnx_loaders.py: their file lookup, the
//! `last_hidden_state` output they take by name, the folder's tokenizer
//! and Pooling/Normalize modules, in onnxruntime; no PyTorch): the real
//! MiniLM (mean pooling, Normalize) and the st-cls fixture (CLS pooling)
//! give sentence-transformers' embeddings, and the file's own
//! `sentence_embedding`. `--sentence-embedding-only` drops the per-token
//! output, and those loaders then fail as Optimum does (KeyError).

mod common;

use std::path::Path;
use std::process::Command;

use bertc::runtime::HostData;
use common::{bertc_run, minilm_dir, stderr_of, strings};
use serde_json::Value;

/// sentence-transformers' own vectors against onnxruntime's: 1e-5.
const ATOL: f64 = 1e-5;

fn loaders(export: &Path, texts: &[String]) -> std::process::Output {
    Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/st_onnx_loaders.py"))
        .arg(export)
        .args(texts)
        .output()
        .expect("python3 starts (scripts/setup-test-env.sh installs what the script imports)")
}

fn export(model: &Path, to: &Path, extra: &[&str]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compile", &model, &"-o", &to];
    for a in extra {
        args.push(a);
    }
    let out = bertc_run(&args);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// The loaders' vectors for `texts` from `folder`'s export (compiled with
/// `layout`'s flags, the model file where it puts it), checked against
/// `expected` (row-major) and the file's own sentence_embedding.
fn check(folder: &Path, texts: &[String], expected: &[f64], what: &str, layout: (&[&str], &str)) {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("export/");
    export(folder, &out_dir, layout.0);
    let out = loaders(&out_dir, texts);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["model_file"], layout.1, "{what}");
    assert_eq!(
        doc["outputs"],
        serde_json::json!(["last_hidden_state", "sentence_embedding"]),
        "{what}"
    );
    let got: Vec<f64> = doc["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(got.len(), expected.len(), "{what}");
    let d = got
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let own = doc["max_diff_from_sentence_embedding"].as_f64().unwrap();
    eprintln!("{what}: loaders vs sentence-transformers {d:e}, vs the file's sentence_embedding {own:e}");
    assert!(d <= ATOL && own <= ATOL, "{what}: {d:e} / {own:e}");

    // Without the per-token output the loaders cannot read the file.
    let slim = tmp.path().join("slim/");
    export(folder, &slim, &["--sentence-embedding-only"]);
    let out = loaders(&slim, texts);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KeyError: 'last_hidden_state'"),
        "{what}"
    );
}

#[test]
fn minilm_export_reads_as_optimum_and_sentence_transformers_read_it() {
    let dir = common::fixture("text");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("minilm-text-visible.json")).unwrap()).unwrap();
    let golden = bertc::runtime::read_safetensors(&dir.join("minilm-text-visible.safetensors")).unwrap();
    let HostData::F32(expected) = &golden["sentence_embedding"].data else {
        panic!("sentence_embedding is f32")
    };
    let expected: Vec<f64> = expected.iter().map(|&x| x as f64).collect();
    check(
        &minilm_dir(),
        &strings(&meta["sentences"]),
        &expected,
        "minilm (mean, Normalize)",
        (&[], "model.onnx"),
    );
}

#[test]
fn cls_pooling_export_reads_as_the_loaders_read_it() {
    let folder = common::fixture("pipelines").join("st-cls");
    let golden: Value =
        serde_json::from_slice(&std::fs::read(folder.join("pipeline-golden.json")).unwrap()).unwrap();
    let expected: Vec<f64> = golden["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    check(
        &folder,
        &strings(&golden["texts"]),
        &expected,
        "st-cls (CLS)",
        (&[], "model.onnx"),
    );
    // As the hub's ONNX repositories hold it (and transformers.js reads it).
    check(
        &folder,
        &strings(&golden["texts"]),
        &expected,
        "st-cls (CLS), onnx/ layout",
        (&["--layout", "onnx-subfolder"], "onnx/model.onnx"),
    );
}
