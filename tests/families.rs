//! BERT's relatives — RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT,
//! MPNet — against PyTorch: the 18 seeded cases of tests/fixtures/family
//! at -O0 and -O2 in tract and onnxruntime (every position, the left-padded
//! row included), fusion counts, parameter counts (the cases' and the
//! presets' published ones), inputs as Optimum names them, int8 and fp16
//! gates, multiply-adds, ALBERT's shared weights stored once.

mod common;

use bertc::config::BertConfig;
use bertc::cost::{bert_macs_per_sequence, graph_cost};
use bertc::ir::Graph;
use bertc::passes::Level;
use bertc::pipeline::{at_level, build, compile, load_config, BuildOptions, PipelineOptions};
use bertc::quantize::{CalibrationMethod, Form, Precision};
use common::*;

/// Every case, with its layers and the GELUs its head adds at -O2.
/// (case, encoder layers, layer norms, gelus)
const CASES: [(&str, usize, usize, usize); 18] = [
    // 2 layers: 2 layer norms each + the embeddings'; GELU per layer.
    ("roberta-base", 2, 5, 2),
    ("roberta-cls", 2, 5, 2),
    // lm_head: dense + GELU + layer norm.
    ("roberta-mlm", 2, 6, 3),
    ("roberta-tok", 2, 5, 2),
    ("xlm-roberta-base", 2, 5, 2),
    ("xlm-roberta-qa", 2, 5, 2),
    ("distilbert-base", 2, 5, 2),
    ("distilbert-cls", 2, 5, 2),
    ("distilbert-qa", 2, 5, 2),
    // activation relu: no GELU at all; vocab_layer_norm.
    ("distilbert-sinusoidal-mlm", 2, 6, 0),
    ("electra-base", 2, 5, 2),
    // ElectraClassificationHead: dense + GELU + out_proj.
    ("electra-cls", 2, 5, 3),
    ("electra-tok", 2, 5, 2),
    ("albert-base", 2, 5, 2),
    ("albert-cls", 2, 5, 2),
    // predictions: dense + gelu_new + layer norm.
    ("albert-mlm", 2, 6, 3),
    ("mpnet-base", 2, 5, 2),
    ("mpnet-cls", 2, 5, 2),
];

const ATOL: f64 = 1e-4;

fn case_config(case: &str) -> BertConfig {
    BertConfig::from_path(&family_dir(case).join("config.json")).unwrap()
}

fn compiled(case: &str, options: &PipelineOptions) -> bertc::pipeline::Compiled {
    let dir = family_dir(case);
    let opts = BuildOptions {
        weights: Some(dir.join("model.safetensors")),
        ..Default::default()
    };
    compile(test_session(), &case_config(case), opts, options).unwrap_or_else(|e| panic!("{case}: {e}"))
}

