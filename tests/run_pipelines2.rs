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
use common::{assert_json_close, bertc_run, run_json, stderr_of, strings};
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

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
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

/// A copy of `name`'s folder without the files in `leave_out`.
fn copy_without(name: &str, leave_out: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(folder(name)).unwrap() {
        let entry = entry.unwrap();
        let file_name = entry.file_name();
        if !leave_out.iter().any(|l| file_name == *l) {
            std::fs::copy(entry.path(), dir.path().join(&file_name)).unwrap();
        }
    }
    dir
}

/// Every text alone, then every pair, as the pipeline calls them.
fn deberta_inputs(g: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let pairs = g["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (strings(&g["texts"]), pairs)
}

fn encode_all(
    tokenizer: &mut TextTokenizer,
    texts: &[String],
    pairs: &[(String, String)],
) -> Vec<tokenizers::Encoding> {
    let inputs: Vec<TextInput> = texts
        .iter()
        .map(|t| TextInput::Single(t))
        .chain(pairs.iter().map(|(a, b)| TextInput::Pair(a, b)))
        .collect();
    tokenizer
        .encode_unpadded(&inputs, Truncate::LongestFirst)
        .unwrap()
}

/// With tokenizer.json removed, spm.model read as transformers 5.23 reads
/// it gives the pipeline's ids (texts, and pairs with their token types),
/// and what the folder's tokenizer.json gives: ids, types, tokens, offsets.
#[test]
fn deberta_spm_model_alone_gives_the_pipelines_ids_and_tokenizer_json_s_encodings() {
    let g = golden("deberta-v3-seq-cls");
    let bare = copy_without("deberta-v3-seq-cls", &["tokenizer.json"]);
    let mut spm = folder_tokenizer(bare.path(), &g);
    assert!(spm.path.ends_with("spm.model"), "{}", spm.path.display());
    let (texts, pairs) = deberta_inputs(&g);
    let ours = encode_all(&mut spm, &texts, &pairs);
    for (i, e) in ours[..texts.len()].iter().enumerate() {
        assert_eq!(e.get_ids(), ids(&g["input_ids"][i]), "text {i}: {:?}", texts[i]);
    }
    for (i, e) in ours[texts.len()..].iter().enumerate() {
        assert_eq!(e.get_ids(), ids(&g["pair_input_ids"][i]), "pair {i}");
        assert_eq!(
            e.get_type_ids(),
            ids(&g["pair_token_type_ids"][i]),
            "pair {i}: types"
        );
    }
    // The golden reaches the limit and holds the text the sentencepiece
    // library itself tokenizes otherwise (its NFKC charsmap).
    assert!(ours.iter().any(|e| e.len() == 64));
    assert!(g["sentencepiece_agrees"]
        .as_array()
        .unwrap()
        .contains(&Value::Bool(false)));

    let mut json = folder_tokenizer(&folder("deberta-v3-seq-cls"), &g);
    assert!(json.path.ends_with("tokenizer.json"));
    let theirs = encode_all(&mut json, &texts, &pairs);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.get_ids(), b.get_ids(), "input {i}");
        assert_eq!(a.get_type_ids(), b.get_type_ids(), "input {i}");
        assert_eq!(a.get_tokens(), b.get_tokens(), "input {i}");
        assert_eq!(a.get_offsets(), b.get_offsets(), "input {i}");
        assert_eq!(
            a.get_special_tokens_mask(),
            b.get_special_tokens_mask(),
            "input {i}"
        );
        assert_eq!(
            spm.decode(a.get_ids(), true).unwrap(),
            json.decode(b.get_ids(), true).unwrap(),
            "input {i}: decoded"
        );
    }
    // [MASK] is no piece of the model: added after them, as special.
    for t in [&spm, &json] {
        assert_eq!(t.special.mask, Some(1000));
        assert_eq!(
            (t.special.cls, t.special.sep, t.special.pad, t.special.unk),
            (Some(1), Some(2), 0, Some(3))
        );
    }
}

/// A protobuf varint.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A length-delimited field `field` holding `body`.
fn message_field(field: u64, body: &[u8]) -> Vec<u8> {
    let mut out = varint(field << 3 | 2);
    out.extend(varint(body.len() as u64));
    out.extend(body);
    out
}

