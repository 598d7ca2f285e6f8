//! The modern encoders (issue 23) against PyTorch: the seeded cases of
//! tests/fixtures/family2 (transformers 5.23) at -O0 and -O2 in tract and
//! onnxruntime, every output at every position (padding and the
//! left-padded row included), PyTorch's parameter counts through
//! `inspect`, the int8 and fp16 gates and the onnxruntime target. A family
//! joins by adding its cases to `CASES`.

mod common;

use bertc::config::BertConfig;
use bertc::ir::{BinaryOp, Op};
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, compile, BuildOptions, PipelineOptions};
use bertc::quantize::{CalibrationMethod, Form, Precision};
use bertc::runtime::NamedTensors;
use common::*;

/// Every case of the families bertc builds.
const CASES: [&str; 28] = [
    "nomic-base",
    "nomic-cls",
    "nomic-mlm",
    "gte-base",
    "gte-cls",
    "gte-mlm",
    "modernbert-base",
    "modernbert-legacy-config",
    "modernbert-cls",
    "modernbert-cls-mean",
    "modernbert-tok",
    "modernbert-mlm",
    "modernbert-qa",
    "jina-v3-base",
    "jina-v3-cls",
    "jina-v3-qa",
    "eurobert-base",
    "eurobert-cls",
    "eurobert-mlm",
    "deberta-v3-base",
    "deberta-v3-cls",
    "deberta-v3-tok",
    "deberta-v3-qa",
    "deberta-v3-mlm",
    "deberta-v2-base",
    "deberta-v2-mlm-legacy",
    "deberta-v1-base",
    "deberta-v1-cls",
];

/// The nomic cases (remote-code configs are theirs).
const NOMIC: [&str; 3] = ["nomic-base", "nomic-cls", "nomic-mlm"];

const ATOL: f64 = 1e-4;

fn case_dir(case: &str) -> std::path::PathBuf {
    fixture(&format!("family2/{case}"))
}

