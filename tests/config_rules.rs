//! The rules `BertConfig::from_json_str` enforces: one test per rule, each
//! checking that the error names the field, the offending value and the
//! rule; plus transformers' defaults and the accepted spellings.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bertc::config::{Activation, BertConfig, ConfigError, PositionEmbeddingType};

fn parse(text: &str) -> Result<BertConfig, ConfigError> {
    BertConfig::from_json_str(text, "test-config")
}

fn parse_ok(text: &str) -> BertConfig {
    parse(text).unwrap_or_else(|e| panic!("{text} should parse, got: {e}"))
}

/// Asserts `text` is refused as `Invalid` for `field`, with exactly `value`
/// reported and a rule containing `rule`; the message names all three.
fn assert_invalid(text: &str, field: &str, value: &str, rule: &str) {
    let err = match parse(text) {
        Ok(c) => panic!("{text} should be refused for `{field}`, parsed as {c:?}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    match &err {
        ConfigError::Invalid {
            field: f,
            value: v,
            rule: r,
        } => {
            assert_eq!(*f, field, "wrong field for {text}: {shown}");
            assert_eq!(v, value, "wrong value for {text}: {shown}");
            assert!(
                r.contains(rule),
                "rule for {text} should mention {rule:?}: {shown}"
            );
        }
        other => panic!("{text}: expected Invalid for `{field}`, got {other:?}"),
    }
    assert!(
        shown.contains(&format!("`{field}`")),
        "message should name {field}: {shown}"
    );
    assert!(
        shown.contains(value),
        "message should show the value {value}: {shown}"
    );
    assert!(
        shown.contains(rule),
        "message should state the rule {rule:?}: {shown}"
    );
}

/// Asserts `text` is refused as `Unsupported` for `field` = `value`.
fn assert_unsupported(text: &str, field: &str, value: &str) {
    let err = parse(text).expect_err(text);
    let shown = err.to_string();
    match &err {
        ConfigError::Unsupported {
            field: f,
            value: v,
            what,
        } => {
            assert_eq!(*f, field, "{shown}");
            assert_eq!(v, value, "{shown}");
            assert!(!what.is_empty());
            assert!(shown.contains(what), "{shown}");
        }
        other => panic!("{text}: expected Unsupported for `{field}`, got {other:?}"),
    }
    assert!(shown.contains(&format!("`{field}`")), "{shown}");
    assert!(shown.contains("not supported"), "{shown}");
}

/// A size field must be an integer > 0: zero, negative, fractional and
/// string values are all refused, each reported as written.
fn assert_positive_integer_rule(field: &str) {
    for (json, shown) in [("0", "0"), ("-3", "-3"), ("2.5", "2.5"), ("\"12\"", "\"12\"")] {
        assert_invalid(
            &format!("{{\"{field}\": {json}}}"),
            field,
            shown,
            "must be an integer > 0",
        );
    }
}

#[test]
fn vocab_size_must_be_a_positive_integer() {
    assert_positive_integer_rule("vocab_size");
}

#[test]
fn hidden_size_must_be_a_positive_integer() {
    assert_positive_integer_rule("hidden_size");
}

#[test]
fn num_hidden_layers_must_be_a_positive_integer() {
    assert_positive_integer_rule("num_hidden_layers");
}

#[test]
fn num_attention_heads_must_be_a_positive_integer() {
    assert_positive_integer_rule("num_attention_heads");
}

#[test]
fn intermediate_size_must_be_a_positive_integer() {
    assert_positive_integer_rule("intermediate_size");
}

#[test]
fn max_position_embeddings_must_be_a_positive_integer() {
    assert_positive_integer_rule("max_position_embeddings");
}

#[test]
fn type_vocab_size_must_be_a_positive_integer() {
    assert_positive_integer_rule("type_vocab_size");
}

#[test]
fn hidden_size_must_be_divisible_by_num_attention_heads() {
    assert_invalid(
        r#"{"hidden_size": 100, "num_attention_heads": 12}"#,
        "hidden_size",
        "100",
        "must be divisible by num_attention_heads (12)",
    );
    // The default hidden size (768) against an explicit head count.
    assert_invalid(
        r#"{"num_attention_heads": 10}"#,
        "hidden_size",
        "768",
        "divisible by num_attention_heads (10)",
    );
    let c = parse_ok(r#"{"hidden_size": 96, "num_attention_heads": 12}"#);
    assert_eq!(c.head_size(), 8);
}

#[test]
fn hidden_act_must_be_supported() {
    assert_invalid(
        r#"{"hidden_act": "gelu_foo"}"#,
        "hidden_act",
        "gelu_foo",
        "must be one of",
    );
    let shown = parse(r#"{"hidden_act": "gelu_foo"}"#).unwrap_err().to_string();
    for name in ["gelu", "gelu_new", "relu", "silu", "tanh"] {
        assert!(
            shown.contains(name),
            "the supported set should list {name}: {shown}"
        );
    }
    assert_invalid(r#"{"hidden_act": 3}"#, "hidden_act", "3", "must be a string");
}

#[test]
fn model_type_must_be_a_known_family_when_present() {
    assert_invalid(
        r#"{"model_type": "gpt2"}"#,
        "model_type",
        "gpt2",
        "must be one of \"bert\", \"roberta\", \"xlm-roberta\", \"camembert\", \"distilbert\", \"electra\", \"albert\", \"mpnet\"",
    );
    assert_eq!(parse_ok(r#"{"model_type": "bert"}"#).model_type, "bert");
    assert_eq!(parse_ok("{}").model_type, "bert");
    assert_eq!(parse_ok(r#"{"model_type": "roberta"}"#).model_type, "roberta");
}

#[test]
fn distilbert_names_become_berts() {
    let c = parse_ok(
        r#"{"model_type": "distilbert", "dim": 64, "n_layers": 3, "n_heads": 4, "hidden_dim": 96, "activation": "relu"}"#,
    );
    assert_eq!(
        (
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.intermediate_size
        ),
        (64, 3, 4, 96)
    );
    assert_eq!(c.hidden_act, bertc::config::Activation::Relu);
    // transformers' DistilBertConfig defaults where the file is silent.
    let d = parse_ok(r#"{"model_type": "distilbert"}"#);
    assert_eq!(
        (d.hidden_size, d.num_hidden_layers, d.vocab_size),
        (768, 6, 30522)
    );
}

#[test]
fn distilbert_errors_name_its_own_fields() {
    assert_invalid(
        r#"{"model_type": "distilbert", "dim": 0}"#,
        "dim",
        "0",
        "must be an integer > 0",
    );
    assert_invalid(
        r#"{"model_type": "distilbert", "dim": 30, "n_heads": 4}"#,
        "dim",
        "30",
        "must be divisible by num_attention_heads (4)",
    );
}

#[test]
fn family_fields_are_checked() {
    assert_invalid(
        r#"{"model_type": "albert", "num_hidden_layers": 12, "num_hidden_groups": 5, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 64, "embedding_size": 16}"#,
        "num_hidden_groups",
        "5",
        "must be > 0 and divide num_hidden_layers (12)",
    );
    assert_invalid(
        r#"{"model_type": "electra", "hidden_size": 64, "num_attention_heads": 4, "embedding_size": 128}"#,
        "embedding_size",
        "128",
        "must be at most hidden_size (64)",
    );
    assert_invalid(
        r#"{"model_type": "mpnet", "relative_attention_num_buckets": 8}"#,
        "relative_attention_num_buckets",
        "8",
        "must be in 32..=65536",
    );
    // DeBERTa's relative distances: the graph holds a lookup entry per
    // distance (10^15 of them aborted the process before this rule).
    let rule = "must stay within 65536";
    assert_invalid(
        r#"{"model_type": "deberta-v2", "relative_attention": true, "position_buckets": 256, "max_relative_positions": 1000000000000000}"#,
        "max_relative_positions",
        "1000000000000000",
        rule,
    );
    assert_invalid(
        r#"{"model_type": "deberta-v2", "relative_attention": true, "position_buckets": 70000, "max_relative_positions": 200000}"#,
        "position_buckets",
        "70000",
        rule,
    );
    assert_invalid(
        r#"{"model_type": "deberta", "relative_attention": true, "max_position_embeddings": 65537}"#,
        "max_position_embeddings",
        "65537",
        rule,
    );
    parse_ok(
        r#"{"model_type": "deberta-v2", "relative_attention": true, "position_buckets": 256, "max_relative_positions": 65536}"#,
    );
    // Unread without relative attention.
    parse_ok(r#"{"model_type": "deberta", "max_relative_positions": 1000000}"#);
    assert_invalid(
        r#"{"model_type": "roberta", "pad_token_id": 1, "max_position_embeddings": 2}"#,
        "max_position_embeddings",
        "2",
        "must exceed pad_token_id + 1 = 2",
    );
}

#[test]
fn a_decoder_is_unsupported() {
    assert_unsupported(r#"{"is_decoder": true}"#, "is_decoder", "true");
    parse_ok(r#"{"is_decoder": false}"#);
}

#[test]
fn cross_attention_is_unsupported() {
    assert_unsupported(r#"{"add_cross_attention": true}"#, "add_cross_attention", "true");
    parse_ok(r#"{"add_cross_attention": false}"#);
}

#[test]
fn position_embedding_type_must_be_known() {
    assert_invalid(
        r#"{"position_embedding_type": "rotary"}"#,
        "position_embedding_type",
        "rotary",
        "must be one of absolute, relative_key, relative_key_query",
    );
    let c = parse_ok(r#"{"position_embedding_type": "relative_key_query"}"#);
    assert_eq!(c.position_embedding_type, PositionEmbeddingType::RelativeKeyQuery);
}

#[test]
fn layer_norm_eps_must_be_positive() {
    assert_invalid(
        r#"{"layer_norm_eps": 0}"#,
        "layer_norm_eps",
        "0",
        "must be a finite number > 0",
    );
    assert_invalid(
        r#"{"layer_norm_eps": -1e-5}"#,
        "layer_norm_eps",
        "-0.00001",
        "must be a finite number > 0",
    );
    assert_invalid(
        r#"{"layer_norm_eps": "1e-12"}"#,
        "layer_norm_eps",
        "\"1e-12\"",
        "must be a number",
    );
    assert_eq!(parse_ok(r#"{"layer_norm_eps": 1e-5}"#).layer_norm_eps, 1e-5);
}

#[test]
fn dropout_probabilities_must_be_in_unit_interval() {
    assert_invalid(
        r#"{"hidden_dropout_prob": 1.5}"#,
        "hidden_dropout_prob",
        "1.5",
        "must be in [0, 1]",
    );
    assert_invalid(
        r#"{"hidden_dropout_prob": -0.1}"#,
        "hidden_dropout_prob",
        "-0.1",
        "must be in [0, 1]",
    );
    assert_invalid(
        r#"{"attention_probs_dropout_prob": 2}"#,
        "attention_probs_dropout_prob",
        "2",
        "must be in [0, 1]",
    );
    assert_invalid(
        r#"{"classifier_dropout": 1.01}"#,
        "classifier_dropout",
        "1.01",
        "must be in [0, 1]",
    );
    // Both ends of the interval are allowed, and a null classifier dropout.
    let c = parse_ok(
        r#"{"hidden_dropout_prob": 0, "attention_probs_dropout_prob": 1, "classifier_dropout": null}"#,
    );
    assert_eq!(
        (c.hidden_dropout_prob, c.attention_probs_dropout_prob),
        (0.0, 1.0)
    );
    assert_eq!(c.classifier_dropout, None);
}

#[test]
fn pad_token_id_must_be_inside_the_vocabulary() {
    assert_invalid(
        r#"{"vocab_size": 300, "pad_token_id": 300}"#,
        "pad_token_id",
        "300",
        "must be in [0, vocab_size = 300)",
    );
    assert_invalid(
        r#"{"pad_token_id": -1}"#,
        "pad_token_id",
        "-1",
        "must be in [0, vocab_size = 30522)",
    );
    assert_eq!(
        parse_ok(r#"{"vocab_size": 300, "pad_token_id": 299}"#).pad_token_id,
        Some(299)
    );
    assert_eq!(parse_ok(r#"{"pad_token_id": null}"#).pad_token_id, None);
}

#[test]
fn id2label_keys_must_be_integers() {
    assert_invalid(
        r#"{"id2label": {"0": "neg", "pos": "pos"}}"#,
        "id2label",
        "pos",
        "keys must be non-negative integers",
    );
    assert_invalid(
        r#"{"id2label": {"-1": "neg"}}"#,
        "id2label",
        "-1",
        "keys must be non-negative integers",
    );
}

#[test]
fn malformed_json_is_a_json_error_naming_the_origin() {
    for text in ["{", r#"{"hidden_size": 768,}"#, "not json", r#"["hidden_size"]"#] {
        let err = BertConfig::from_json_str(text, "my/config.json").expect_err(text);
        match &err {
            ConfigError::Json { origin, .. } => assert_eq!(origin, "my/config.json"),
            other => panic!("{text}: expected a Json error, got {other:?}"),
        }
        let shown = err.to_string();
        assert!(shown.contains("my/config.json"), "{shown}");
        assert!(shown.contains("not a valid BERT config.json"), "{shown}");
    }
}

#[test]
fn empty_object_gives_transformers_defaults() {
    let c = parse_ok("{}");
    assert_eq!(c.vocab_size, 30522);
    assert_eq!(c.hidden_size, 768);
    assert_eq!(c.num_hidden_layers, 12);
    assert_eq!(c.num_attention_heads, 12);
    assert_eq!(c.intermediate_size, 3072);
    assert_eq!(c.hidden_act, Activation::Gelu);
    assert_eq!(c.max_position_embeddings, 512);
    assert_eq!(c.type_vocab_size, 2);
    assert_eq!(c.layer_norm_eps, 1e-12);
    assert_eq!(c.initializer_range, 0.02);
    assert_eq!(c.pad_token_id, Some(0));
    assert_eq!(c.position_embedding_type, PositionEmbeddingType::Absolute);
    assert_eq!(
        (c.hidden_dropout_prob, c.attention_probs_dropout_prob),
        (0.1, 0.1)
    );
    assert_eq!(c.classifier_dropout, None);
    assert_eq!(c.num_labels, 2);
    let id2label: BTreeMap<usize, String> = [(0, "LABEL_0".to_string()), (1, "LABEL_1".to_string())].into();
    assert_eq!(c.id2label, id2label);
    let label2id: BTreeMap<String, usize> = [("LABEL_0".to_string(), 0), ("LABEL_1".to_string(), 1)].into();
    assert_eq!(c.label2id, label2id);
    assert!(c.tie_word_embeddings);
    assert_eq!(c.head_size(), 64);
}

#[test]
fn unknown_fields_are_ignored() {
    let c = parse_ok(
        r#"{"transformers_version": "4.40.0", "use_cache": true, "gradient_checkpointing": false,
            "some_task_params": {"nested": [1, 2, {"x": null}]}, "bos_token_id": null}"#,
    );
    assert_eq!(c, parse_ok("{}"));
}

#[test]
fn swish_is_accepted_as_silu() {
    let swish = parse_ok(r#"{"hidden_act": "swish"}"#);
    assert_eq!(swish.hidden_act, Activation::Silu);
    assert_eq!(swish, parse_ok(r#"{"hidden_act": "silu"}"#));
}

#[test]
fn id2label_sets_num_labels() {
    let c = parse_ok(
        r#"{"id2label": {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-ORG", "4": "I-ORG",
            "5": "B-LOC", "6": "I-LOC"}}"#,
    );
    assert_eq!(c.num_labels, 7);
    assert_eq!(c.id2label.len(), 7);
    assert_eq!(c.id2label[&5], "B-LOC");
    assert_eq!(c.label2id["I-LOC"], 6);
    assert_eq!(c.label2id.len(), 7);
}

#[test]
fn every_preset_parses() {
    assert!(!bertc::presets::PRESETS.is_empty());
    for (name, text) in bertc::presets::PRESETS {
        let c = BertConfig::from_json_str(text, name).unwrap_or_else(|e| panic!("preset {name}: {e}"));
        assert_eq!(c.hidden_size % c.num_attention_heads, 0, "preset {name}");
    }
    let base = parse_ok(bertc::presets::preset("bert-base-uncased").expect("bert-base-uncased is a preset"));
    assert_eq!(
        (base.hidden_size, base.num_hidden_layers, base.vocab_size),
        (768, 12, 30522)
    );
}

#[test]
fn cli_compile_refuses_an_invalid_config_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"hidden_size": 100, "num_attention_heads": 12}"#).unwrap();
    let output = dir.path().join("model.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .arg("compile")
        .arg(&config)
        .arg("-o")
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "compile should fail; stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one-line error expected: {stderr}"
    );
    assert!(stderr.contains("`hidden_size`"), "{stderr}");
    assert!(stderr.contains("100"), "{stderr}");
    assert!(
        stderr.contains("divisible by num_attention_heads (12)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!output.exists(), "no output file may be written");
    assert_only(dir.path(), &["config.json"]);
}

/// Asserts the folder holds exactly these file names (no leftovers).
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, names, "unexpected files in {}", dir.display());
}

/// The refusal of an oversized config names the field that makes it so
/// (issue 25: type_vocab_size and intermediate_size were blamed on
/// num_hidden_layers, a pad_token_id of 1e6 on max_position_embeddings).
#[test]
fn an_oversized_config_is_blamed_on_the_field_that_scales_it() {
    let blamed = |text: &str| match parse(text) {
        Err(ConfigError::TooBig { field, .. }) => field,
        other => panic!("{text}: expected TooBig, got {other:?}"),
    };
    for (fields, blame) in [
        (
            r#""hidden_size": 1024, "type_vocab_size": 16700000"#,
            "type_vocab_size",
        ),
        (
            r#""hidden_size": 1024, "intermediate_size": 8380000, "num_hidden_layers": 1"#,
            "intermediate_size",
        ),
        (
            r#""hidden_size": 1024, "intermediate_size": 8000000, "num_hidden_layers": 2"#,
            "intermediate_size",
        ),
        (r#""hidden_size": 1024, "vocab_size": 16700000"#, "vocab_size"),
        (
            r#""hidden_size": 1536, "intermediate_size": 6144, "num_hidden_layers": 1024"#,
            "num_hidden_layers",
        ),
    ] {
        let text = format!(r#"{{"num_attention_heads": 16, {fields}}}"#);
        assert_eq!(blamed(&text), blame, "{text}");
    }
    assert_invalid(
        r#"{"model_type": "roberta", "vocab_size": 50265, "pad_token_id": 1000000, "max_position_embeddings": 514}"#,
        "pad_token_id",
        "1000000",
        "must be in [0, vocab_size = 50265)",
    );
}