/// One more `pieces` entry (appending a repeated field to an encoded
/// message appends to the list): text, score bits, type.
fn extra_piece(text: &str, score: Option<f32>, kind: Option<u64>) -> Vec<u8> {
    let mut body = message_field(1, text.as_bytes());
    if let Some(s) = score {
        body.push(2 << 3 | 5);
        body.extend(s.to_le_bytes());
    }
    if let Some(k) = kind {
        body.extend(varint(3 << 3));
        body.extend(varint(k));
    }
    message_field(1, &body)
}

/// The error of loading the DeBERTa folder (no tokenizer.json) with its
/// spm.model replaced by `bytes` and tokenizer_config.json by `config`.
fn spm_error(bytes: &[u8], config: Option<&str>) -> String {
    let dir = copy_without("deberta-v3-seq-cls", &["tokenizer.json"]);
    std::fs::write(dir.path().join("spm.model"), bytes).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.path().join("tokenizer_config.json"), c).unwrap();
    }
    match TextTokenizer::from_folder(dir.path(), 64) {
        Ok(_) => panic!("a hostile spm.model loaded"),
        Err(e) => e.to_string(),
    }
}

/// Truncated, oversized, badly typed or inconsistent models: one error
/// naming the file and what is wrong, never a panic; the piece count is
/// checked before any piece is decoded.
#[test]
fn hostile_spm_models_are_refused_with_clear_errors() {
    let real = std::fs::read(folder("deberta-v3-seq-cls").join("spm.model")).unwrap();
    let with = |extra: &[u8]| [real.as_slice(), extra].concat();
    // (what, spm.model's bytes, tokenizer_config.json, what the error says)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "truncated",
            real[..real.len() / 2].to_vec(),
            None,
            vec!["truncated"],
        ),
        ("empty", vec![], None, vec!["no pieces"]),
        (
            "not protobuf",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
            None,
            vec!["longer than 10 bytes"],
        ),
        (
            "a million pieces and more",
            // 2 bytes each: the file is 2 MB, decoded it would be ~40 MB.
            [0x0a, 0x00].repeat(bertc::tokenize::MAX_PIECES + 1),
            None,
            vec!["1048577 pieces", "more than a SentencePiece model may have"],
        ),
        (
            "bad type",
            with(&extra_piece("zz", Some(-1.0), Some(9))),
            None,
            vec!["piece 1000", "\"zz\"", "type 9"],
        ),
        (
            "type 0",
            with(&extra_piece("zz", Some(-1.0), Some(0))),
            None,
            vec!["type 0: expected 1 to 6"],
        ),
        (
            "NaN score",
            with(&extra_piece("zz", Some(f32::NAN), None)),
            None,
            vec!["piece 1000", "score NaN"],
        ),
        (
            "duplicate",
            with(&extra_piece("s", Some(-1.0), None)),
            None,
            vec!["piece 1000 (\"s\")", "already"],
        ),
        (
            "empty piece",
            with(&extra_piece("", Some(-1.0), None)),
            None,
            vec!["piece 1000", "must have a text"],
        ),
        (
            "BPE",
            with(&message_field(2, &[3 << 3, 2])),
            None,
            vec!["trainer_spec.model_type", "= 2", "UNIGRAM"],
        ),
        (
            "no unk",
            with(&message_field(
                2,
                &[[0xc0, 0x02].as_slice(), &varint(5000)].concat(),
            )),
            Some(r#"{"unk_token": "<nope>"}"#),
            vec!["trainer_spec.unk_id", "5000"],
        ),
    ];
    for (what, bytes, config, expected) in cases {
        let err = spm_error(&bytes, config);
        assert!(err.contains("spm.model"), "{what}: {err}");
        for e in expected {
            assert!(err.contains(e), "{what}: {err:?} lacks {e:?}");
        }
    }
    // added_tokens.json that disagrees with the ids the model gives.
    let dir = copy_without("deberta-v3-seq-cls", &["tokenizer.json"]);
    std::fs::write(dir.path().join("added_tokens.json"), r#"{"[MASK]": 1005}"#).unwrap();
    let err = TextTokenizer::from_folder(dir.path(), 64)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("added_tokens.json") && err.contains("1005"), "{err}");
    // …and the hub's own, which agrees.
    std::fs::write(dir.path().join("added_tokens.json"), r#"{"[MASK]": 1000}"#).unwrap();
    let t = TextTokenizer::from_folder(dir.path(), 64).unwrap();
    assert_eq!(t.special.mask, Some(1000));
}