/// The golden file's outputs (its tensors that are not model inputs).
fn golden_outputs(case: &str) -> Vec<String> {
    let inputs = ["input_ids", "attention_mask", "token_type_ids"];
    golden(&family_dir(case))
        .keys()
        .filter(|k| !inputs.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[test]
fn every_case_matches_pytorch_in_tract_and_onnxruntime_at_o0_and_o2() {
    for (case, ..) in CASES {
        let golden = golden(&family_dir(case));
        for level in [Level::O0, Level::O2] {
            let what = format!("{case} {level:?}");
            let model = compiled(case, &at_level(level)).to_bytes().unwrap();
            let tract = run_tract(&model, &golden);
            for name in golden_outputs(case) {
                assert!(tract.contains_key(&name), "{what}: no output `{name}`");
            }
            let worst = assert_close(&format!("{what} tract vs PyTorch"), &tract, &golden, ATOL);
            let ort = run_onnxruntime(&model, &golden);
            let worst_ort = assert_close(&format!("{what} onnxruntime vs PyTorch"), &ort, &golden, ATOL);
            eprintln!("{what}: max-abs vs PyTorch: tract {worst:.2e}, onnxruntime {worst_ort:.2e}");
        }
    }
}

#[test]
fn every_layer_fuses_at_o2() {
    for (case, layers, layer_norm, gelu) in CASES {
        let compiled = compiled(case, &at_level(Level::O2));
        let g = compiled.graph();
        let expected = FusedCounts {
            attention: layers,
            layer_norm,
            gelu,
        };
        assert_eq!(
            fused_counts(&compiled),
            expected,
            "{case}: {:?}",
            g.op_histogram()
        );
        let h = g.op_histogram();
        // (Softmax stays: the default target writes the fused attention
        // out decomposed, the form tract runs fastest.)
        for gone in ["Erf", "ReduceMean", "Sqrt", "Tanh"] {
            // The classifiers' and poolers' tanh stay: only one per model.
            let left = h.get(gone).copied().unwrap_or(0);
            assert!(left <= usize::from(gone == "Tanh"), "{case}: {gone} left: {h:?}");
        }
    }
}

#[test]
fn inspect_reports_pytorch_parameter_counts() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("family/parameters.json")).unwrap()).unwrap();
    for (case, ..) in CASES {
        let dir = family_dir(case);
        let out = bertc_run(&[&"inspect", &dir, &"--json", &"--seq", &"12"]);
        assert!(out.status.success(), "{case}: {}", stderr_of(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["parameters"]["total"], expected[case]["parameters"],
            "{case}: inspect's parameters against PyTorch's"
        );
        assert_eq!(report["parameters"]["unattributed"], 0, "{case}: {report}");
    }
}

fn preset_parameters(name: &str) -> usize {
    bertc::builder::bert_model_params(&load_config(name).unwrap())
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .sum()
}

