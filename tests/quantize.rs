//! Reduced precision on the real all-MiniLM-L6-v2: int8 (dynamic and
//! static) and f16 weights against PyTorch's golden outputs, in tract and
//! in onnxruntime; file sizes, op counts and byte-identical reruns.

mod common;

use bertc::ir::Graph;
use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{Level, Target};
use bertc::pipeline::BuildOptions;
use bertc::quantize::{apply, calibration_batches, cosine, CalibrationMethod, Form, Precision};
use bertc::runtime::{HostTensor, NamedTensors};
use common::*;

/// The golden README's tolerances.
const INT8_MIN_COSINE: f64 = 0.99;
/// Per token of `last_hidden_state` (real tokens only) and per sentence of
/// `pooler_output`, int8 against PyTorch. Measured on the golden sentences
/// (tract and onnxruntime alike, on AVX-512 VNNI): dynamic 0.9919 (worst
/// token) and 0.9926 (worst pooler row); static 0.9923 and 0.9980 since
/// attention contexts keep per-token scales (0.9879 and 0.9872 before).
/// tract's int8 products are exact on every x86 kernel (VNNI, or AVX2
/// widening to 16 bits), so it is held to 0.99; onnxruntime's s8 kernels
/// may saturate 16-bit pair sums on AVX2 without VNNI (session 7's exact
/// emulation moved its worst rows by up to 0.006), so it keeps 0.98 there.
const INT8_MIN_TOKEN_COSINE: f64 = 0.99;
const INT8_MIN_POOLER_COSINE: f64 = 0.99;
const INT8_MIN_TOKEN_COSINE_ORT: f64 = 0.98;
const INT8_MIN_POOLER_COSINE_ORT: f64 = 0.98;
const FP16_MAX_ABS: f64 = 2e-2;
const FP16_MIN_COSINE: f64 = 0.9999;

/// `g` rewritten to `form` for the portable target, with `compile`'s
/// defaults (generated calibration), serialized.
fn reduced(g: &Graph, form: Form) -> Vec<u8> {
    let mut g = g.clone();
    apply(test_session(), &mut g, &Precision::new(form), Target::Portable).unwrap();
    export_bytes(&g, ExportOptions::default()).unwrap()
}

/// Mean of last_hidden_state over real tokens, L2-normalised: [B, H].
fn sentence_embedding(last_hidden_state: &HostTensor, mask: &HostTensor) -> Vec<Vec<f32>> {
    let (b, s, h) = (
        last_hidden_state.shape[0],
        last_hidden_state.shape[1],
        last_hidden_state.shape[2],
    );
    let (x, m) = (last_hidden_state.to_f32(), mask.to_f32());
    (0..b)
        .map(|i| {
            let mut sum = vec![0f32; h];
            let mut n = 0f32;
            for t in 0..s {
                if m[i * s + t] != 0.0 {
                    n += 1.0;
                    for (acc, v) in sum.iter_mut().zip(&x[(i * s + t) * h..(i * s + t + 1) * h]) {
                        *acc += v;
                    }
                }
            }
            sum.iter_mut().for_each(|v| *v /= n.max(1.0));
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            sum.iter().map(|v| v / norm).collect()
        })
        .collect()
}

/// Cosine of each sentence_embedding row with the golden one.
fn row_cosines(outputs: &NamedTensors, golden: &NamedTensors) -> Vec<f64> {
    let ours = sentence_embedding(&outputs["last_hidden_state"], &golden["attention_mask"]);
    let want = golden["sentence_embedding"].to_f32();
    let h = want.len() / ours.len();
    ours.iter()
        .enumerate()
        .map(|(i, row)| cosine(row, &want[i * h..(i + 1) * h]))
        .collect()
}

/// The lowest cosine, over the real tokens (mask 1) of every sentence,
/// between a token's `last_hidden_state` vector and PyTorch's.
fn min_token_cosine(outputs: &NamedTensors, golden: &NamedTensors) -> f64 {
    let (ours, want) = (&outputs["last_hidden_state"], &golden["last_hidden_state"]);
    assert_eq!(ours.shape, want.shape);
    let h = ours.shape[2];
    let (a, b, mask) = (ours.to_f32(), want.to_f32(), golden["attention_mask"].to_f32());
    let mut worst = f64::INFINITY;
    let mut tokens = 0;
    for (t, &m) in mask.iter().enumerate() {
        if m != 0.0 {
            worst = worst.min(cosine(&a[t * h..(t + 1) * h], &b[t * h..(t + 1) * h]));
            tokens += 1;
        }
    }
    assert!(tokens > 0, "the golden inputs have no real token");
    worst
}