/// `bertc run MODEL ARGS…` expected to fail: its stderr.
fn run_error(model: &Path, args: &[&str]) -> String {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &model];
    for a in args {
        all.push(a);
    }
    let out = bertc_run(&all);
    assert!(!out.status.success(), "bertc run {args:?} succeeded");
    stderr_of(&out)
}

/// tests/fixtures/pipelines/seq-cls (a BERT classifier) in a temp folder
/// with an NLI label set and `problem_type: multi_label_classification`.
/// Why: zero-shot.json checks the answers; this checks them against the
/// model's own logits, which a golden cannot show. The multi-label
/// problem type makes text-classification print a sigmoid per label, from
/// which each pair's logits come back exactly; zero-shot reads the logits
/// and never the problem type. (Its word embeddings are pruned to the
/// golden's texts, so it is compared with its own outputs, not a golden.)
fn bert_nli_copy() -> tempfile::TempDir {
    let source = common::fixture("pipelines").join("seq-cls");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ] {
        std::fs::copy(source.join(f), dir.path().join(f)).unwrap();
    }
    let mut config = read_json(&source.join("config.json"));
    config["id2label"] = serde_json::json!({"0": "contradiction", "1": "neutral", "2": "entailment"});
    config["label2id"] = serde_json::json!({"contradiction": 0, "neutral": 1, "entailment": 2});
    config["problem_type"] = Value::from("multi_label_classification");
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

/// `args` asking text-classification for every label (the goldens are
/// the pipeline's `top_k=None`; its default is the best label alone).
fn every_label(mut args: Vec<String>) -> Vec<String> {
    args.extend(["--top-k".to_string(), "all".to_string()]);
    args
}

/// Each pair's logits by label id, from text-classification's sigmoids.
fn pair_logits(model: &Path, text: &str, hypotheses: &[String]) -> Vec<[f64; 3]> {
    let mut args = vec![];
    for _ in hypotheses {
        args.push(text.to_string());
    }
    for h in hypotheses {
        args.extend(["--pair".to_string(), h.clone()]);
    }
    let doc = run_json(model, &every_label(args));
    let ids = ["contradiction", "neutral", "entailment"];
    doc["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|labels| {
            let mut row = [f64::NAN; 3];
            for l in labels.as_array().unwrap() {
                let p = l["score"].as_f64().unwrap();
                let at = ids.iter().position(|&n| n == l["label"]).unwrap();
                row[at] = (p / (1.0 - p)).ln();
            }
            row
        })
        .collect()
}