/// The base models' parameter counts (PyTorch's `sum(p.numel())`, tied
/// weights once, buffers not counted), against published figures:
/// - roberta-base, roberta-large: 124,645,632 and 355,359,744, the
///   `RobertaModel` counts quoted across the ecosystem (e.g. parameter
///   tables of adapter papers' code);
/// - xlm-roberta-base/-large: 278,043,648 and 559,890,432 (MTEB's model
///   metadata `n_parameters` for XLM-R-base fine-tunes; the same pair in
///   model-size tables);
/// - distilbert-base-uncased, distilbert-base-multilingual-cased:
///   66,362,880 and 134,734,080 (KerasHub's presets' `params`, and
///   `TFDistilBertMainLayer` in Keras summaries — the same modules);
/// - albert-base-v2, albert-large-v2: 11,683,584 and 17,683,968
///   (KerasHub's presets; `AutoModel.from_pretrained("albert-base-v2")`
///   has 11,683,584);
/// - electra-base-discriminator: 108,891,648, BERT-base's encoder without
///   a pooler (ElectraModel has none; embedding_size = hidden);
///   electra-small-discriminator: KerasHub lists 13,548,800, which counts a
///   256 × 256 pooler ElectraModel lacks: 13,548,800 − 65,792 = 13,483,008;
/// - all-mpnet-base-v2: its model card's 109,486,978 counts the 514-entry
///   `position_ids` buffer saved in the checkpoint: 109,486,464 parameters.
/// - modernbert-base: published as 149M (the ModernBERT paper's table,
///   answerdotai/ModernBERT-base's model card). Counted from the published
///   config's shapes: tok_embeddings 50368·768 + norm 768 = 38,683,392;
///   per layer Wqkv 768·2304 + Wo 768·768 + Wi 768·2304 + mlp Wo 1152·768 +
///   two norms 2·768 = 5,015,040, layer 0 without attn_norm (768 fewer);
///   final_norm 768; no biases (norm_bias, attention_bias, mlp_bias
///   false): 149,014,272. The hub's "150M" badge counts the checkpoint,
///   ModernBertForMaskedLM, which adds head.dense 768·768, head.norm 768
///   and decoder.bias 50368: 149,655,232 (the decoder weight tied).
/// - modernbert-large: published as 395M (answerdotai/ModernBERT-large's
///   model card: "28 layers, 395 million parameters"). Its preset is the
///   base preset with the large shapes of the hub's config (hidden 1024,
///   16 heads, 28 layers, intermediate 2624); counted as above:
///   tok_embeddings 50368·1024 + norm 1024, per layer Wqkv 1024·3072 +
///   Wo 1024² + Wi 1024·5248 + mlp Wo 2624·1024 + two norms 2·1024, layer 0
///   without attn_norm, final_norm: 394,781,696 (the MLM checkpoint adds
///   1,099,968: 395,881,664).
/// - eurobert-210m: published as 210M (the EuroBERT paper and
///   EuroBERT/EuroBERT-210m's name); its preset is the hub's config.json
///   (EuroBERT/EuroBERT-210m), its `architectures` the bare EuroBertModel
///   as every preset's. embed_tokens 128256·768, per layer q, k, v, o
///   4·768² (12 key/value heads: no grouping at this size) + gate, up, down
///   3·768·3072 + two RMSNorms 2·768, the final norm 768, no biases:
///   211,766,016. (The hub's MLM checkpoint adds the untied lm_head,
///   128256·768 without bias.)
/// - jina-embeddings-v3: the hub's config is remote code
///   (`XLMRobertaFlashConfig`, `model_type: xlm-roberta`, which bertc would
///   read as XLM-R); the preset is what transformers 5.23's
///   JinaEmbeddingsV3Config reads of it (24 layers of 1024, 16 heads, 4096,
///   vocabulary 250002, 8194 positions, RoPE θ 20000, one token type). Its
///   base model is XLM-R-large's above without the 514-row position table:
///   559,890,432 − 514·1024 = 559,364,096. The published "570M" (model
///   card; 572M on the hub) counts the task LoRA adapters, which
///   transformers 5.23's class does not have and bertc does not build.
#[test]
fn presets_have_their_published_parameter_counts() {
    for (name, count) in [
        ("roberta-base", 124_645_632),
        ("roberta-large", 355_359_744),
        ("xlm-roberta-base", 278_043_648),
        ("xlm-roberta-large", 559_890_432),
        ("distilbert-base-uncased", 66_362_880),
        ("distilbert-base-multilingual-cased", 134_734_080),
        ("albert-base-v2", 11_683_584),
        ("albert-large-v2", 17_683_968),
        ("electra-base-discriminator", 108_891_648),
        ("electra-small-discriminator", 13_548_800 - 65_792),
        ("all-mpnet-base-v2", 109_486_978 - 514),
        ("modernbert-base", 149_014_272),
        ("modernbert-large", 394_781_696),
        ("eurobert-210m", 211_766_016),
        ("jina-embeddings-v3", 559_890_432 - 514 * 1024),
    ] {
        assert_eq!(preset_parameters(name), count, "{name}");
    }
}

/// ALBERT's layers share one group: the file holds that group once, so
/// albert-large-v2 (24 layers) is about its embeddings plus one layer.
/// (Sizes only: placeholder weights take the bytes drawn ones take.)
#[test]
fn albert_stores_each_shared_weight_once() {
    let c = load_config("albert-large-v2").unwrap();
    let options = PipelineOptions {
        check: false,
        ..at_level(Level::O2)
    };
    let compiled = compile(test_session(), &c, shapes_only(), &options).unwrap();
    let bytes = compiled.to_bytes().unwrap().len();
    let (h, i, e, v) = (1024usize, 4096usize, 128usize, 30000usize);
    let embeddings = v * e + 512 * e + 2 * e + 2 * e + (e * h + h);
    let layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h;
    let pooler = h * h + h;
    let one_layer = 4 * (embeddings + layer + pooler);
    assert!(
        bytes < one_layer + one_layer / 50,
        "albert-large-v2: {bytes} bytes, expected about {one_layer} (one layer + embeddings), \
         24 layers would be {}",
        4 * (embeddings + 24 * layer + pooler)
    );
    assert!(bytes >= one_layer, "{bytes} < {one_layer}");
    // The graph runs all 24 layers, each reading the shared weights.
    assert_eq!(fused_counts(&compiled).attention, 24);
}

