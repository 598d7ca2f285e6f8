//! Task heads and BERT's other configurations: every golden case through
//! the `bertc` command line (compile + validate) at -O0 and -O2, fusion
//! counts per head and per position-embedding type, label metadata, head
//! selection, and the first-token pruning pass.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use bertc::builder::Head;
use bertc::config::BertConfig;
use bertc::ir::Graph;
use bertc::passes::{level_passes, pipeline, Level, PassManager, Target};
use bertc::pipeline::check::check_equivalence;
use bertc::pipeline::{build, BuildOptions};
use bertc::runtime::inputs_for;
use common::*;

/// The ten seeded checkpoints of tests/fixtures (copied from the shared
/// golden set's cases/) and the outputs each golden file holds.
const CASES: [(&str, &[&str]); 10] = [
    ("tiny-base", &["last_hidden_state", "pooler_output"]),
    ("tiny-cls", &["logits"]),
    ("tiny-tok", &["logits"]),
    ("tiny-qa", &["end_logits", "start_logits"]),
    ("tiny-mlm", &["logits"]),
    ("tiny-gelu-new", &["last_hidden_state", "pooler_output"]),
    ("tiny-relu-3l", &["last_hidden_state", "pooler_output"]),
    ("tiny-silu-h8", &["last_hidden_state", "pooler_output"]),
    ("tiny-relative-key", &["last_hidden_state", "pooler_output"]),
    ("tiny-relative-key-query", &["last_hidden_state", "pooler_output"]),
];

fn bertc(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(args)
        .output()
        .expect("bertc runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_golden_case_matches_pytorch_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    for (case, outputs) in CASES {
        let d = fixture(case);
        let p = |f: &str| d.join(f).to_str().unwrap().to_string();
        for level in ["-O0", "-O2"] {
            let model = dir.path().join(format!("{case}{level}.onnx"));
            let model = model.to_str().unwrap();
            let (ok, text) = bertc(&[
                "compile",
                &p("config.json"),
                "--weights",
                &p("model.safetensors"),
                level,
                "-o",
                model,
            ]);
            assert!(ok, "{case} {level}: compile failed:\n{text}");
            let (ok, text) = bertc(&[
                "validate",
                model,
                "--golden",
                &p("golden.safetensors"),
                "--atol",
                "1e-4",
            ]);
            assert!(ok, "{case} {level}: validate failed:\n{text}");
            for name in outputs.iter() {
                let line = text.lines().find(|l| l.starts_with(name));
                assert!(
                    line.is_some_and(|l| l.trim_end().ends_with("ok")),
                    "{case} {level}: no `ok` line for {name}:\n{text}"
                );
            }
            assert!(
                !text.contains("does not produce"),
                "{case} {level}: the model lacks an output PyTorch has:\n{text}"
            );
        }
    }
}

/// The head cases in onnxruntime too (after the checker), at -O2.
#[test]
fn head_cases_run_in_onnxruntime() {
    for case in [
        "tiny-cls",
        "tiny-tok",
        "tiny-qa",
        "tiny-mlm",
        "tiny-relative-key-query",
    ] {
        let d = fixture(case);
        let model = compile_checkpoint_at(&d.join("config.json"), &d.join("model.safetensors"), Level::O2);
        let golden = golden(&d);
        let ort = run_onnxruntime(&model, &golden);
        let worst = assert_close(&format!("{case} onnxruntime vs PyTorch"), &ort, &golden, 1e-4);
        eprintln!("{case}: onnxruntime vs PyTorch max-abs {worst:e}");
    }
}

fn case_config(case: &str) -> BertConfig {
    BertConfig::from_path(&fixture(case).join("config.json")).unwrap()
}

fn compiled_graph(case: &str, head: Option<Head>, level: Level) -> Graph {
    compiled_with(case, head, level_passes(level))
}

fn compiled_with(case: &str, head: Option<Head>, passes: Vec<&str>) -> Graph {
    let d = fixture(case);
    let opts = BuildOptions {
        weights: Some(d.join("model.safetensors")),
        head,
        ..Default::default()
    };
    let mut g = build(&case_config(case), &opts).unwrap().graph;
    PassManager::from_names(passes)
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    g
}