fn compiled_with(case: &str, config: &BertConfig, options: &PipelineOptions) -> bertc::pipeline::Compiled {
    let opts = BuildOptions {
        weights: Some(case_dir(case).join("model.safetensors")),
        ..Default::default()
    };
    compile(test_session(), config, opts, options).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn compiled(case: &str, options: &PipelineOptions) -> bertc::pipeline::Compiled {
    let config = BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
    compiled_with(case, &config, options)
}

/// The golden file's outputs (its tensors that are not model inputs).
fn outputs_of(golden: &NamedTensors) -> Vec<String> {
    let inputs = ["input_ids", "attention_mask", "token_type_ids"];
    golden
        .keys()
        .filter(|k| !inputs.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[test]
fn every_case_matches_pytorch_in_tract_and_onnxruntime_at_o0_and_o2() {
    for case in CASES {
        let golden = golden(&case_dir(case));
        for level in [Level::O0, Level::O2] {
            let what = format!("{case} {level:?}");
            let c = compiled(case, &at_level(level));
            // At -O2 the pipeline checks the optimized graph against the
            // graph as built (the passes kept the numbers).
            if level == Level::O2 {
                assert!(
                    !c.report.check.is_empty(),
                    "{what}: the pipeline's check did not run"
                );
            }
            let model = c.to_bytes().unwrap();
            let tract = run_tract(&model, &golden);
            for name in outputs_of(&golden) {
                assert!(tract.contains_key(&name), "{what}: no output `{name}`");
            }
            let worst = assert_close(&format!("{what} tract vs PyTorch"), &tract, &golden, ATOL);
            let ort = run_onnxruntime(&model, &golden);
            let worst_ort = assert_close(&format!("{what} onnxruntime vs PyTorch"), &ort, &golden, ATOL);
            eprintln!("{what}: max-abs vs PyTorch: tract {worst:.2e}, onnxruntime {worst_ort:.2e}");
        }
    }
}

/// The rotary base is read and used: with another θ the outputs move far
/// beyond the tolerance (the shared README's "features shown to matter").
#[test]
fn rope_theta_moves_the_outputs() {
    for case in ["nomic-base", "gte-base", "jina-v3-base", "eurobert-base"] {
        rope_theta_moves(case);
    }
}

fn rope_theta_moves(case: &str) {
    let text = std::fs::read_to_string(case_dir(case).join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["rope_parameters"]["rope_theta"] = 10_000.0.into();
    let config = BertConfig::from_json_str(&json.to_string(), "theta 10000").unwrap();
    assert_eq!(config.rope_theta, Some(10_000.0));
    let golden = golden(&case_dir(case));
    let model = compiled_with(case, &config, &at_level(Level::O0))
        .to_bytes()
        .unwrap();
    let out = run_tract(&model, &golden);
    let c = bertc::runtime::compare(
        "last_hidden_state",
        &out["last_hidden_state"],
        &golden["last_hidden_state"],
    );
    assert!(
        c.max_abs > 1e-3,
        "{case}: θ 10000 moved the outputs by only {:e}",
        c.max_abs
    );
}

/// ModernBERT's and DeBERTa's "features shown to matter" (the shared README): each config override
/// moves some output far beyond the tolerance, so a compiler that ignored
/// the feature would fail the golden. Here bertc, given the override, must
/// move too (it reads and uses the field).
const FEATURE_OVERRIDES: [(&str, &str, &str); 16] = [
    ("modernbert-base", "sliding window", r#"{"local_attention": 80}"#),
    (
        "modernbert-base",
        "local rope theta",
        r#"{"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 160000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 160000.0}}}"#,
    ),
    (
        "modernbert-base",
        "global rope theta",
        r#"{"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}"#,
    ),
    (
        "modernbert-base",
        "layer pattern",
        r#"{"layer_types": ["full_attention", "full_attention", "full_attention"]}"#,
    ),
    (
        "modernbert-cls",
        "cls pooling",
        r#"{"classifier_pooling": "mean"}"#,
    ),
    (
        "modernbert-cls-mean",
        "mean pooling",
        r#"{"classifier_pooling": "cls"}"#,
    ),
    (
        "eurobert-cls",
        "late pooling",
        r#"{"classifier_pooling": "mean"}"#,
    ),
    (
        "deberta-v3-base",
        "disentangled attention",
        r#"{"relative_attention": false}"#,
    ),
    ("deberta-v3-base", "p2c term", r#"{"pos_att_type": ["c2p"]}"#),
    ("deberta-v3-base", "c2p term", r#"{"pos_att_type": ["p2c"]}"#),
    (
        "deberta-v3-base",
        "log-bucket formula",
        r#"{"max_position_embeddings": 256}"#,
    ),
    (
        "deberta-v3-cls",
        "disentangled attention under the pooler head",
        r#"{"relative_attention": false}"#,
    ),
    ("deberta-v2-base", "ConvLayer", r#"{"conv_kernel_size": 0}"#),
    (
        "deberta-v2-base",
        "disentangled attention",
        r#"{"relative_attention": false}"#,
    ),
    (
        "deberta-v1-base",
        "disentangled attention",
        r#"{"relative_attention": false}"#,
    ),
    ("deberta-v1-base", "p2c term", r#"{"pos_att_type": ["c2p"]}"#),
];

/// The checkpoint tensors a DeBERTa override leaves without a module
/// (transformers builds none, and `from_pretrained` skips them): the
/// relative table, its norm and projections without relative attention,
/// the ConvLayer without a kernel. bertc refuses a checkpoint's tensors it
/// does not read, so the override's model reads a copy without them.
fn unused_by_override(patch: &str) -> &'static [&'static str] {
    if patch.contains("relative_attention") {
        &["rel_embeddings", "encoder.LayerNorm", "pos_"]
    } else if patch.contains(r#"["c2p"]"#) {
        // v1's own p2c projection (v3 shares the layer's query Linear).
        &["pos_q_proj", "pos_query_proj"]
    } else if patch.contains("conv_kernel_size") {
        &["encoder.conv."]
    } else {
        &[]
    }
}

/// A copy of `case`'s checkpoint without the tensors whose names contain
/// one of `dropped` (safetensors: an 8-byte header length, the JSON
/// header with each tensor's byte range, the data).
fn checkpoint_without(case: &str, dropped: &[&str], dir: &std::path::Path) -> std::path::PathBuf {
    let bytes = std::fs::read(case_dir(case).join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let (mut kept, mut out) = (serde_json::Map::new(), Vec::new());
    for (name, mut info) in header {
        if name == "__metadata__" || dropped.iter().any(|d| name.contains(d)) {
            continue;
        }
        let range = info["data_offsets"].as_array().unwrap().clone();
        let (a, b) = (
            range[0].as_u64().unwrap() as usize,
            range[1].as_u64().unwrap() as usize,
        );
        info["data_offsets"] = serde_json::json!([out.len(), out.len() + b - a]);
        out.extend_from_slice(&data[a..b]);
        kept.insert(name, info);
    }
    let header = serde_json::to_vec(&kept).unwrap();
    let path = dir.join("model.safetensors");
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend(out);
    std::fs::write(&path, file).unwrap();
    path
}

#[test]
fn each_feature_shown_to_matter_moves_the_outputs() {
    for (case, feature, patch_text) in FEATURE_OVERRIDES {
        let text = std::fs::read_to_string(case_dir(case).join("config.json")).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let patch: serde_json::Value = serde_json::from_str(patch_text).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            json[k] = v.clone();
        }
        let config = BertConfig::from_json_str(&json.to_string(), feature).unwrap();
        let golden = golden(&case_dir(case));
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions {
            weights: Some(checkpoint_without(
                case,
                unused_by_override(patch_text),
                dir.path(),
            )),
            ..Default::default()
        };
        let model = compile(test_session(), &config, opts, &at_level(Level::O0))
            .unwrap_or_else(|e| panic!("{case} {feature}: {e}"))
            .to_bytes()
            .unwrap();
        let out = run_tract(&model, &golden);
        let moved = outputs_of(&golden)
            .iter()
            .map(|name| bertc::runtime::compare(name, &out[name], &golden[name]).max_abs)
            .fold(0.0, f64::max);
        assert!(
            moved > 1e-3,
            "{case}: changing the {feature} moved the outputs by only {moved:e}"
        );
    }
}

/// DeBERTa's config: the hub's `"p2c|c2p"` string reads as transformers 5's
/// list, each case's switches are read (v3's buckets and shared keys,
/// v2's ConvLayer, v1 without either), and the config stored in the
/// metadata reads back the same.
#[test]
fn deberta_configs_read_as_transformers_reads_them() {
    let read = |case: &str| BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
    let v3 = read("deberta-v3-base");
    let d = v3.disentangled.as_ref().expect("DeBERTa's fields");
    assert!(d.relative_attention && d.share_att_key && d.normed_table() && !d.position_biased_input);
    assert_eq!((d.position_buckets, d.span(64), d.scale_factor()), (16, 16, 3));
    assert_eq!((v3.layer_norm_eps, v3.type_vocab_size), (1e-7, 0));
    let text = std::fs::read_to_string(case_dir("deberta-v3-base").join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["pos_att_type"] = "p2c|c2p".into();
    let hub = BertConfig::from_json_str(&json.to_string(), "hub").unwrap();
    assert_eq!(hub, v3);
    let v2 = read("deberta-v2-base").disentangled.unwrap();
    assert_eq!(
        (v2.conv_kernel_size, v2.span(64), v2.share_att_key),
        (3, 6, false)
    );
    let v1 = read("deberta-v1-base");
    assert_eq!(v1.family, bertc::family::Family::Deberta);
    let d1 = v1.disentangled.as_ref().unwrap();
    assert_eq!(
        (d1.position_buckets, d1.conv_kernel_size, d1.span(64)),
        (-1, 0, 64)
    );
    for case in CASES.iter().filter(|c| c.starts_with("deberta")) {
        let c = read(case);
        let again = BertConfig::from_json_str(&c.to_canonical_json(), "metadata").unwrap();
        assert_eq!(again, c, "{case}");
    }
    // Values transformers would not build are refused by name.
    for (field, value) in [
        ("pos_att_type", serde_json::json!(["c2p", "p2p"])),
        ("conv_groups", serde_json::json!(2)),
        ("pooler_hidden_size", serde_json::json!(48)),
    ] {
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json[field] = value;
        let e = BertConfig::from_json_str(&json.to_string(), "bad")
            .expect_err(field)
            .to_string();
        assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
    }
}

/// Both config forms of ModernBERT read to the same layers: the hub's 4.x
/// fields and transformers 5's per-layer-type ones.
#[test]
fn modernbert_config_forms_read_alike() {
    use bertc::config::LayerAttention::{FullAttention, SlidingAttention};
    let read = |case: &str| BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
    let (new, legacy) = (read("modernbert-base"), read("modernbert-legacy-config"));
    for c in [&new, &legacy] {
        let s = c.sliding_attention.as_ref().expect("sliding layers");
        assert_eq!(
            s.layer_types,
            vec![FullAttention, SlidingAttention, FullAttention]
        );
        assert_eq!(s.local_attention, 8);
        assert_eq!(c.layer_norm_eps, 1e-5);
        assert!(c.bias_switched_off("attention.self.qkv") && c.bias_switched_off("final_norm"));
    }
    assert_eq!(
        (new.rope_theta, new.layer_rope_theta(1)),
        (Some(160_000.0), Some(10_000.0))
    );
    assert_eq!(
        (legacy.rope_theta, legacy.layer_rope_theta(1)),
        (Some(80_000.0), Some(2_000.0))
    );
    // The config bertc stores in the model's metadata reads back the same.
    let again = BertConfig::from_json_str(&legacy.to_canonical_json(), "metadata").unwrap();
    assert_eq!(again, legacy);
}

#[test]
fn inspect_reports_pytorch_parameter_counts() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("family2/parameters.json")).unwrap()).unwrap();
    for case in CASES {
        let out = bertc_run(&[&"inspect", &case_dir(case), &"--json", &"--seq", &"12"]);
        assert!(out.status.success(), "{case}: {}", stderr_of(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["parameters"]["total"], expected[case]["parameters"],
            "{case}: inspect's parameters against PyTorch's"
        );
        assert_eq!(report["parameters"]["unattributed"], 0, "{case}: {report}");
    }
}

/// The Linears every int8 form quantizes, the bias-free ones too. NomicBERT
/// per layer: the fused QKV, the attention output, the gated MLP's up, gate
/// and down projections (5 × 2 layers); GTE: QKV, output, the packed
/// up-gate and down projections (4 × 2). Plus the pooler and classifier
/// (`-cls`) or the MLM transform (`-mlm`; its decoder reads the tied table
/// through a Transpose and stays f32).
const INT8_LINEARS: [(&str, usize); 28] = [
    ("nomic-base", 10),
    ("nomic-cls", 11),
    ("nomic-mlm", 11),
    ("gte-base", 8),
    ("gte-cls", 9),
    ("gte-mlm", 9),
    // ModernBERT: Wqkv, Wo, the packed Wi and mlp Wo (4 × 3 layers), plus
    // the prediction head's dense and the classifier, or the MLM head's dense.
    ("modernbert-base", 12),
    ("modernbert-legacy-config", 12),
    ("modernbert-cls", 13),
    ("modernbert-cls-mean", 13),
    ("modernbert-tok", 13),
    ("modernbert-mlm", 13),
    ("modernbert-qa", 13),
    // Jina v3: Wqkv, out_proj, fc1 and fc2 (4 × 2 layers), plus the bare
    // model's pooler, the classifier's dense and out_proj, or qa_outputs.
    ("jina-v3-base", 9),
    ("jina-v3-cls", 9),
    ("jina-v3-qa", 8),
    // EuroBERT: q, k, v, o, up, gate and down (7 × 2 layers), plus the
    // classifier's dense and classifier, or the untied lm_head.
    ("eurobert-base", 14),
    ("eurobert-cls", 15),
    ("eurobert-mlm", 15),
    // DeBERTa: query, key, value, output, intermediate, output (6 × 2
    // layers); v3 also the layer's key and query Linears over the normed
    // relative table (shared keys: 2 × 2, 1 × 2 with c2p only), whose
    // products with the raw constant table (v2's pos_*_proj, v1's) stay
    // f32; v2 the ConvLayer's product; v1's fused in_proj is one Linear
    // (4 × 2). Then the heads: pooler + classifier, classifier, embed_proj
    // + qa_outputs, the MLM transform.
    ("deberta-v3-base", 16),
    ("deberta-v3-cls", 17),
    ("deberta-v3-tok", 14),
    ("deberta-v3-qa", 17),
    ("deberta-v3-mlm", 17),
    ("deberta-v2-base", 13),
    ("deberta-v2-mlm-legacy", 14),
    ("deberta-v1-base", 8),
    ("deberta-v1-cls", 9),
];

/// The int8 forms whose all-quantized file misses the MiniLM-like gate
/// (0.99 for the whole output and, `--min-row-cosine`, for every row a
/// pipeline reads), with the most Linears `--quantize-skip auto` may keep
/// f32 to hold it; 0 for every other form. A head's last projection stays
/// f32 in every int8 form (passes/linear_sites.rs). Measured worst real
/// rows, all quantized → auto:
/// - EuroBERT's base and MLM cases, every form but tract's dynamic one
///   (per-token scales on every product: 0.9938 / 0.9955) and
///   eurobert-base's tract static one (real rows 0.9940, padding rows
///   0.9886). The whole output's cosine is 0.997–0.999; its padding rows
///   (the zero embedding row of `padding_idx`, no embedding norm: their
///   residual stream is quantized Linear outputs alone) are the worst, and
///   real rows reach 0.978–0.989. eurobert-mlm tract static → 0.9933 (3
///   kept: layer 0's key, FFN input and attention output); onnxruntime
///   dynamic → 0.9925 / 0.9926 (1 / 2: layer 0's attention output, and its
///   FFN output); Q/DQ static (onnxruntime, OpenVINO), 0.769 / 0.966 with
///   padding rows → 0.9911 / 0.9919 (2 / 1: the same). eurobert-cls passes
///   every form (its late pooling averages the rows).
/// - The Q/DQ static forms of modernbert-tok (0.9853, one row among 512 of
///   5 logits, 0.99975 overall → 0.9922 keeping the head's dense) and
///   jina-v3-cls (0.9842, 8 pooled rows of 3 logits → 0.9971 keeping layer
///   0's FFN input): per-tensor static scales on every input.
/// - deberta-v1-cls in onnxruntime's dynamic form (0.9821: its relative
///   products int8 as well, one row of two logits per sequence → 0.9963
///   keeping two Linears).
fn kept_f32_at_most(case: &str, form: Form, target: Target) -> usize {
    let qdq_static = matches!(form, Form::Int8Static(_)) && target != Target::Portable;
    let tract_dynamic = form == Form::Int8Dynamic && target == Target::Portable;
    match case {
        // Its padding rows only (below): the real ones hold.
        "eurobert-base"
            if form == Form::Int8Static(CalibrationMethod::MinMax) && target == Target::Portable =>
        {
            0
        }
        "eurobert-base" | "eurobert-mlm" if form != Form::Fp16 && !tract_dynamic => 3,
        "modernbert-tok" | "jina-v3-cls" if qdq_static => 1,
        "deberta-v1-cls" if form == Form::Int8Dynamic && target == Target::Onnxruntime => 2,
        _ => 0,
    }
}

/// `case` compiled to `form` for `target` as a user gets it through the
/// gate: every form of [`kept_f32_at_most`] 0 as is; the others refused
/// as they are (the worst row named), then written with `--quantize-skip
/// auto`, keeping between 1 and that many Linears f32. Returns the file
/// and how many Linears it keeps f32.
fn through_the_gate(case: &str, form: Form, target: Target) -> (bertc::pipeline::Compiled, usize) {
    through_the_gate_with(case, form, target, false)
}

/// [`through_the_gate`], with the attention's products quantized too when
/// `attention` (`--quantize-attention`).
fn through_the_gate_with(
    case: &str,
    form: Form,
    target: Target,
    attention: bool,
) -> (bertc::pipeline::Compiled, usize) {
    use bertc::pipeline::check::CheckError;
    use bertc::quantize::Skip;
    let what = format!("{case} {form:?} --target {target:?} (attention quantized: {attention})");
    // MiniLM-like gates: the whole output and every row a pipeline reads
    // at 0.99.
    let options = |skip: Skip| PipelineOptions {
        precision: Precision {
            skip,
            min_row_cosine: Some(0.99),
            attention,
            ..Precision::new(form)
        },
        target,
        ..at_level(Level::O2)
    };
    // Cases that lose enough more in int8 attention that auto keeps more
    // Linears f32: ModernBERT's token classifier (five logits per token;
    // 0.981 all quantized in onnxruntime's form),
    // and in OpenVINO's static form, whose V is clipped where a gate input
    // exceeds the calibrated range, nomic-mlm and gte-cls (one each);
    // ModernBERT's and Jina's classifiers pass it all quantized there.
    let most = match (case, attention, target) {
        ("modernbert-tok", true, Target::Onnxruntime) => 1,
        // All quantized, 0.9960 with int8 attention (0.9821 without).
        ("deberta-v1-cls", true, Target::Onnxruntime) => 0,
        ("deberta-v1-cls" | "nomic-mlm" | "gte-cls", true, Target::Openvino) => 1,
        ("modernbert-tok" | "jina-v3-cls", true, Target::Openvino) => 0,
        _ => kept_f32_at_most(case, form, target),
    };
    let c = if most == 0 {
        compiled(case, &options(Skip::default()))
    } else {
        let config = BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
        let opts = BuildOptions {
            weights: Some(case_dir(case).join("model.safetensors")),
            ..Default::default()
        };
        match compile(test_session(), &config, opts, &options(Skip::default())) {
            Err(bertc::Error::Check(CheckError::RowAccuracyBelow { cosine, .. })) => {
                assert!(cosine < 0.99, "{what}: refused at row cosine {cosine}")
            }
            Err(e) => panic!("{what}: expected the gate's refusal, got {e}"),
            Ok(_) => panic!("{what}: passed the gate all quantized; lower kept_f32_at_most"),
        }
        compiled(case, &options(Skip::Auto))
    };
    let kept = c
        .graph()
        .metadata
        .get(bertc::quantize::KEPT_F32)
        .map_or(0, |k| k.split(',').filter(|l| !l.is_empty()).count());
    assert!(
        (most == 0 && kept == 0) || (1..=most).contains(&kept),
        "{what}: {kept} Linears kept f32 (at most {most})"
    );
    // Every row at 0.99, padding positions too, where nothing is kept f32
    // (but EuroBERT's: their token embedding is the zero row, so their
    // residual stream is quantized Linear outputs alone); where auto chose,
    // the rows it holds (real tokens' and sequences').
    let worst = gate_worst_row_cosine(&c);
    let real = c.report.accuracy.as_ref().expect("the gate ran").outputs.iter();
    let real = real.map(|o| o.min_real_row_cosine).fold(1.0, f64::min);
    eprintln!("{what}: worst row cosine {worst:.6} (real {real:.6}), {kept} Linears kept f32");
    assert!(real >= 0.99, "{what}: worst real row cosine {real}");
    assert!(
        kept > 0 || worst >= 0.99 || case.starts_with("eurobert"),
        "{what}: worst row cosine {worst}"
    );
    (c, kept)
}

/// int8 (dynamic, static) and fp16: the accuracy gate (worst-row cosine
/// ≥ 0.99 against f32) passes, with the Linears of [`INT8_LINEARS`]
/// quantized (but for the few [`kept_f32_at_most`] allows).
#[test]
fn int8_and_fp16_gates_pass() {
    for (case, int8_linears) in INT8_LINEARS {
        let options = PipelineOptions {
            precision: Precision::new(Form::Int8Dynamic),
            ..at_level(Level::O2)
        };
        let h = compiled(case, &options).graph().op_histogram();
        let quantized = h.get("MatMulInteger").copied().unwrap_or(0);
        assert_eq!(quantized, int8_linears, "{case}: {h:?}");
    }
    for case in CASES {
        for form in [
            Form::Int8Dynamic,
            Form::Int8Static(CalibrationMethod::MinMax),
            Form::Fp16,
        ] {
            through_the_gate(case, form, Target::Portable);
        }
    }
}

/// `--target onnxruntime` (its contrib ops where they match) keeps every
/// case within the tolerance in onnxruntime. Its packed contrib Attention
/// projects Q and K itself, leaving no place for the rotation: the rotary
/// layers are written as the standard Attention (opset 23), one per layer,
/// the rotation before it.
#[test]
fn onnxruntime_target_matches_pytorch() {
    for case in CASES {
        let options = PipelineOptions {
            target: Target::Onnxruntime,
            ..at_level(Level::O2)
        };
        let c = compiled(case, &options);
        let h = c.graph().op_histogram();
        let layers = BertConfig::from_path(&case_dir(case).join("config.json"))
            .unwrap()
            .num_hidden_layers;
        assert_eq!(h.get("Attention"), Some(&layers), "{case}: {h:?}");
        // Every rotary family's rotations of Q and K are onnxruntime's
        // RotaryEmbedding kernel (lower_rotary_onnxruntime), none left
        // as primitives.
        let rotary = ["nomic", "gte", "modernbert", "eurobert", "jina"]
            .iter()
            .any(|f| case.starts_with(f));
        let rotations = if rotary { Some(2 * layers) } else { None };
        assert_eq!(h.get("RotaryEmbedding").copied(), rotations, "{case}: {h:?}");
        let model = c.to_bytes().unwrap();
        let golden = golden(&case_dir(case));
        let ort = run_onnxruntime(&model, &golden);
        let worst = assert_close(&format!("{case} --target onnxruntime"), &ort, &golden, ATOL);
        eprintln!("{case}: --target onnxruntime in onnxruntime vs PyTorch max-abs {worst:.2e}");
    }
}

/// What -O2 fuses: every layer's attention (the rotation of Q and K
/// recognized between the projections and the scores, and kept before the
/// fused op), every layer norm (the embeddings', two per layer, the
/// masked-LM head's) and every GELU (GTE's GeGLU gate in each layer, its
/// MLM head's; NomicBERT's SwiGLU gates with silu). ModernBERT: attention in
/// its 3 layers, the sliding ones with their window mask; its norms, which
/// have no bias unless norm_bias says (the embeddings' norm, the attention
/// norms of layers 1.., every MLP norm, the final norm, the heads' norm);
/// its GeGLU activations and its head's GELU. A GLU's product with its gate
/// stays a Mul (ONNX has no GLU op).
#[test]
fn attention_and_layer_norms_fuse_at_o2() {
    for (case, attention, layer_norm, gelu) in [
        ("nomic-base", 2, 5, 0),
        ("nomic-cls", 2, 5, 0),
        ("nomic-mlm", 2, 6, 0),
        ("gte-base", 2, 5, 2),
        ("gte-cls", 2, 5, 2),
        ("gte-mlm", 2, 6, 3),
        ("modernbert-base", 3, 7, 3),
        ("modernbert-legacy-config", 3, 7, 3),
        ("modernbert-cls", 3, 8, 4),
        ("modernbert-cls-mean", 3, 8, 4),
        ("modernbert-tok", 3, 8, 4),
        ("modernbert-mlm", 3, 8, 4),
        ("modernbert-qa", 3, 8, 4),
        // Jina v3: the embeddings' norm and two per layer; GELU in each MLP.
        ("jina-v3-base", 2, 5, 2),
        ("jina-v3-cls", 2, 5, 2),
        ("jina-v3-qa", 2, 5, 2),
        // EuroBERT: two RMSNorms per layer and the final one (none on the
        // embeddings); its classifier's GELU (late pooling: on every token).
        ("eurobert-base", 2, 5, 0),
        ("eurobert-cls", 2, 5, 1),
        ("eurobert-mlm", 2, 5, 0),
        // DeBERTa: attention in both layers (c2p and p2c folded into the
        // fused op's mask); norms: the embeddings', v3's over the relative
        // table, v2's ConvLayer's, two per layer, the MLM head's; GELU in
        // every MLP, v2's ConvLayer (conv_act gelu), the ContextPooler, the
        // MLM transform.
        ("deberta-v3-base", 2, 6, 2),
        ("deberta-v3-cls", 2, 6, 3),
        ("deberta-v3-tok", 2, 6, 2),
        ("deberta-v3-qa", 2, 6, 2),
        ("deberta-v3-mlm", 2, 7, 3),
        ("deberta-v2-base", 2, 6, 3),
        ("deberta-v2-mlm-legacy", 2, 7, 4),
        ("deberta-v1-base", 2, 5, 2),
        ("deberta-v1-cls", 2, 5, 3),
    ] {
        let c = compiled(case, &at_level(Level::O2));
        let counts = fused_counts(&c);
        let h = c.graph().op_histogram();
        eprintln!("{case}: {counts:?} {h:?}");
        assert_eq!(
            counts,
            FusedCounts {
                attention,
                layer_norm,
                gelu,
            },
            "{case}: {h:?}"
        );
        // Nothing of a decomposed norm is left: its Sqrt is gone.
        assert_eq!(h.get("Sqrt"), None, "{case}: {h:?}");
        if case.starts_with("deberta") {
            relative_terms_are_not_scaled(case);
        }
    }
}

/// DeBERTa's relative terms reach the fused attention divided through their
/// tables: onnxruntime's file (attention kept fused) scales no [B, h, S, S]
/// value (that Mul cost a pass over 12.6 MB a layer at S = 512).
fn relative_terms_are_not_scaled(case: &str) {
    let options = PipelineOptions {
        target: Target::Onnxruntime,
        ..at_level(Level::O2)
    };
    let c = compiled(case, &options);
    let g = c.graph();
    let seq = bertc::ir::Dim::sym(bertc::ir::SEQUENCE);
    for id in g.node_ids() {
        let node = g.node(id);
        let d = node.outputs[0].shape.dims();
        let square = d.len() == 4 && d[2] == seq && d[3] == seq;
        let scaling = matches!(node.op, Op::Binary(BinaryOp::Mul | BinaryOp::Div));
        assert!(
            !(square && scaling),
            "{case}: {} scales the scores' terms",
            node.name
        );
    }
}

/// Every head on every case's config (seeded weights where the checkpoint
/// has none): builds, passes -O2 and the pipeline's check of it.
#[test]
fn every_head_compiles_on_every_case() {
    use bertc::builder::Head;
    for case in CASES {
        let config = BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
        for head in Head::ALL {
            let opts = BuildOptions {
                head: Some(head),
                ..Default::default()
            };
            let c = compile(test_session(), &config, opts, &at_level(Level::O2))
                .unwrap_or_else(|e| panic!("{case} {head}: {e}"));
            assert!(!c.report.check.is_empty(), "{case} {head}: not checked");
        }
    }
}

/// The onnxruntime (dynamic and static) and OpenVINO (static Q/DQ) int8
/// forms quantize the bias-free Linears too, with the accuracy gate held:
/// as many int8 weights as the tract form (above) has integer products,
/// less the few Linears the gate's `--quantize-skip auto` keeps f32.
#[test]
fn every_int8_form_quantizes_the_bias_free_linears() {
    let dynamic = Form::Int8Dynamic;
    let static_ = Form::Int8Static(CalibrationMethod::MinMax);
    for (case, int8_linears) in INT8_LINEARS {
        for (form, target) in [
            (dynamic, Target::Onnxruntime),
            (static_, Target::Onnxruntime),
            (static_, Target::Openvino),
        ] {
            let (c, kept) = through_the_gate(case, form, target);
            assert_eq!(
                int8_weights(c.graph()) + kept,
                int8_linears,
                "{case} {form:?} --target {target:?}"
            );
        }
    }
}

/// DeBERTa's relative products are int8 in onnxruntime's dynamic form, and
/// `--quantize-skip` can name them as it names Linears: `c2p.all_rows` (a
/// product's name) keeps each layer's c2p product f32, its p2c int8; where
/// no form makes them int8 (tract's), the same pattern names nothing and is
/// refused as a typo.
#[test]
fn quantize_skip_names_deberta_s_relative_products() {
    use bertc::ir::{Graph, NodeId, Op};
    use bertc::quantize::Skip;
    let case = "deberta-v3-base";
    let config = BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
    let layers = config.num_hidden_layers;
    // MatMulInteger whose right operand is no constant: the relative
    // products (the attention stays f32 without --quantize-attention).
    let relative = |g: &Graph| {
        let computed =
            |id: NodeId| g.inputs_of(id)[1].is_some_and(|v| !matches!(g.node(v.node).op, Op::Constant(_)));
        g.node_ids()
            .filter(|&id| g.node(id).op == Op::MatMulInteger && computed(id))
            .count()
    };
    let options = |skip: &[&str], target: Target| PipelineOptions {
        precision: Precision {
            skip: Skip::Layers(skip.iter().map(|s| s.to_string()).collect()),
            ..Precision::new(Form::Int8Dynamic)
        },
        target,
        ..at_level(Level::O2)
    };
    let all = compiled(case, &options(&[], Target::Onnxruntime));
    assert_eq!(relative(all.graph()), 2 * layers, "c2p and p2c in every layer");
    let skipped = compiled(case, &options(&["c2p.all_rows"], Target::Onnxruntime));
    assert_eq!(relative(skipped.graph()), layers, "p2c only");
    // Refused as typos: a pattern naming nothing in onnxruntime's form (the
    // products counted apart from the Linears), and a product's name where
    // no form makes them int8 (tract's).
    let refusal = |pattern: &str, target: Target| {
        let opts = BuildOptions {
            weights: Some(case_dir(case).join("model.safetensors")),
            ..Default::default()
        };
        match compile(test_session(), &config, opts, &options(&[pattern], target)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("`{pattern}` accepted for {target:?}"),
        }
    };
    let typo = refusal("c2p.all_rowz", Target::Onnxruntime);
    let products = format!("nor its {} relative-position products (named like ", 2 * layers);
    assert!(typo.contains(&products), "{typo}");
    let tract = refusal("c2p.all_rows", Target::Portable);
    assert!(
        tract.contains("--quantize-skip `c2p.all_rows` matches none"),
        "{tract}"
    );
    assert!(!tract.contains("relative-position products"), "{tract}");
}

/// `--quantize-attention`: in onnxruntime's dynamic form, every layer that
/// scores all the keys gets its Q·Kᵀ and P·V as integer products (two
/// MatMulInteger on run-time operands; DeBERTa's c2p and p2c products,
/// integer in that form with or without the flag, one more each), ModernBERT's sliding layers (a few
/// keys per block after `block_sliding_attention`) keep their f32
/// `Attention`, and every case holds the same gate as without it, keeping
/// no more Linears f32 under `--quantize-skip auto` but in two cases (one
/// or two, below).
#[test]
fn int8_attention_quantizes_every_full_attention_through_the_gate() {
    use bertc::ir::{Graph, NodeId, Op};
    // Operands computed at run time: not a constant, nor a dequantized one.
    let computed = |g: &Graph, id: NodeId, dequantized: bool| {
        g.inputs_of(id)[..2].iter().all(|v| {
            v.is_some_and(|v| match (&g.node(v.node).op, dequantized) {
                (Op::Constant(_), _) => false,
                (Op::DequantizeLinear { .. }, true) => {
                    g.inputs_of(v.node)[0].is_some_and(|q| !matches!(g.node(q.node).op, Op::Constant(_)))
                }
                (_, dequantized) => !dequantized,
            })
        })
    };
    for (case, int8_linears) in INT8_LINEARS {
        let config = BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
        let layers = config.num_hidden_layers;
        let sliding = (0..layers)
            .filter(|&i| config.layer_attention(i) == bertc::config::LayerAttention::SlidingAttention)
            .count();
        // DeBERTa's relative terms, each a product against its table.
        let relative = config
            .disentangled
            .as_ref()
            .filter(|d| d.relative_attention)
            .map_or(0, |d| usize::from(d.c2p()) + usize::from(d.p2c()));
        let static_ = Form::Int8Static(CalibrationMethod::MinMax);
        for (form, target) in [
            (Form::Int8Dynamic, Target::Onnxruntime),
            (static_, Target::Openvino),
        ] {
            let what = format!("{case} {form:?} --target {target:?}");
            let (c, kept) = through_the_gate_with(case, form, target, true);
            let g = c.graph();
            let h = g.op_histogram();
            assert_eq!(int8_weights(g) + kept, int8_linears, "{what}");
            let (products, expected) = match target {
                // Integer products of two run-time operands; DeBERTa's
                // relative products (the table's side quantized from
                // constants, at load) in this form.
                Target::Onnxruntime => {
                    let attention = h.get("Attention").copied().unwrap_or(0);
                    assert_eq!(attention, sliding, "{what}: {h:?}");
                    let products = g
                        .node_ids()
                        .filter(|&id| g.node(id).op == Op::MatMulInteger && computed(g, id, false))
                        .count();
                    (products, 2 * (layers - sliding) + relative * layers)
                }
                // MatMuls of two dequantized run-time operands.
                _ => {
                    let products = g
                        .node_ids()
                        .filter(|&id| g.node(id).op == Op::MatMul && computed(g, id, true))
                        .count();
                    (products, 2 * (layers - sliding))
                }
            };
            assert_eq!(products, expected, "{what}: {h:?}");
        }
    }
}

/// The int8 weight matrices the graph's products read: MatMulInteger's
/// constant operand, or a DequantizeLinear of a constant int8 matrix.
fn int8_weights(g: &bertc::ir::Graph) -> usize {
    use bertc::ir::{DType, Op};
    let int8_matrix = |id| {
        let weight = g.inputs_of(id).get(1).copied().flatten();
        let table = g.inputs_of(id).first().copied().flatten();
        let is_matrix = |v: Option<bertc::ir::Value>| {
            v.is_some_and(|v| matches!(&g.node(v.node).op, Op::Constant(t) if t.dtype() == DType::I8 && t.dims().len() == 2))
        };
        match g.node(id).op {
            Op::MatMulInteger => is_matrix(weight),
            Op::DequantizeLinear { .. } => is_matrix(table),
            _ => false,
        }
    };
    g.node_ids().filter(|&id| int8_matrix(id)).count()
}

/// transformers 5's `config.json` of a case rewritten the way the
/// remote-code NomicBERT (`configuration_hf_nomic_bert.py`, what
/// nomic-embed-text-v1.5 ships) names its fields.
fn remote_code_config(case: &str, extra: &[(&str, serde_json::Value)]) -> String {
    let text = std::fs::read_to_string(case_dir(case).join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields = json.as_object_mut().unwrap();
    for (from, to) in [
        ("hidden_size", "n_embd"),
        ("num_hidden_layers", "n_layer"),
        ("num_attention_heads", "n_head"),
        ("intermediate_size", "n_inner"),
        ("max_position_embeddings", "n_positions"),
        ("layer_norm_eps", "layer_norm_epsilon"),
    ] {
        let v = fields.remove(from).unwrap();
        fields.insert(to.into(), v);
    }
    let theta = fields.remove("rope_parameters").unwrap()["rope_theta"].clone();
    fields.remove("hidden_act");
    fields.remove("head_dim");
    let remote = serde_json::json!({
        "rotary_emb_base": theta,
        "activation_function": "swiglu",
        "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": false,
        "rotary_emb_scale_base": null,
        "qkv_proj_bias": false,
        "mlp_fc1_bias": false,
        "mlp_fc2_bias": false,
        "prenorm": false,
        "causal": false,
    });
    for (k, v) in remote.as_object().unwrap() {
        fields.insert(k.clone(), v.clone());
    }
    for (k, v) in extra {
        fields.insert(k.to_string(), v.clone());
    }
    json.to_string()
}

/// The remote-code config of the same checkpoint reads as the same model:
/// the outputs match PyTorch's as the transformers 5 config's do.
#[test]
fn remote_code_configs_build_the_same_model() {
    for case in NOMIC {
        let remote = BertConfig::from_json_str(&remote_code_config(case, &[]), case).unwrap();
        let own = BertConfig::from_path(&case_dir(case).join("config.json")).unwrap();
        assert_eq!(
            (
                remote.hidden_size,
                remote.num_hidden_layers,
                remote.num_attention_heads
            ),
            (own.hidden_size, own.num_hidden_layers, own.num_attention_heads),
            "{case}"
        );
        assert_eq!(remote.intermediate_size, own.intermediate_size, "{case}");
        assert_eq!(
            (remote.rope_theta, remote.hidden_act),
            (own.rope_theta, own.hidden_act),
            "{case}"
        );
        assert_eq!(remote.layer_norm_eps, own.layer_norm_eps, "{case}");
        let golden = golden(&case_dir(case));
        let model = compiled_with(case, &remote, &at_level(Level::O2))
            .to_bytes()
            .unwrap();
        let out = run_tract(&model, &golden);
        assert_close(&format!("{case} remote-code config"), &out, &golden, ATOL);
    }
}

/// GTE's remote-code checkpoints (gte-base-en-v1.5) ask for NTK-scaled
/// rotary frequencies, `rope_scaling: {type: ntk, factor: 2.0}`, which
/// Alibaba's new-impl computes as `(θ·f)^(−2i/d) / f^(2/d)` (quoted at
/// `bertc::builder::ntk_inverse_frequencies`). Checked three ways: bertc's
/// frequencies against that formula evaluated here in f64; factor 1 is
/// the identity (gte-base still matches its PyTorch golden with it set);
/// factor 2 moves the outputs far beyond the tolerance. Its other forms
/// are refused by the field's name.
#[test]
fn gte_ntk_rope_scaling_is_the_remote_codes() {
    let (theta, dim, factor) = (500_000.0f64, 64usize, 2.0f64);
    let got = bertc::builder::ntk_inverse_frequencies(theta, dim, factor);
    assert_eq!(got.len(), dim / 2);
    for (i, &g) in got.iter().enumerate() {
        let want = 1.0 / (theta * factor).powf(2.0 * i as f64 / dim as f64) / factor.powf(2.0 / dim as f64);
        assert!(
            ((g as f64) - want).abs() <= want * 1e-6,
            "inv_freq[{i}]: {g} vs {want}"
        );
    }
    // Lower than the unscaled frequencies everywhere (longer wavelengths),
    // by exactly 1/f^(2/d) at i = 0.
    let plain = bertc::builder::inverse_frequencies(theta, dim);
    assert!(got.iter().zip(&plain).all(|(s, p)| s < p));
    assert!((got[0] as f64 - factor.powf(-2.0 / dim as f64)).abs() < 1e-6);

    let text = std::fs::read_to_string(case_dir("gte-base").join("config.json")).unwrap();
    let with_scaling = |scaling: serde_json::Value| {
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["rope_scaling"] = scaling;
        BertConfig::from_json_str(&json.to_string(), "gte rope_scaling")
    };
    let golden = golden(&case_dir("gte-base"));
    let run = |config: &BertConfig| {
        let model = compiled_with("gte-base", config, &at_level(Level::O2))
            .to_bytes()
            .unwrap();
        run_tract(&model, &golden)
    };
    let identity = with_scaling(serde_json::json!({"type": "ntk", "factor": 1.0})).unwrap();
    assert_eq!(identity.rope_ntk_factor, Some(1.0));
    assert_close("gte-base ntk factor 1", &run(&identity), &golden, ATOL);
    let scaled = with_scaling(serde_json::json!({"type": "ntk", "factor": 2.0})).unwrap();
    assert_eq!(scaled.rope_ntk_factor, Some(2.0));
    let out = run(&scaled);
    let moved = bertc::runtime::compare(
        "last_hidden_state",
        &out["last_hidden_state"],
        &golden["last_hidden_state"],
    );
    assert!(moved.max_abs > 1e-3, "ntk factor 2 moved only {}", moved.max_abs);

    for refused in [
        serde_json::json!({"type": "linear", "factor": 2.0}),
        serde_json::json!({"type": "ntk", "factor": 2.0, "mixed_b": 0.6}),
        serde_json::json!({"type": "ntk", "factor": 0.5}),
        serde_json::json!({"type": "ntk"}),
        serde_json::json!(2.0),
    ] {
        let e = with_scaling(refused.clone()).expect_err("refused").to_string();
        assert!(
            e.contains("`rope_scaling`") && e.contains("not supported"),
            "{refused}: {e}"
        );
    }
    let none = with_scaling(serde_json::Value::Null).unwrap();
    assert_eq!(none.rope_ntk_factor, None);
}

/// gte-base-en-v1.5's preset is its published remote-code config
/// (`models/gte-base-en-v1.5.json`: `model_type: "new"`, `NewModel`, RoPE
/// base 500000 with NTK factor 2, 8192 positions, no token types). Its
/// parameter count, 136,776,192, is the sum by hand below, which the hub
/// confirms twice: the model card lists gte-base-en-v1.5 at "137" (M) and
/// its fp32 `model.safetensors` at 547 MB (136,776,192 · 4 bytes =
/// 547.1 MB). Embeddings 30528·768 and their norm 2·768; per layer
/// qkv_proj 768·2304 + 2304, o_proj 768² + 768, up_gate_proj 768·6144
/// (no bias), down_proj 3072·768 + 768 and two norms 4·768.
#[test]
fn gte_base_preset_reads_its_published_config_and_count() {
    let c = bertc::pipeline::load_config("gte-base-en-v1.5").unwrap();
    assert_eq!(c.family, bertc::family::Family::Gte);
    assert_eq!(
        (
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            c.intermediate_size
        ),
        (12, 768, 12, 3072)
    );
    assert_eq!(
        (c.vocab_size, c.max_position_embeddings, c.type_vocab_size),
        (30528, 8192, 0)
    );
    assert_eq!((c.rope_theta, c.rope_ntk_factor), (Some(500_000.0), Some(2.0)));
    let parameters: usize = bertc::builder::bert_model_params(&c)
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .sum();
    let (h, i, v) = (768, 3072, 30528);
    let layer = h * 3 * h + 3 * h + h * h + h + h * 2 * i + i * h + h + 4 * h;
    assert_eq!(v * h + 2 * h + 12 * layer, 136_776_192);
    assert_eq!(parameters, 136_776_192);
    // The remote code's switches at another value are refused by name.
    let text = bertc::presets::preset("gte-base-en-v1.5").unwrap();
    for (field, value) in [
        ("position_embedding_type", serde_json::json!("absolute")),
        ("layer_norm_type", serde_json::json!("rms_norm")),
        ("pack_qkv", serde_json::json!(false)),
        ("logn_attention_scale", serde_json::json!(true)),
    ] {
        let mut json: serde_json::Value = serde_json::from_str(text).unwrap();
        json[field] = value;
        let e = BertConfig::from_json_str(&json.to_string(), "gte")
            .expect_err(field)
            .to_string();
        assert!(
            e.contains(&format!("`{field}`")) && e.contains("not supported"),
            "{field}: {e}"
        );
    }
}

/// The remote code's switches bertc does not build are refused, each by
/// its field's name, before any weight is read.
#[test]
fn remote_code_switches_bertc_does_not_build_are_refused() {
    for (field, value) in [
        ("rotary_emb_interleaved", serde_json::json!(true)),
        ("rotary_emb_fraction", serde_json::json!(0.5)),
        ("rotary_scaling_factor", serde_json::json!(2.0)),
        ("qkv_proj_bias", serde_json::json!(true)),
        ("mlp_fc1_bias", serde_json::json!(true)),
        ("prenorm", serde_json::json!(true)),
        ("activation_function", serde_json::json!("gelu")),
    ] {
        let text = remote_code_config("nomic-base", &[(field, value.clone())]);
        let e = BertConfig::from_json_str(&text, "remote")
            .expect_err(field)
            .to_string();
        assert!(
            e.contains(&format!("`{field}`")) && e.contains("not supported"),
            "{field} = {value}: {e}"
        );
    }
    // At their one value, as nomic-embed-text-v1.5 ships them, they read.
    let text = remote_code_config("nomic-base", &[("rotary_emb_fraction", serde_json::json!(1))]);
    BertConfig::from_json_str(&text, "remote").unwrap();
}

/// nomic-embed-text-v1.5's preset is its published remote-code config
/// (`models/nomic-embed-text-v1.5.json`): 12 layers of 768 with 12 heads,
/// a 3072-wide SwiGLU, vocabulary 30528, RoPE base 1000 set up for 8192
/// positions, no Linear biases. Its parameter count, 136,731,648, is the
/// hub's own (`safetensors.parameters.F32` of nomic-ai/nomic-embed-text-v1.5
/// on the Hugging Face API, quoted as 136,731,648 in public model registries;
/// the model card rounds to 137M) and the sum by hand: embeddings
/// 30528·768 + 2·768 + the norm's 2·768, and per layer Wqkv 768·2304,
/// out_proj 768², fc11, fc12 and fc2 3·768·3072 and two norms 4·768.
#[test]
fn nomic_embed_preset_reads_its_published_config_and_count() {
    let c = bertc::pipeline::load_config("nomic-embed-text-v1.5").unwrap();
    assert_eq!(
        (
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            c.intermediate_size
        ),
        (12, 768, 12, 3072)
    );
    assert_eq!(
        (c.vocab_size, c.max_position_embeddings, c.rope_theta),
        (30528, 8192, Some(1000.0))
    );
    assert_eq!(c.family, bertc::family::Family::NomicBert);
    let parameters: usize = bertc::builder::bert_model_params(&c)
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .sum();
    let (h, i, v) = (768, 3072, 30528);
    let by_hand = v * h + 2 * h + 2 * h + 12 * (h * 3 * h + h * h + 3 * h * i + 4 * h);
    assert_eq!(by_hand, 136_731_648);
    assert_eq!(parameters, 136_731_648);
}

/// The DeBERTa-v3 presets are microsoft's published hub configs
/// (`models/deberta-v3-*.json`, `models/mdeberta-v3-base.json`: the hub's
/// `"p2c|c2p"` string, 256 position buckets, shared keys, a layer-normed
/// table, no absolute positions or token types). Their parameter counts
/// are KerasHub's published ones for the same checkpoints
/// (`keras_hub/src/models/deberta_v3/deberta_v3_presets.py`, `params` of
/// deberta_v3_extra_small_en, _small_en, _base_en, _large_en and
/// _base_multi), which are transformers' `DebertaV2Model` counts, and
/// match microsoft's model cards: "86M backbone + 98M embedding" for base
/// (98,382,336 in the embeddings and their norm), 22M + 48M for xsmall,
/// 44M + 98M for small, "418M … embedding about 131M" for large (the
/// card's total omits a rounding: 434M counted). By hand for base:
/// 128100·768 + 2·768, the table 512·768 + 2·768, and per layer
/// 4·(768² + 768) + 2·(768·3072) + 3072 + 768 + 4·768.
#[test]
fn deberta_presets_have_their_published_parameter_counts() {
    for (name, layers, hidden, count) in [
        ("deberta-v3-xsmall", 12, 384, 70_682_112),
        ("deberta-v3-small", 6, 768, 141_304_320),
        ("deberta-v3-base", 12, 768, 183_831_552),
        ("deberta-v3-large", 24, 1024, 434_012_160),
        ("mdeberta-v3-base", 12, 768, 278_218_752),
    ] {
        let c = bertc::pipeline::load_config(name).unwrap();
        assert_eq!(c.family, bertc::family::Family::DebertaV2, "{name}");
        assert_eq!((c.num_hidden_layers, c.hidden_size), (layers, hidden), "{name}");
        let d = c.disentangled.as_ref().unwrap();
        assert_eq!(
            (d.span(c.max_position_embeddings), d.scale_factor()),
            (256, 3),
            "{name}"
        );
        let parameters: usize = bertc::builder::bert_model_params(&c)
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        assert_eq!(parameters, count, "{name}");
    }
    let (v, h, i) = (128_100, 768, 3072);
    let layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h;
    assert_eq!(v * h + 2 * h + 512 * h + 2 * h + 12 * layer, 183_831_552);
}

/// First-token pruning (-O2's `prune_to_first_token`) on the new families'
/// classifiers: those that read position 0 only (NomicBERT's and GTE's
/// pooler, ModernBERT's `cls` pooling, Jina's RoBERTa-style head,
/// DeBERTa's ContextPooler, v1 and v3) run their last layer on that
/// position alone and still match PyTorch (checked here at 1e-4 on every
/// output); those that read every token (ModernBERT's `mean` pooling,
/// EuroBERT's `late` pooling, token and span heads, the MLM heads) are
/// left whole.
#[test]
fn first_token_pruning_where_the_classifier_reads_position_0() {
    for (case, prunes) in [
        ("nomic-cls", true),
        ("gte-cls", true),
        ("modernbert-cls", true),
        ("jina-v3-cls", true),
        ("deberta-v3-cls", true),
        ("deberta-v1-cls", true),
        ("modernbert-cls-mean", false),
        ("eurobert-cls", false),
        ("modernbert-tok", false),
        ("deberta-v3-qa", false),
        ("gte-mlm", false),
    ] {
        let c = compiled(case, &at_level(Level::O2));
        let matches: usize = c
            .report
            .passes
            .iter()
            .filter(|run| run.pass == "prune_to_first_token")
            .map(|run| run.report.matches)
            .sum();
        assert_eq!(matches > 0, prunes, "{case}: {matches} pruned");
        let golden = golden(&case_dir(case));
        let out = run_tract(&c.to_bytes().unwrap(), &golden);
        assert_close(&format!("{case} pruned"), &out, &golden, ATOL);
    }
}

/// Export folders (`-o DIR/` with `--target a,b --precision p,q`) from each
/// new family's case folder: one model file per form, every one listed in
/// `bertc_export.json`, the int8 ones through their accuracy gate.
#[test]
fn export_folders_hold_every_form_of_each_new_family() {
    let tmp = tempfile::tempdir().unwrap();
    for case in [
        "nomic-cls",
        "gte-cls",
        "modernbert-cls",
        "jina-v3-cls",
        "eurobert-cls",
        "deberta-v3-cls",
        "deberta-v1-cls",
    ] {
        let out = tmp.path().join(case);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args(["compile", case_dir(case).to_str().unwrap(), "-o"])
            .arg(format!("{}/", out.display()))
            .args(["--target", "tract,onnxruntime", "--precision", "fp32,int8"])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let manifest = std::fs::read_to_string(out.join("bertc_export.json")).unwrap();
        for file in [
            "model.onnx",
            "model_tract_int8.onnx",
            "model_onnxruntime.onnx",
            "model_onnxruntime_int8.onnx",
        ] {
            assert!(out.join(file).is_file(), "{case}: no {file}");
            assert!(manifest.contains(file), "{case}: {file} not listed: {manifest}");
        }
    }
}