#[test]
fn inputs_are_named_as_optimum_names_them() {
    for (case, ..) in CASES {
        let g = build(
            &case_config(case),
            &BuildOptions {
                weights: Some(family_dir(case).join("model.safetensors")),
                ..Default::default()
            },
        )
        .unwrap()
        .graph;
        let inputs: Vec<&str> = g.inputs().iter().map(|&id| g.node(id).name.as_str()).collect();
        let with_types = case.starts_with("electra") || case.starts_with("albert");
        let expected: &[&str] = match with_types {
            true => &["input_ids", "attention_mask", "token_type_ids"],
            false => &["input_ids", "attention_mask"],
        };
        assert_eq!(inputs, expected, "{case}");
    }
}

/// DistilBERT's sinusoidal table, when drawn (random init), is the one
/// transformers makes: the checkpoint saved by transformers holds it.
#[test]
fn distilbert_sinusoidal_table_is_generated_as_transformers_does() {
    let dir = family_dir("distilbert-sinusoidal-mlm");
    let ck = bertc::weights::Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    let saved = ck
        .to_f32("distilbert.embeddings.position_embeddings.weight")
        .unwrap();
    let generated = bertc::builder::sinusoidal_table(40, 32);
    let worst = saved
        .iter()
        .zip(&generated)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-6, "max-abs {worst:e}");
    // And a random-init compile uses it.
    let opts = BuildOptions {
        head: None,
        ..Default::default()
    };
    let g = build(&case_config("distilbert-sinusoidal-mlm"), &opts)
        .unwrap()
        .graph;
    let id = g.find("embeddings.position_embeddings.weight").unwrap();
    let bertc::ir::Op::Constant(t) = &g.node(id).op else {
        panic!("not a constant")
    };
    assert_eq!(t.to_f32_vec().unwrap(), generated);
}

/// One case per family through int8 (dynamic, static) and fp16: the
/// accuracy gate (worst-row cosine ≥ 0.99 against f32) passes.
#[test]
fn int8_and_fp16_gates_pass_per_family() {
    for case in [
        "roberta-cls",
        "distilbert-sinusoidal-mlm",
        "electra-cls",
        "albert-mlm",
        "mpnet-cls",
    ] {
        for form in [
            Form::Int8Dynamic,
            Form::Int8Static(CalibrationMethod::MinMax),
            Form::Fp16,
        ] {
            let options = PipelineOptions {
                precision: Precision::new(form),
                ..at_level(Level::O2)
            };
            let c = compiled(case, &options);
            let worst = gate_worst_row_cosine(&c);
            assert!(worst >= 0.99, "{case} {form:?}: worst row cosine {worst}");
        }
    }
}

/// The graph's multiply-adds are the closed form's, adjusted by what each
/// family has or lacks: no pooler (DistilBERT, ELECTRA), a projection from
/// `embedding_size` (ELECTRA-small, ALBERT).
#[test]
fn multiply_adds_follow_the_closed_form_per_family() {
    for name in [
        "roberta-base",
        "distilbert-base-uncased",
        "electra-small-discriminator",
        "albert-base-v2",
        "all-mpnet-base-v2",
    ] {
        let c = load_config(name).unwrap();
        let opts = BuildOptions {
            shapes_only: true,
            ..Default::default()
        };
        let g: Graph = build(&c, &opts).unwrap().graph;
        let s = 64u64;
        let (h, e) = (c.hidden_size as u64, c.embedding_size() as u64);
        let mut expected = bert_macs_per_sequence(&c, s as usize).total;
        if !c.family.pooler_for(bertc::builder::Head::Base) {
            expected -= h * h;
        }
        if e != h || c.family == bertc::family::Family::Albert {
            expected += s * e * h;
        }
        let cost = graph_cost(&g, 1, s as usize).unwrap();
        assert_eq!(cost.macs_per_sequence.total, expected, "{name}");
    }
}