fn histogram(g: &Graph) -> BTreeMap<&'static str, usize> {
    g.op_histogram()
}

fn count(g: &Graph, op: &str) -> usize {
    histogram(g).get(op).copied().unwrap_or(0)
}

fn outputs(g: &Graph) -> Vec<&str> {
    g.outputs().iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn fusion_counts_per_head_and_position_type() {
    // (case, layer norms, gelus): 2 layers each; +1 layer norm and +1 GELU
    // in the masked-LM transform.
    for (case, layer_norms, gelus) in [
        ("tiny-cls", 5, 2),
        ("tiny-tok", 5, 2),
        ("tiny-qa", 5, 2),
        ("tiny-mlm", 6, 3),
        ("tiny-relative-key", 5, 2),
        ("tiny-relative-key-query", 5, 2),
    ] {
        let g = compiled_graph(case, None, Level::O2);
        assert_eq!(
            count(&g, "LayerNormalization"),
            layer_norms,
            "{case}: {:?}",
            histogram(&g)
        );
        assert_eq!(count(&g, "Gelu"), gelus, "{case}: {:?}", histogram(&g));
        assert_eq!(count(&g, "Attention"), 2, "{case}: {:?}", histogram(&g));
        for gone in ["Softmax", "Erf", "ReduceMean", "Sqrt"] {
            assert_eq!(count(&g, gone), 0, "{case}: {gone} left: {:?}", histogram(&g));
        }
    }
    let g = sentence_embedding_graph(Level::O2);
    assert_eq!(count(&g, "LayerNormalization"), 5);
    assert_eq!(count(&g, "Gelu"), 2);
    assert_eq!(count(&g, "Attention"), 2);
}

fn sentence_embedding_graph(level: Level) -> Graph {
    compiled_graph("tiny-base", Some(Head::SentenceEmbedding), level)
}

#[test]
fn heads_default_from_architectures_and_name_outputs_as_optimum() {
    let cases = [
        ("tiny-base", vec!["last_hidden_state", "pooler_output"]),
        ("tiny-cls", vec!["logits"]),
        ("tiny-tok", vec!["logits"]),
        ("tiny-qa", vec!["start_logits", "end_logits"]),
        ("tiny-mlm", vec!["logits"]),
    ];
    for (case, expected) in cases {
        let g = compiled_graph(case, None, Level::O0);
        assert_eq!(outputs(&g), expected, "{case}");
    }
    // As Optimum's feature extraction beside sentence-transformers' vector.
    let g = sentence_embedding_graph(Level::O0);
    assert_eq!(outputs(&g), ["last_hidden_state", "sentence_embedding"]);
}

#[test]
fn labels_go_into_the_onnx_metadata() {
    for (case, labels) in [("tiny-cls", 3), ("tiny-tok", 7)] {
        let g = compiled_graph(case, None, Level::O2);
        assert_eq!(g.metadata["num_labels"], labels.to_string(), "{case}");
        let id2label: serde_json::Value = serde_json::from_str(&g.metadata["id2label"]).unwrap();
        assert_eq!(id2label.as_object().unwrap().len(), labels, "{case}");
        assert_eq!(id2label["1"], "LABEL_1", "{case}");
        // And survive the ONNX file.
        let bytes = bertc::onnx::export_bytes(&g, Default::default()).unwrap();
        let back = bertc::onnx::import_bytes(&bytes).unwrap();
        assert_eq!(back.metadata["id2label"], g.metadata["id2label"], "{case}");
        let head = if case == "tiny-cls" {
            "sequence-classification"
        } else {
            "token-classification"
        };
        assert_eq!(back.metadata["bertc.head"], head);
    }
    let g = compiled_graph("tiny-qa", None, Level::O0);
    assert!(!g.metadata.contains_key("num_labels"));
}

#[test]
fn another_heads_checkpoint_compiles_as_the_base_model() {
    // A fine-tuned classifier's checkpoint as the base model: the
    // classifier is left unread (and reported), the pooler kept.
    let d = fixture("tiny-cls");
    let opts = BuildOptions {
        weights: Some(d.join("model.safetensors")),
        head: Some(Head::Base),
        ..Default::default()
    };
    let built = build(&case_config("tiny-cls"), &opts).unwrap();
    assert_eq!(outputs(&built.graph), ["last_hidden_state", "pooler_output"]);
    assert_eq!(built.ignored, ["classifier.bias", "classifier.weight"]);
    // Token classification has no pooler: as the base model, no pooler_output.
    let opts = BuildOptions {
        weights: Some(fixture("tiny-tok").join("model.safetensors")),
        head: Some(Head::Base),
        ..Default::default()
    };
    let built = build(&case_config("tiny-tok"), &opts).unwrap();
    assert_eq!(outputs(&built.graph), ["last_hidden_state"]);
}

#[test]
fn a_missing_head_weight_is_named() {
    // QA weights compiled as a classifier: the classifier is missing.
    let d = fixture("tiny-qa");
    let opts = BuildOptions {
        weights: Some(d.join("model.safetensors")),
        head: Some(Head::TokenClassification),
        ..Default::default()
    };
    let err = build(&case_config("tiny-qa"), &opts)
        .err()
        .expect("fails")
        .to_string();
    assert!(err.contains("missing tensor `classifier.weight`"), "{err}");
    // Untied masked-LM weights must bring their decoder.
    let mut c = case_config("tiny-mlm");
    c.tie_word_embeddings = false;
    let opts = BuildOptions {
        weights: Some(fixture("tiny-mlm").join("model.safetensors")),
        ..Default::default()
    };
    let err = build(&c, &opts).err().expect("fails").to_string();
    assert!(
        err.contains("missing tensor `cls.predictions.decoder.weight`"),
        "{err}"
    );
}

#[test]
fn an_unknown_architecture_asks_for_a_head() {
    let mut c = case_config("tiny-base");
    c.architectures = vec!["BertForPreTraining".into()];
    let err = build(&c, &BuildOptions::default())
        .err()
        .expect("fails")
        .to_string();
    assert!(err.contains("architectures") && err.contains("--head"), "{err}");
    let opts = BuildOptions {
        head: Some(Head::MaskedLm),
        ..Default::default()
    };
    assert_eq!(outputs(&build(&c, &opts).unwrap().graph), ["logits"]);
}

#[test]
fn tied_decoder_stores_the_word_embeddings_once() {
    let g = compiled_graph("tiny-mlm", None, Level::O2);
    let c = case_config("tiny-mlm");
    // Encoder without pooler + transform (dense, layer norm) + output bias.
    let h = c.hidden_size;
    let encoder_and_embeddings = bertc::builder::bert_model_params(&c)
        .iter()
        .filter(|s| !s.name.starts_with("pooler."))
        .map(|s| s.shape.iter().product::<usize>())
        .sum::<usize>();
    // The word table counts once although the decoder reads it too.
    assert_eq!(
        g.parameter_count(),
        encoder_and_embeddings + h * h + h + 2 * h + c.vocab_size
    );
}

#[test]
fn sentence_embedding_head_matches_minilm_golden() {
    let weights = minilm_dir();
    let golden_file = fixture("minilm-l6").join("minilm-l6-golden.safetensors");
    let golden = bertc::runtime::read_safetensors(&golden_file).unwrap();
    let config = BertConfig::from_path(&weights.join("config.json")).unwrap();
    for level in [Level::O0, Level::O2] {
        let opts = BuildOptions {
            weights: Some(weights.join("model.safetensors")),
            head: Some(Head::SentenceEmbedding),
            keep_last_hidden_state: true,
            ..Default::default()
        };
        let model =
            bertc::pipeline::compile(test_session(), &config, opts, &bertc::pipeline::at_level(level))
                .unwrap();
        assert_eq!(
            outputs(model.graph()),
            ["last_hidden_state", "sentence_embedding"]
        );
        let bytes = model.to_bytes().unwrap();
        let tract = run_tract(&bytes, &golden);
        let worst = assert_close(
            &format!("MiniLM {level:?} sentence_embedding"),
            &tract,
            &golden,
            1e-4,
        );
        eprintln!("MiniLM {level:?} sentence-embedding head: max-abs {worst:e}");
        let ort = run_onnxruntime(&bytes, &golden);
        assert_close(&format!("MiniLM {level:?} onnxruntime"), &ort, &golden, 1e-4);
    }
}

/// The pruning pass alone and at -O2 against the unpruned graph, on padded
/// batches (full, right- and left-padded rows), in tract.
#[test]
fn first_token_pruning_is_equivalent_and_shrinks_the_last_layer() {
    for (case, level) in [
        ("tiny-cls", Level::O0),
        ("tiny-cls", Level::O1),
        ("tiny-cls", Level::O2),
        ("tiny-relative-key-query", Level::O2),
    ] {
        // The level's pipeline without the pass under test.
        let passes = || {
            let mut p = level_passes(level);
            p.retain(|&p| p != "prune_to_first_token");
            p
        };
        let reference = match case {
            // A relative-position classifier (seeded weights).
            "tiny-relative-key-query" => relative_classifier(passes()),
            _ => compiled_with(case, None, passes()),
        };
        let mut pruned = reference.clone();
        let report = PassManager::from_names(["prune_to_first_token", "dead_node_elimination"])
            .unwrap()
            .verify_each(true)
            .run(&mut pruned)
            .unwrap();
        assert!(
            report[0].report.matches >= 10,
            "{case} {level:?}: {:?}",
            report[0]
        );
        // The last layer's FFN now runs on one position per sequence.
        let last_ffn = pruned
            .node_ids()
            .find(|&id| {
                pruned
                    .node(id)
                    .name
                    .starts_with("encoder.layer.1.output.dense.matmul")
            })
            .expect("last FFN matmul");
        let shape = &pruned
            .info(bertc::ir::Value {
                node: last_ffn,
                slot: 0,
            })
            .shape;
        assert_eq!(
            shape.dims()[1],
            bertc::ir::Dim::Fixed(1),
            "{case} {level:?}: {shape}"
        );
        for (b, s) in [(3, 16), (1, 7)] {
            let inputs = inputs_for(&reference, b, s);
            for c in check_equivalence(test_session(), &reference, &pruned, &inputs).unwrap() {
                assert!(
                    c.max_abs <= 1e-5,
                    "{case} {level:?} {b}x{s}: {} moved by {:e}",
                    c.name,
                    c.max_abs
                );
            }
        }
    }
}

fn relative_classifier(passes: Vec<&str>) -> Graph {
    let mut c = case_config("tiny-relative-key-query");
    c.architectures = vec!["BertForSequenceClassification".into()];
    let mut g = build(&c, &BuildOptions::default()).unwrap().graph;
    PassManager::from_names(passes)
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    g
}

#[test]
fn pruning_leaves_models_that_read_every_token_alone() {
    for case in ["tiny-base", "tiny-tok", "tiny-qa", "tiny-mlm"] {
        let mut g = compiled_graph(case, None, Level::O2);
        let report = PassManager::from_names(["prune_to_first_token"])
            .unwrap()
            .run(&mut g)
            .unwrap();
        assert_eq!(report[0].report.matches, 0, "{case}");
    }
}

#[test]
fn dump_takes_the_head_too() {
    let (ok, text) = bertc(&["dump", "bert-tiny", "--head", "question-answering"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("\n  start_logits = ") && text.contains("\n  end_logits = "),
        "{text}"
    );
    let (ok, text) = bertc(&["dump", "bert-tiny", "--head", "regression"]);
    assert!(
        !ok && text.contains("valid heads: base, sequence-classification"),
        "{text}"
    );
}

/// Linear layers `Add(MatMul(x, W), b)` with a constant 2-D weight: what
/// int8 quantization turns into MatMulInteger.
fn linear_layers(g: &Graph) -> usize {
    g.node_ids()
        .filter(|&id| g.node(id).op.kind() == "MatMul")
        .filter(|&id| {
            let w = g.inputs_of(id)[1].unwrap();
            matches!(&g.node(w.node).op, bertc::ir::Op::Constant(t) if t.dims().len() == 2)
        })
        .count()
}

/// The lowest cosine between matching rows (vectors along the last axis).
fn min_row_cosine(a: &bertc::runtime::HostTensor, b: &bertc::runtime::HostTensor) -> f64 {
    assert_eq!(a.shape, b.shape);
    let width = *a.shape.last().unwrap();
    let (a, b) = (a.to_f32(), b.to_f32());
    a.chunks(width)
        .zip(b.chunks(width))
        .map(|(x, y)| bertc::quantize::cosine(x, y))
        .fold(f64::INFINITY, nan_is_worst)
}

/// Heads, relative positions and short position tables (40 rows) through
/// int8 and fp16, judged by the written file: int8 turns every linear layer
/// into MatMulInteger, fp16 stores every weight as f16, and each output of
/// the head stays within its tolerance of the f32 model in tract, row by
/// row (int8: cosine ≥ 0.99; fp16: cosine ≥ 0.9999), on inputs within the
/// model's positions; the command reports the accuracy of every output.
#[test]
fn heads_quantize_and_pass_the_accuracy_gate() {
    let dir = tempfile::tempdir().unwrap();
    for case in ["tiny-cls", "tiny-mlm", "tiny-relative-key-query"] {
        let d = fixture(case);
        let p = |f: &str| d.join(f).to_str().unwrap().to_string();
        // The pipeline `compile` runs by default (attention decomposed again
        // for the portable target), so products compare one for one.
        let fp32 = compiled_with(case, None, pipeline(Level::O2, Target::Portable));
        let linears = linear_layers(&fp32);
        let inputs = inputs_for(&fp32, 4, 16);
        let reference = run_tract(
            &bertc::onnx::export_bytes(&fp32, Default::default()).unwrap(),
            &inputs,
        );
        for (flags, min_cosine) in [
            (&["--quantize", "dynamic"][..], 0.99),
            (&["--quantize", "static"], 0.99),
            (&["--precision", "fp16"], 0.9999),
        ] {
            let what = format!("{case} {flags:?}");
            let out = dir.path().join(format!("{case}.onnx"));
            let mut args = vec![
                "compile".to_string(),
                p("config.json"),
                "--weights".into(),
                p("model.safetensors"),
                "-o".into(),
                out.to_str().unwrap().into(),
            ];
            args.extend(flags.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, text) = bertc(&args);
            assert!(ok, "{what}:\n{text}");
            let g = bertc::onnx::read_model(&out).unwrap();
            let f32_weights = g
                .node_ids()
                .filter(|&id| {
                    matches!(&g.node(id).op, bertc::ir::Op::Constant(t)
                        if t.dtype() == bertc::ir::DType::F32 && t.dims().len() == 2 && t.len() > 64)
                })
                .count();
            if flags[0] == "--quantize" {
                // The classifier's last projection (3 labels, read by no
                // other Linear) stays f32 (passes/linear_sites.rs); every
                // other linear layer is quantized.
                let kept = usize::from(case == "tiny-cls");
                assert_eq!(
                    count(&g, "MatMulInteger"),
                    linears - kept,
                    "{what}: {:?}",
                    histogram(&g)
                );
                assert_eq!(linear_layers(&g), kept, "{what}: f32 linear layers left");
            } else {
                assert_eq!(f32_weights, 0, "{what}: f32 weight matrices left");
                assert_eq!(count(&g, "MatMul"), count(&fp32, "MatMul"), "{what}");
            }
            let actual = run_tract(&std::fs::read(&out).unwrap(), &inputs);
            assert_eq!(
                actual.keys().collect::<Vec<_>>(),
                reference.keys().collect::<Vec<_>>(),
                "{what}: outputs"
            );
            for (name, expected) in &reference {
                let cos = min_row_cosine(&actual[name], expected);
                eprintln!("{what}: {name} min row cosine {cos:.6}");
                assert!(
                    cos >= min_cosine,
                    "{what}: {name} min row cosine {cos} < {min_cosine}"
                );
                assert!(
                    text.lines()
                        .any(|l| l.contains("accuracy") && l.contains(name.as_str())),
                    "{what}: no accuracy line for {name}:\n{text}"
                );
            }
        }
    }
}

/// The lower of two cosines, a NaN (a zero vector against a nonzero one)
/// the lowest of all: `f64::min` would skip it and pass a broken row.
fn nan_is_worst(worst: f64, c: f64) -> f64 {
    if c.is_nan() {
        f64::NEG_INFINITY
    } else {
        worst.min(c)
    }
}