#[test]
fn zero_shot_flags_give_the_pipelines_arithmetic_on_the_models_logits_end_to_end() {
    let dir = bert_nli_copy();
    let model = dir.path();
    let labels = ["technology", "finance", "food"];
    let texts = ["the movie was great", "stocks fell sharply"];
    for (template, multi) in [
        (None, false),
        (Some("It is about {}."), true),
        (Some("{0}!"), false),
    ] {
        let hypotheses: Vec<String> = labels
            .iter()
            .map(|l| {
                template
                    .unwrap_or("This example is {}.")
                    .replace("{}", l)
                    .replace("{0}", l)
            })
            .collect();
        let mut args: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        args.extend(["--candidate-labels".into(), " technology,finance , food,".into()]);
        if let Some(t) = template {
            args.extend(["--hypothesis-template".into(), t.into()]);
        }
        if multi {
            args.push("--multi-label".into());
        }
        let doc = run_json(model, &args);
        assert_eq!(doc["task"], "zero-shot-classification");
        for (i, text) in texts.iter().enumerate() {
            let rows = pair_logits(model, text, &hypotheses);
            let expected: Vec<f64> = if multi {
                rows.iter().map(|r| 1.0 / (1.0 + (r[0] - r[2]).exp())).collect()
            } else {
                let z: f64 = rows.iter().map(|r| r[2].exp()).sum();
                rows.iter().map(|r| r[2].exp() / z).collect()
            };
            let mut order: Vec<usize> = (0..labels.len()).collect();
            order.sort_by(|&a, &b| expected[b].total_cmp(&expected[a]));
            let answer = &doc["outputs"][i];
            assert_eq!(answer["sequence"], *text);
            let got_labels: Vec<&str> = answer["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            let want_labels: Vec<&str> = order.iter().map(|&k| labels[k]).collect();
            assert_eq!(got_labels, want_labels, "{text} {template:?} multi {multi}");
            for (k, &at) in order.iter().enumerate() {
                let got = answer["scores"][k].as_f64().unwrap();
                assert!(
                    (got - expected[at]).abs() < 1e-9,
                    "{text}: {got} vs {}",
                    expected[at]
                );
            }
        }
    }
}

#[test]
fn zero_shot_errors_name_the_value() {
    let dir = bert_nli_copy();
    let err = run_error(dir.path(), &["x", "--candidate-labels", " , "]);
    assert!(
        err.contains("--candidate-labels \" , \"") && err.contains("no label"),
        "{err}"
    );
    let err = run_error(
        dir.path(),
        &[
            "x",
            "--candidate-labels",
            "a",
            "--hypothesis-template",
            "About it.",
        ],
    );
    assert!(
        err.contains("\"About it.\"") && err.contains("no {} where the label goes"),
        "{err}"
    );
    let err = run_error(
        &common::fixture("pipelines").join("seq-cls"),
        &["x", "--candidate-labels", "a,b"],
    );
    assert!(
        err.contains("entailment label")
            && err.contains("\"negative\": 0")
            && err.contains("\"positive\": 2"),
        "{err}"
    );
    let err = run_error(
        &common::fixture("pipelines").join("token-cls"),
        &["x", "--candidate-labels", "a"],
    );
    assert!(err.contains("answers token-classification"), "{err}");
    let err = run_error(dir.path(), &["x", "--multi-label"]);
    assert!(err.contains("--candidate-labels"), "{err}");
    let err = run_error(dir.path(), &["x", "--candidate-labels", "a", "--pair", "y"]);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Seeded random damage to the real spm.model (bytes overwritten, the
/// file cut): each load gives a tokenizer or an error, never a panic.
#[test]
fn damaged_spm_models_load_or_fail_without_panicking() {
    use rand_xoshiro::rand_core::{Rng, SeedableRng};
    let real = std::fs::read(folder("deberta-v3-seq-cls").join("spm.model")).unwrap();
    let dir = copy_without("deberta-v3-seq-cls", &["tokenizer.json"]);
    let path = dir.path().join("spm.model");
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(23);
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..200 {
        let mut bytes = real.clone();
        for _ in 0..1 + rng.next_u32() % 8 {
            let at = rng.next_u64() as usize % bytes.len();
            bytes[at] = rng.next_u32() as u8;
        }
        if rng.next_u32() % 2 == 0 {
            bytes.truncate(rng.next_u64() as usize % bytes.len());
        }
        std::fs::write(&path, &bytes).unwrap();
        match TextTokenizer::from_folder(dir.path(), 64) {
            Ok(mut t) => {
                // Encoding may fail too; it must not panic.
                let _ = t.encode_unpadded(&[TextInput::Pair("Hello world.", "Zoë!")], Truncate::LongestFirst);
                loaded += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("spm.model"), "{e}");
                refused += 1;
            }
        }
    }
    eprintln!("damaged spm.model: {loaded} loaded, {refused} refused");
    assert!(refused > 0);
}

/// text-classification with `top_k=None` on DeBERTa-v3 (an NLI label set):
/// the pipeline's labels in order and scores, for texts and the pair, from
/// the folder as saved and from the folder with only spm.model.
#[test]
fn deberta_text_classification_matches_the_pipeline_for_texts_and_pairs() {
    let g = golden("deberta-v3-seq-cls");
    let bare = copy_without("deberta-v3-seq-cls", &["tokenizer.json"]);
    let (texts, pairs) = deberta_inputs(&g);
    for (what, model) in [
        ("tokenizer.json", folder("deberta-v3-seq-cls")),
        ("spm.model", bare.path().to_path_buf()),
    ] {
        let doc = run_json(&model, &every_label(texts.clone()));
        assert_eq!(doc["task"], "text-classification");
        let d = assert_json_close(&doc["outputs"], &g["outputs"], ATOL, what);
        eprintln!("deberta-v3-seq-cls ({what}): max |score diff| {d:e}");
        let mut args = vec![];
        for (a, _) in &pairs {
            args.push(a.clone());
        }
        for (_, b) in &pairs {
            args.extend(["--pair".to_string(), b.clone()]);
        }
        let doc = run_json(&model, &every_label(args));
        let d = assert_json_close(&doc["outputs"], &g["pair_outputs"], ATOL, what);
        eprintln!("deberta-v3-seq-cls pairs ({what}): max |score diff| {d:e}");
    }
}

/// zero-shot.json: 5 texts × 2 templates × multi_label false/true, labels
/// in order, scores within 1e-5.
#[test]
fn deberta_zero_shot_matches_the_pipeline() {
    let dir = folder("deberta-v3-seq-cls");
    let z = read_json(&dir.join("zero-shot.json"));
    let labels = strings(&z["candidate_labels"]).join(",");
    let cases = z["cases"].as_array().unwrap();
    let mut checked = 0;
    for template in ["This example is {}.", "The topic is {}."] {
        for multi in [false, true] {
            let mine: Vec<&Value> = cases
                .iter()
                .filter(|c| c["hypothesis_template"] == template && c["multi_label"] == multi)
                .collect();
            let mut args: Vec<String> = mine
                .iter()
                .map(|c| c["text"].as_str().unwrap().to_string())
                .collect();
            args.extend([
                "--candidate-labels".into(),
                labels.clone(),
                "--hypothesis-template".into(),
                template.into(),
            ]);
            if multi {
                args.push("--multi-label".into());
            }
            let doc = run_json(&dir, &args);
            assert_eq!(doc["task"], "zero-shot-classification");
            for (answer, case) in doc["outputs"].as_array().unwrap().iter().zip(&mine) {
                let what = format!("{:?} {template:?} multi {multi}", case["text"]);
                assert_eq!(answer["sequence"], case["text"], "{what}");
                assert_eq!(answer["labels"], case["labels"], "{what}");
                let d = assert_json_close(&answer["scores"], &case["scores"], ATOL, &what);
                eprintln!("{what}: max |score diff| {d:e}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, cases.len());
}

/// The spm.model-only folder compiled to an export folder carries its
/// spm.model (the tokenizer files run reads) and answers as the pipeline;
/// so does the bare .onnx with `--tokenizer spm.model`.
#[test]
fn deberta_export_folder_and_onnx_with_spm_model_answer_as_the_pipeline() {
    let g = golden("deberta-v3-seq-cls");
    let bare = copy_without("deberta-v3-seq-cls", &["tokenizer.json"]);
    let out_dir = tempfile::tempdir().unwrap();
    let export = out_dir.path().join("export/");
    let out = bertc_run(&[&"compile", &bare.path(), &"-o", &export]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(export.join("spm.model").is_file());
    assert!(!export.join("tokenizer.json").exists());
    let texts = strings(&g["texts"]);
    let doc = run_json(&export, &every_label(texts.clone()));
    assert_json_close(&doc["outputs"], &g["outputs"], ATOL, "export folder");
    let mut args = every_label(texts.clone());
    args.extend([
        "--tokenizer".into(),
        bare.path().join("spm.model").display().to_string(),
    ]);
    let doc = run_json(&export.join("model.onnx"), &args);
    assert_json_close(
        &doc["outputs"],
        &g["outputs"],
        ATOL,
        "model.onnx --tokenizer spm.model",
    );
}

/// A folder's tokenizer files must resolve inside it: an `spm.model` (or
/// `tokenizer_config.json`) linked out of the folder is refused by name,
/// not read — a stranger's folder could point it anywhere on the machine.
#[cfg(unix)]
#[test]
fn tokenizer_files_linked_out_of_the_folder_are_refused() {
    for (leave_out, linked) in [
        (&["tokenizer.json", "spm.model"][..], "spm.model"),
        (&["tokenizer_config.json"][..], "tokenizer_config.json"),
    ] {
        let dir = copy_without("deberta-v3-seq-cls", leave_out);
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join(linked);
        std::fs::copy(folder("deberta-v3-seq-cls").join(linked), &target).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(linked)).unwrap();
        let err = run_error(dir.path(), &["Hello there."]);
        assert!(
            err.contains(&format!("`{linked}` leaves the model folder")),
            "{linked}: {err}"
        );
    }
}