/// The lowest cosine between a sentence's `pooler_output` and PyTorch's.
fn min_pooler_cosine(outputs: &NamedTensors, golden: &NamedTensors) -> f64 {
    let (ours, want) = (&outputs["pooler_output"], &golden["pooler_output"]);
    assert_eq!(ours.shape, want.shape);
    let h = ours.shape[1];
    let (a, b) = (ours.to_f32(), want.to_f32());
    a.chunks(h)
        .zip(b.chunks(h))
        .map(|(x, y)| cosine(x, y))
        .fold(f64::INFINITY, nan_is_worst)
}

/// Against PyTorch, in tract and in onnxruntime: the sentence embedding of
/// every sentence, every real token's `last_hidden_state` and every
/// sentence's `pooler_output` (a per-token error can hide in a mean).
fn assert_int8_accuracy(what: &str, model: &[u8]) {
    let golden = minilm_golden();
    for (runtime, outputs) in [
        ("tract", run_tract(model, &golden)),
        ("onnxruntime", run_onnxruntime(model, &golden)),
    ] {
        let cos = row_cosines(&outputs, &golden);
        let token = min_token_cosine(&outputs, &golden);
        let pooler = min_pooler_cosine(&outputs, &golden);
        eprintln!(
            "{what} in {runtime}: sentence_embedding cosines {cos:.5?}, min token cosine {token:.5}, min pooler_output cosine {pooler:.5}"
        );
        assert!(
            cos.iter().all(|&c| c >= INT8_MIN_COSINE),
            "{what} in {runtime}: row cosines {cos:?} below {INT8_MIN_COSINE}"
        );
        let (min_token, min_pooler) = match runtime {
            "tract" => (INT8_MIN_TOKEN_COSINE, INT8_MIN_POOLER_COSINE),
            _ => (INT8_MIN_TOKEN_COSINE_ORT, INT8_MIN_POOLER_COSINE_ORT),
        };
        assert!(
            token >= min_token,
            "{what} in {runtime}: a token's last_hidden_state has cosine {token} < {min_token}"
        );
        assert!(
            pooler >= min_pooler,
            "{what} in {runtime}: a sentence's pooler_output has cosine {pooler} < {min_pooler}"
        );
    }
}

#[test]
fn minilm_int8_dynamic_meets_golden_cosine() {
    let fp32 = minilm_fp32();
    let model = reduced(&fp32, Form::Int8Dynamic);
    assert_int8_accuracy("MiniLM int8 dynamic", &model);
}

#[test]
fn minilm_int8_static_meets_golden_cosine() {
    let fp32 = minilm_fp32();
    // Generated calibration inputs: never the golden sentences.
    let model = reduced(&fp32, Form::Int8Static(CalibrationMethod::MinMax));
    assert_int8_accuracy("MiniLM int8 static", &model);
}

#[test]
fn minilm_fp16_meets_golden_tolerance() {
    let fp32 = minilm_fp32();
    let model = reduced(&fp32, Form::Fp16);
    let golden = minilm_golden();
    for (runtime, outputs) in [
        ("tract", run_tract(&model, &golden)),
        ("onnxruntime", run_onnxruntime(&model, &golden)),
    ] {
        let worst = assert_close(&format!("MiniLM fp16 {runtime}"), &outputs, &golden, FP16_MAX_ABS);
        let cos = row_cosines(&outputs, &golden);
        eprintln!("MiniLM fp16 {runtime}: max-abs {worst:e}, sentence_embedding cosines {cos:.7?}");
        assert!(
            cos.iter().all(|&c| c >= FP16_MIN_COSINE),
            "MiniLM fp16 {runtime}: row cosines {cos:?} below {FP16_MIN_COSINE}"
        );
    }
}

