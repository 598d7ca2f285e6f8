//! `bertc run` on the modern encoders against transformers 5.23's pipelines.
//!
//! tests/fixtures/pipelines2 holds the shared golden set's hub-style task
//! folders (its README): each is run from the folder alone and must give
//! the pipeline's labels, entity words (U+FFFD where a group holds part of
//! a multi-byte character), character offsets and order exactly, every
//! score within 1e-5; the tokenizer must give the ids the pipeline fed.

mod common;

use std::path::{Path, PathBuf};

use bertc::tokenize::{TextInput, TextTokenizer, Truncate};
use common::{assert_json_close, bertc_run, stderr_of};
use serde_json::Value;

/// The README of the goldens: scores within 1e-5.
const ATOL: f64 = 1e-5;

fn folder(name: &str) -> PathBuf {
    common::fixture("pipelines2").join(name)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn golden(name: &str) -> Value {
    read_json(&folder(name).join("pipelines.json"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// `bertc run MODEL ARGS… --json --threads 1`, parsed.
fn run_json(model: &Path, args: &[String]) -> Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &model];
    for a in args {
        all.push(a);
    }
    all.extend([&"--json" as &dyn AsRef<std::ffi::OsStr>, &"--threads", &"1"]);
    let out = bertc_run(&all);
    assert!(
        out.status.success(),
        "bertc run {} failed: {}",
        model.display(),
        stderr_of(&out)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

/// The folder's tokenizer at the pipelines' length limit (the golden's
/// `model_max_length`, which the folder's tokenizer_config.json must hold).
fn folder_tokenizer(dir: &Path, g: &Value) -> TextTokenizer {
    let limit = g["model_max_length"].as_u64().unwrap() as usize;
    let config = bertc::tokenize::TokenizerConfig::from_folder(dir).unwrap();
    assert_eq!(config.model_max_length, Some(limit), "{}", dir.display());
    TextTokenizer::from_folder(dir, limit).unwrap()
}

#[test]
fn modernbert_token_classification_matches_the_pipeline_from_the_folder_alone() {
    let g = golden("modernbert-tok-cls");
    let doc = run_json(&folder("modernbert-tok-cls"), &strings(&g["texts"]));
    assert_eq!(doc["task"], "token-classification");
    let d = assert_json_close(&doc["outputs"], &g["outputs"], ATOL, "modernbert-tok-cls");
    eprintln!("modernbert-tok-cls: max |score diff| {d:e}");
    // The goldens hold split multi-byte characters: the check covers them.
    let words: Vec<&str> = g["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o.as_array().unwrap().iter().map(|e| e["word"].as_str().unwrap()))
        .collect();
    assert!(words.contains(&"\u{FFFD}"), "{words:?}");
}

/// Byte-level BPE with NFC, cut at model_max_length 64: the pipeline's ids
/// and character offsets.
#[test]
fn modernbert_tokenizer_gives_the_pipelines_ids_and_offsets() {
    let g = golden("modernbert-tok-cls");
    let mut tokenizer = folder_tokenizer(&folder("modernbert-tok-cls"), &g);
    let texts = strings(&g["texts"]);
    let inputs: Vec<TextInput> = texts.iter().map(|t| TextInput::Single(t)).collect();
    let encodings = tokenizer
        .encode_unpadded(&inputs, Truncate::LongestFirst)
        .unwrap();
    let mut truncated = 0;
    for (i, e) in encodings.iter().enumerate() {
        assert_eq!(e.get_ids(), ids(&g["input_ids"][i]), "text {i}: {:?}", texts[i]);
        let offsets: Vec<(usize, usize)> = g["offsets"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize))
            .collect();
        assert_eq!(e.get_offsets(), offsets, "text {i}: offsets");
        truncated += usize::from(e.len() == 64);
    }
    assert!(truncated >= 1, "a golden text reaches the limit");
}
