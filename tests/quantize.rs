//! Reduced precision on the real all-MiniLM-L6-v2: int8 (dynamic and
//! static) and f16 weights against PyTorch's golden outputs, in tract and
//! in onnxruntime; file sizes, op counts and byte-identical reruns.

mod common;

use bertc::compile::{compile, CompileOptions};
use bertc::config::BertConfig;
use bertc::ir::Graph;
use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{level_passes, Level, PassManager, WeightGranularity};
use bertc::quantize::{apply, calibration_batches, cosine, CalibrationMethod, Precision, PrecisionOptions};
use bertc::runtime::{read_safetensors, HostTensor, NamedTensors};
use common::*;

/// The golden README's tolerances.
const INT8_MIN_COSINE: f64 = 0.99;
const FP16_MAX_ABS: f64 = 2e-2;
const FP16_MIN_COSINE: f64 = 0.9999;

fn minilm_fp32() -> Graph {
    let dir = minilm_dir();
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let opts = CompileOptions {
        weights: Some(dir.join("model.safetensors")),
        ..Default::default()
    };
    let passes = PassManager::from_names(level_passes(Level::O2)).unwrap();
    compile(&config, &opts, &passes).unwrap().graph
}

fn golden() -> NamedTensors {
    read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap()
}

fn with(precision: Precision) -> PrecisionOptions {
    PrecisionOptions {
        precision,
        weights: WeightGranularity::PerChannel,
        skip: vec![],
        embeddings: true,
        target: bertc::passes::Target::Portable,
    }
}

fn reduced(g: &Graph, opts: &PrecisionOptions) -> Vec<u8> {
    let mut g = g.clone();
    apply(&mut g, opts).unwrap();
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

fn assert_int8_accuracy(what: &str, model: &[u8]) {
    let golden = golden();
    let tract = run_tract(model, &golden);
    let cos = row_cosines(&tract, &golden);
    eprintln!("{what}: tract sentence_embedding cosines {cos:.5?}");
    assert!(
        cos.iter().all(|&c| c >= INT8_MIN_COSINE),
        "{what} in tract: row cosines {cos:?} below {INT8_MIN_COSINE}"
    );
    let ort = run_onnxruntime(model, &golden);
    let cos = row_cosines(&ort, &golden);
    eprintln!("{what}: onnxruntime sentence_embedding cosines {cos:.5?}");
    assert!(
        cos.iter().all(|&c| c >= INT8_MIN_COSINE),
        "{what} in onnxruntime: row cosines {cos:?} below {INT8_MIN_COSINE}"
    );
}

#[test]
fn minilm_int8_dynamic_meets_golden_cosine() {
    let fp32 = minilm_fp32();
    let model = reduced(&fp32, &with(Precision::Int8Dynamic));
    assert_int8_accuracy("MiniLM int8 dynamic", &model);
}

#[test]
fn minilm_int8_static_meets_golden_cosine() {
    let fp32 = minilm_fp32();
    // Generated calibration inputs: never the golden sentences.
    let batches = calibration_batches(&fp32, None, 4, 128, 8).unwrap();
    let model = reduced(
        &fp32,
        &with(Precision::Int8Static {
            batches,
            method: CalibrationMethod::MinMax,
        }),
    );
    assert_int8_accuracy("MiniLM int8 static", &model);
}

#[test]
fn minilm_fp16_meets_golden_tolerance() {
    let fp32 = minilm_fp32();
    let model = reduced(&fp32, &with(Precision::Fp16));
    let golden = golden();
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
    let opts = with(Precision::Int8Dynamic);
    let mut g = fp32.clone();
    apply(&mut g, &opts).unwrap();
    let ops = g.op_histogram();
    // 6 layers × (Q, K, V, attention output, FFN in, FFN out) + the pooler.
    assert_eq!(ops.get("MatMulInteger"), Some(&37), "{ops:?}");
    // Q, K and V share one quantization of their input: 4 per layer + pooler.
    assert_eq!(ops.get("Round"), Some(&25), "{ops:?}");
    let int8 = export_bytes(&g, ExportOptions::default()).unwrap();
    let ratio = int8.len() as f64 / fp32_size as f64;
    eprintln!(
        "MiniLM sizes: fp32 {fp32_size} bytes, int8 {} bytes ({ratio:.3}x)",
        int8.len()
    );
    assert!(ratio <= 0.3, "int8 file is {ratio:.3}x the fp32 one");
    assert_eq!(int8, reduced(&fp32, &opts), "int8 compile is not byte-identical");
}

/// `--min-cosine` refuses to write a model below it: error naming the
/// output, non-zero exit, no file; the same compile passes the default gate.
#[test]
fn min_cosine_gate_refuses_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int8.onnx");
    let bertc = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args(["compile", "bert-tiny", "--quantize", "dynamic", "-o"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = bertc(&["--min-cosine", "0.9999999"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "wrote a model below --min-cosine");
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
}

/// `--calibrate FILE` with percentile ranges: a valid file compiles, a file
/// missing a model input is an error naming it, and nothing is written.
#[test]
fn calibration_file_is_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad, out) = (
        dir.path().join("calib.safetensors"),
        dir.path().join("bad.safetensors"),
        dir.path().join("static.onnx"),
    );
    let mut inputs = bertc::runtime::realistic_inputs(30522, 2, 6, 32, 5);
    bertc::runtime::write_safetensors(&good, &inputs).unwrap();
    inputs.remove("token_type_ids");
    bertc::runtime::write_safetensors(&bad, &inputs).unwrap();
    let bertc = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args([
                "compile",
                "bert-tiny",
                "--quantize",
                "static",
                "--calibration-method",
            ])
            .args(["percentile", "--calibrate"])
            .arg(file)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap()
    };
    let refused = bertc(&bad);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("token_type_ids"), "{stderr}");
    assert!(!out.exists());
    let ok = bertc(&good);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let g = bertc::onnx::read_model(&out).unwrap();
    // Calibrated inputs: per layer Q/K/V's, attention output's and FFN in's
    // (FFN out's GELU input stays per token), plus the pooler's.
    assert_eq!(g.op_histogram().get("Clip"), Some(&(2 * 3 + 1)));
}