#[test]
fn minilm_int8_size_op_counts_and_determinism() {
    let fp32 = minilm_fp32();
    let fp32_size = export_bytes(&fp32, ExportOptions::default()).unwrap().len();
    let mut g = fp32.clone();
    apply(
        test_session(),
        &mut g,
        &Precision::new(Form::Int8Dynamic),
        Target::Portable,
    )
    .unwrap();
    let ops = g.op_histogram();
    // 6 layers × (Q, K, V, attention output, FFN in, FFN out) + the pooler.
    assert_eq!(ops.get("MatMulInteger"), Some(&37), "{ops:?}");
    // Q, K and V share one quantization of their input: 4 per layer + pooler,
    // each ranged by one ReduceMax + ReduceMin (no Abs pass; a Gelu output,
    // bounded below, by its ReduceMax alone) and rounded by the bias
    // addition fused into its multiply (no Round op).
    assert_eq!(ops.get("ReduceMax"), Some(&25), "{ops:?}");
    assert_eq!(ops.get("ReduceMin"), Some(&19), "{ops:?}");
    // Each scale is exp(ln 127 - ln max|x|): tract's Exp clears the state its
    // reductions leave, which slowed the Cast after them 3x.
    assert_eq!(ops.get("Exp"), Some(&25), "{ops:?}");
    assert_eq!(ops.get("Round"), None, "{ops:?}");
    assert_eq!(ops.get("Abs"), None, "{ops:?}");
    let int8 = export_bytes(&g, ExportOptions::default()).unwrap();
    let ratio = int8.len() as f64 / fp32_size as f64;
    eprintln!(
        "MiniLM sizes: fp32 {fp32_size} bytes, int8 {} bytes ({ratio:.3}x)",
        int8.len()
    );
    assert!(ratio <= 0.3, "int8 file is {ratio:.3}x the fp32 one");
    assert_eq!(
        int8,
        reduced(&fp32, Form::Int8Dynamic),
        "int8 compile is not byte-identical"
    );
}