/// Every head on every family (seeded weights): builds, fuses, and the
/// -O2 graph matches the graph as built in the pipeline's check.
#[test]
fn every_head_compiles_on_every_family() {
    use bertc::builder::Head;
    for case in FAMILY_BASE_CASES {
        let c = case_config(case);
        for head in Head::ALL {
            let opts = BuildOptions {
                head: Some(head),
                ..Default::default()
            };
            let compiled = compile(test_session(), &c, opts, &at_level(Level::O2))
                .unwrap_or_else(|e| panic!("{case} {head}: {e}"));
            assert!(!compiled.report.check.is_empty(), "{case} {head}: not checked");
            let counts = fused_counts(&compiled);
            assert_eq!(counts.attention, 2, "{case} {head}");
        }
    }
}

/// `--target onnxruntime` (its contrib ops: EmbedLayerNormalization where
/// the embeddings are BERT's, SkipLayerNormalization, packed Attention)
/// keeps every family within 1e-4 of PyTorch in onnxruntime.
#[test]
fn onnxruntime_target_matches_pytorch_per_family() {
    for case in [
        "roberta-cls",
        "distilbert-qa",
        "electra-cls",
        "albert-mlm",
        "mpnet-base",
        "xlm-roberta-qa",
    ] {
        let options = PipelineOptions {
            target: bertc::passes::Target::Onnxruntime,
            ..at_level(Level::O2)
        };
        let model = compiled(case, &options).to_bytes().unwrap();
        let golden = golden(&family_dir(case));
        let ort = run_onnxruntime(&model, &golden);
        let worst = assert_close(&format!("{case} --target onnxruntime"), &ort, &golden, ATOL);
        eprintln!("{case}: --target onnxruntime in onnxruntime vs PyTorch max-abs {worst:.2e}");
    }
}

/// The bytes of every initializer of a written model: what it stores as
/// weights, without its graph (names, nodes, shapes).
fn initializer_bytes(model: &[u8]) -> usize {
    let g = bertc::onnx::import_bytes(model).unwrap();
    g.node_ids()
        .filter_map(|id| match &g.node(id).op {
            bertc::ir::Op::Constant(t) => Some(t.len() * t.dtype().size()),
            _ => None,
        })
        .sum()
}

/// The reduced-precision forms a user can write, as (name, options).
fn reduced_forms() -> Vec<(&'static str, PipelineOptions)> {
    use bertc::passes::Target;
    use bertc::quantize::{CalibrationMethod, Form, Precision};
    let reduced = |form: Form, target: Target| PipelineOptions {
        precision: Precision::new(form),
        target,
        check: false,
        ..at_level(Level::O2)
    };
    let dynamic = || Form::Int8Dynamic;
    let static_ = || Form::Int8Static(CalibrationMethod::MinMax);
    vec![
        ("fp16", reduced(Form::Fp16, Target::Portable)),
        ("int8 dynamic", reduced(dynamic(), Target::Portable)),
        ("int8 static", reduced(static_(), Target::Portable)),
        (
            "onnxruntime int8 dynamic",
            reduced(dynamic(), Target::Onnxruntime),
        ),
        ("onnxruntime int8 static", reduced(static_(), Target::Onnxruntime)),
        ("openvino int8 static", reduced(static_(), Target::Openvino)),
    ]
}