/// `bertc compile bert-tiny ARGS -o OUT EXTRA`, run.
fn compile_bert_tiny(args: &[&str], out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny"])
        .args(args)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// `--min-cosine` refuses to write a model below it: error naming the
/// output, non-zero exit, no file; the same compile passes the default gate.
/// `--min-row-cosine` likewise.
#[test]
fn min_cosine_gate_refuses_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int8.onnx");
    let bertc = |extra: &[&str]| compile_bert_tiny(&["--quantize", "dynamic"], &out, extra);
    let refused = bertc(&["--min-cosine", "0.9999999"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "wrote a model below --min-cosine");
    // A gate that measured and failed exits 1, as validate's does; usage
    // and input errors exit 2 (README "Exit codes").
    assert_eq!(refused.status.code(), Some(1), "a failed gate exits 1");
    assert!(stderr.contains("below --min-cosine"), "{stderr}");
    assert!(!out.exists(), "a refused model was written");
    let written = bertc(&[]);
    let stdout = String::from_utf8_lossy(&written.stdout);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(stdout.contains("accuracy    last_hidden_state"), "{stdout}");
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    // The row bar: refused the same way (its own flag named), exit 1; a
    // bar out of range, or one on fp32, is a usage error (exit 2).
    let refused = bertc(&["--min-row-cosine", "0.9999999"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("below --min-row-cosine 0.9999999"), "{stderr}");
    assert!(!out.exists(), "a refused model was written");
    let out_of_range = bertc(&["--min-row-cosine", "1.5"]);
    let stderr = String::from_utf8_lossy(&out_of_range.stderr);
    assert_eq!(out_of_range.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--min-row-cosine must be within 0 and 1"),
        "{stderr}"
    );
    assert!(!out.exists());
    let held = bertc(&["--min-row-cosine", "0.99"]);
    assert!(held.status.success(), "{}", String::from_utf8_lossy(&held.stderr));
    assert!(out.exists());
}

/// `--quantize-attention`: onnxruntime's dynamic int8 form with the
/// attention's products int8 too (two run-time MatMulInteger per layer on
/// top of the linears', no Attention left), and OpenVINO's static form,
/// written through the gate; on any other form a usage error (exit 2)
/// naming the flag, nothing written.
#[test]
fn quantize_attention_flag_writes_onnxruntime_s_dynamic_and_openvino_s_static_forms() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int8.onnx");
    let bertc = |extra: &[&str]| compile_bert_tiny(&["--quantize-attention"], &out, extra);
    for (extra, says) in [
        (&[][..], "--quantize-attention applies only to int8"),
        (
            &["--quantize", "dynamic"][..],
            "needs --target onnxruntime --quantize dynamic or --target openvino --quantize static",
        ),
        (
            &["--quantize", "static", "--target", "onnxruntime"][..],
            "(got --target onnxruntime, int8-static)",
        ),
        // No fused attention to quantize: below -O2, or decomposed around
        // --packed's gathers.
        (
            &["--quantize", "static", "--target", "openvino", "-O1"][..],
            "with -O1 there is none to quantize",
        ),
        (
            &["--quantize", "dynamic", "--target", "onnxruntime", "--packed"][..],
            "which --packed writes decomposed",
        ),
    ] {
        let refused = bertc(extra);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?}: a model was written");
    }
    let written = bertc(&["--quantize", "dynamic", "--target", "onnxruntime"]);
    let stdout = String::from_utf8_lossy(&written.stdout);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(stdout.contains("accuracy    last_hidden_state"), "{stdout}");
    let g = bertc::onnx::read_model(&out).unwrap();
    let h = g.op_histogram();
    // bert-tiny: 2 layers of 6 linears, the pooler, 2 attention products
    // per layer.
    assert_eq!(h.get("MatMulInteger"), Some(&(2 * 6 + 1 + 2 * 2)), "{h:?}");
    assert_eq!(h.get("Attention"), None, "{h:?}");
    // OpenVINO's static form: Q/DQ pairs around both products of each
    // layer, no Softmax left (the numerators' form: 3 Exp a layer, the
    // numerators and the padding mask's key weights twice).
    std::fs::remove_file(&out).unwrap();
    let written = bertc(&["--quantize", "static", "--target", "openvino"]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let h = bertc::onnx::read_model(&out).unwrap().op_histogram();
    assert_eq!(h.get("Softmax"), None, "{h:?}");
    assert_eq!(h.get("Exp"), Some(&(3 * 2)), "{h:?}");
    assert_eq!(h.get("Attention"), None, "{h:?}");
}

/// `--calibrate FILE`: a file missing a model input is an error naming it
/// and nothing is written; a valid file is what the ranges come from — the
/// written model is byte for byte the library's static quantization
/// calibrated on that file's rows (min-max, so the batching does not
/// matter), and differs from a model calibrated on generated inputs or on
/// another file.
#[test]
fn calibration_file_is_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f);
    let mut inputs = bertc::runtime::realistic_inputs(30522, 2, 6, 32, 5);
    bertc::runtime::write_safetensors(&path("calib.safetensors"), &inputs).unwrap();
    let other = bertc::runtime::realistic_inputs(30522, 2, 6, 32, 6);
    bertc::runtime::write_safetensors(&path("other.safetensors"), &other).unwrap();
    inputs.remove("token_type_ids");
    bertc::runtime::write_safetensors(&path("bad.safetensors"), &inputs).unwrap();
    let bertc = |method: &str, file: Option<&str>, out: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"));
        cmd.args([
            "compile",
            "bert-tiny",
            "--quantize",
            "static",
            "--calibration-method",
            method,
        ]);
        if let Some(f) = file {
            cmd.arg("--calibrate").arg(path(f));
        }
        cmd.arg("-o").arg(path(out)).output().unwrap()
    };
    let refused = bertc("percentile", Some("bad.safetensors"), "bad.onnx");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("token_type_ids"), "{stderr}");
    assert!(!path("bad.onnx").exists());

    for (file, out) in [
        (Some("calib.safetensors"), "file.onnx"),
        (Some("other.safetensors"), "other.onnx"),
        (None, "generated.onnx"),
    ] {
        let done = bertc("minmax", file, out);
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    }
    let written = std::fs::read(path("file.onnx")).unwrap();
    let g = bertc::onnx::import_bytes(&written).unwrap();
    // Calibrated inputs: per layer the two layer norms' outputs, Q/K/V's
    // and FFN in's (the attention context, the attention output's input,
    // and FFN out's GELU input stay per token), plus the pooler's.
    assert_eq!(g.op_histogram().get("Clip"), Some(&(2 * 2 + 1)));

    // The library's static quantization on the file's rows: the same pipeline.
    let config = bertc::pipeline::load_config("bert-tiny").unwrap();
    let fp32 = bertc::pipeline::compile(
        test_session(),
        &config,
        BuildOptions::default(),
        &bertc::pipeline::at_level(Level::O2),
    )
    .unwrap()
    .into_graph();
    let batches = calibration_batches(&fp32, Some(&path("calib.safetensors"))).unwrap();
    assert_eq!(batches.len(), 2, "the file's 6 rows in batches of 4");
    let options = bertc::pipeline::PipelineOptions {
        precision: Precision {
            calibrate: Some(path("calib.safetensors")),
            ..Precision::new(Form::Int8Static(CalibrationMethod::MinMax))
        },
        ..bertc::pipeline::at_level(Level::O2)
    };
    let int8 = bertc::pipeline::compile(test_session(), &config, BuildOptions::default(), &options)
        .unwrap()
        .into_graph();
    let expected = export_bytes(&int8, ExportOptions::default()).unwrap();
    assert!(
        written == expected,
        "the model written with --calibrate is not the one calibrated on the file"
    );
    for other in ["other.onnx", "generated.onnx"] {
        assert!(
            written != std::fs::read(path(other)).unwrap(),
            "calibrating on calib.safetensors and {other} gave the same model"
        );
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