/// `inspect`'s fp16 and int8 weight bytes are what every written fp16 and
/// int8 form stores, within 2 %, for all 18 cases: in particular ALBERT's
/// shared layer is quantized once in every int8 form (it was stored once per
/// layer: the int8 files held more weight bytes than the fp32 ones). These
/// models are tiny (hidden 32), so most of each file is graph — names, nodes
/// — which inspect does not count: the initializers are compared here (the
/// presets' whole files: tests/cost.rs).
#[test]
fn inspect_weight_bytes_are_what_each_form_stores_per_family() {
    for (case, ..) in CASES {
        let out = bertc_run(&[&"inspect", &family_dir(case), &"--json", &"--seq", &"12"]);
        assert!(out.status.success(), "{case}: {}", stderr_of(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let bytes = |key: &str| report["weight_bytes"][key].as_u64().unwrap() as f64;
        for (form, options) in reduced_forms() {
            let estimate = match form {
                "fp16" => bytes("fp16"),
                "int8 static" => bytes("int8_static"),
                _ => bytes("int8"),
            };
            let stored = initializer_bytes(&compiled(case, &options).to_bytes().unwrap()) as f64;
            let off = (estimate - stored).abs() / stored;
            assert!(
                off < 0.02,
                "{case} {form}: inspect says {estimate} bytes, the file stores {stored} ({:.1} %)",
                100.0 * off
            );
        }
    }
}

/// `inspect`'s file sizes are the whole files `compile` writes — weights
/// and graph — within 2 %: fp32 and int8 (the portable dynamic form it
/// compiles) for all 18 cases, and albert-base-v2's int8 file in the
/// portable and onnxruntime dynamic forms. Counting weights alone was not
/// enough there: ALBERT's twelve layers share one set of weights, so its
/// activation quantization — graph, not weights — is 2 % of its int8 file.
#[test]
fn inspect_file_bytes_are_the_written_files() {
    use bertc::passes::Target;
    let file_bytes = |model: &str, key: &str| -> f64 {
        let out = bertc_run(&[&"inspect", &model, &"--json", &"--seq", &"12"]);
        assert!(out.status.success(), "{model}: {}", stderr_of(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["file_bytes"][key].as_u64().unwrap() as f64
    };
    let within = |what: &str, estimate: f64, written: f64| {
        let off = (estimate - written).abs() / written;
        assert!(
            off < 0.02,
            "{what}: inspect says {estimate} bytes, the file has {written} ({:.2} %)",
            100.0 * off
        );
    };
    let int8 = |target: Target| PipelineOptions {
        precision: Precision::new(Form::Int8Dynamic),
        target,
        check: false,
        ..at_level(Level::O2)
    };
    for (case, ..) in CASES {
        let dir = family_dir(case).display().to_string();
        let fp32 = compiled(case, &at_level(Level::O2)).to_bytes().unwrap().len();
        within(&format!("{case} fp32"), file_bytes(&dir, "fp32"), fp32 as f64);
        let written = compiled(case, &int8(Target::Portable)).to_bytes().unwrap().len();
        within(&format!("{case} int8"), file_bytes(&dir, "int8"), written as f64);
    }
    let c = load_config("albert-base-v2").unwrap();
    let estimate = file_bytes("albert-base-v2", "int8");
    for target in [Target::Portable, Target::Onnxruntime] {
        let written = compile(test_session(), &c, BuildOptions::default(), &int8(target))
            .unwrap()
            .to_bytes()
            .unwrap()
            .len();
        within(
            &format!("albert-base-v2 int8 for {target:?}"),
            estimate,
            written as f64,
        );
    }
}

/// ALBERT in every int8 form: each weight its layers share is stored once
/// (as many int8 matrices as the f32 graph has weight matrices feeding its
/// products, no two alike), every product reads its own layer's
/// activation — the Q/DQ pass once took "the" product of a weight as its
/// first reader, which a shared weight has twelve of — and the accuracy
/// gate holds against f32.
#[test]
fn albert_shared_weights_are_quantized_once_in_every_int8_form() {
    use bertc::ir::{DType, Op};
    let matrices = |g: &Graph, dtype: DType| -> Vec<Vec<u8>> {
        g.node_ids()
            .filter_map(|id| match &g.node(id).op {
                Op::Constant(t) if t.dtype() == dtype && t.dims().len() == 2 => Some((id, t.raw().to_vec())),
                _ => None,
            })
            .filter(|&(id, _)| {
                dtype != DType::F32
                    || g.consumers(bertc::ir::Value { node: id, slot: 0 })
                        .iter()
                        .any(|&(user, _)| g.node(user).op == Op::MatMul)
            })
            .map(|(_, raw)| raw)
            .collect()
    };
    let fp32 = compiled("albert-mlm", &at_level(Level::O2));
    let weights = matrices(fp32.graph(), DType::F32).len();
    for (form, options) in reduced_forms().into_iter().filter(|(f, _)| *f != "fp16") {
        let options = PipelineOptions {
            check: true,
            ..options
        };
        let c = compiled("albert-mlm", &options);
        let int8 = matrices(c.graph(), DType::I8);
        assert_eq!(int8.len(), weights, "albert-mlm {form}: int8 matrices");
        for (i, m) in int8.iter().enumerate() {
            assert!(
                !int8[..i].contains(m),
                "albert-mlm {form}: an int8 matrix stored twice"
            );
        }
        let worst = c.report.accuracy.as_ref().expect("the gate ran").outputs.iter();
        let worst = worst.map(|o| o.min_row_cosine).fold(1.0, f64::min);
        assert!(worst >= 0.99, "albert-mlm {form}: worst row cosine {worst}");
    }
}

/// ALBERT for onnxruntime at f32: its layers share Q, K and V, so they
/// share one packed [H, 3H] weight and bias — packed per layer, the file
/// held every shared projection once per layer (albert-base-v2: 124.7 MB
/// against 46.8 MB portable).
#[test]
fn albert_onnxruntime_form_packs_shared_attention_weights_once() {
    use bertc::ir::Op;
    let options = PipelineOptions {
        target: bertc::passes::Target::Onnxruntime,
        ..at_level(Level::O2)
    };
    let c = compiled("albert-mlm", &options);
    let g = c.graph();
    let layers = case_config("albert-mlm").num_hidden_layers;
    assert!(layers > 1, "the case shares one layer between several");
    let histogram = g.op_histogram();
    assert_eq!(histogram.get("com.microsoft.Attention"), Some(&layers));
    let constants: Vec<&[u8]> = g
        .node_ids()
        .filter_map(|id| match &g.node(id).op {
            Op::Constant(t) if t.len() > 1 => Some(&t.raw()[..]),
            _ => None,
        })
        .collect();
    for (i, c) in constants.iter().enumerate() {
        assert!(!constants[..i].contains(c), "a constant stored twice");
    }
}

/// The families whose positions count the real tokens (RoBERTa, XLM-R,
/// MPNet) at sequence length 1, one row masked out: tract ran
/// `cumsum(m) · m` as Square of int64 there and failed (issue 25 N9). At
/// -O0 and -O2, tract agrees with onnxruntime on the same file.
#[test]
fn padding_positions_run_at_sequence_length_one() {
    for case in ["roberta-base", "xlm-roberta-base", "mpnet-base", "roberta-cls"] {
        for level in [Level::O0, Level::O2] {
            let c = compiled(case, &at_level(level));
            let bytes = c.to_bytes().unwrap();
            let mut inputs = bertc::runtime::inputs_for(c.graph(), 2, 1);
            // Row 1 masked out.
            if let Some(mask) = inputs.get_mut("attention_mask") {
                *mask = bertc::runtime::HostTensor::i64(vec![2, 1], vec![1, 0]);
            }
            let tract = run_tract(&bytes, &inputs);
            let ort = run_onnxruntime(&bytes, &inputs);
            assert_close(&format!("{case} at {level:?}, S=1"), &tract, &ort, 1e-5);
        }
    }
}
