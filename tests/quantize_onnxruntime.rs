//! `--target onnxruntime --quantize dynamic` on the real all-MiniLM-L6-v2:
//! the emitted pattern (op counts), onnxruntime's optimizer fusing every
//! integer product into its MatMulIntegerToFloat / DynamicQuantizeMatMul
//! kernels, and the sentence embeddings against PyTorch's golden in tract
//! (before the contrib-op lowering) and in onnxruntime (after it).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{
    quantize_weight_s8, target_passes, weight_bits_for_cpu, Level, PassManager, Target, WeightBits,
    WeightGranularity,
};
use bertc::quantize::{apply, cosine, Form, Precision, Skip};
use bertc::runtime::NamedTensors;
use common::*;

/// The bar: every sentence-embedding row (onnxruntime's own
/// `quantize_dynamic`, per channel: 0.986).
const MIN_ROW_COSINE: f64 = 0.99;

/// Cosine of each row's sentence embedding (mean of last_hidden_state over
/// real tokens, L2-normalised) with the golden one.
fn row_cosines(outputs: &NamedTensors, golden: &NamedTensors) -> Vec<f64> {
    let h = &outputs["last_hidden_state"];
    let (b, s, w) = (h.shape[0], h.shape[1], h.shape[2]);
    let (x, m, want) = (
        h.to_f32(),
        golden["attention_mask"].to_f32(),
        golden["sentence_embedding"].to_f32(),
    );
    (0..b)
        .map(|i| {
            let mut sum = vec![0f32; w];
            for t in (0..s).filter(|t| m[i * s + t] != 0.0) {
                for (acc, v) in sum.iter_mut().zip(&x[(i * s + t) * w..(i * s + t + 1) * w]) {
                    *acc += v;
                }
            }
            cosine(&sum, &want[i * w..(i + 1) * w])
        })
        .collect()
}

/// The op histogram of the model after onnxruntime's own optimizer.
fn onnxruntime_optimized_ops(model: &[u8]) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, model).unwrap();
    let out = Command::new("python3")
        .arg(root().join("scripts/ort_optimized_ops.py"))
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON op histogram")
}

/// `--quantize dynamic` with compile's defaults, calibrated (for the
/// onnxruntime form) on the inputs in `calibrate` (generated inputs when
/// `None`).
fn dynamic(calibrate: Option<std::path::PathBuf>) -> Precision {
    Precision {
        calibrate,
        ..Precision::new(Form::Int8Dynamic)
    }
}

const ORT: Target = Target::Onnxruntime;

#[test]
fn minilm_onnxruntime_int8_fuses_and_meets_minilm_golden() {
    let mut g = minilm_fp32();
    apply(test_session(), &mut g, &dynamic(None), ORT).unwrap();
    let ops = g.op_histogram();
    // 6 layers × (Q, K, V, attention output, FFN in, FFN out) + the pooler.
    assert_eq!(ops.get("MatMulInteger"), Some(&37), "{ops:?}");
    // One quantization per distinct input: 4 per layer + the pooler's.
    assert_eq!(ops.get("DynamicQuantizeLinear"), Some(&25), "{ops:?}");
    // Per-token scales on the FFN output layers' Gelu inputs whose tokens
    // are uneven: [CLS] dominates layers 0-4; layer 5's rows are even.
    assert_eq!(ops.get("ReduceMax"), Some(&4), "{ops:?}");
    // Smoothing on the layer-norm inputs (Q/K/V and FFN input of 6 layers),
    // every one of which has outlier channels.
    let smoothed = g
        .node_ids()
        .filter(|&id| g.node(id).name.ends_with(".smoothed"))
        .count();
    assert_eq!(smoothed, 12, "smoothing Muls");
    let golden = minilm_golden();

    // tract gates the standard-op form, before the contrib lowering.
    let portable = export_bytes(&g, ExportOptions::default()).unwrap();
    let cos = row_cosines(&run_tract(&portable, &golden), &golden);
    eprintln!("MiniLM int8 onnxruntime form, tract: sentence_embedding cosines {cos:.5?}");
    assert!(cos.iter().all(|&c| c >= MIN_ROW_COSINE), "tract: {cos:?}");

    PassManager::from_names(target_passes(Target::Onnxruntime, Level::O2))
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    let model = export_bytes(&g, ExportOptions::default()).unwrap();
    let cos = row_cosines(&run_onnxruntime(&model, &golden), &golden);
    eprintln!("MiniLM int8 onnxruntime form, onnxruntime: sentence_embedding cosines {cos:.5?}");
    assert!(cos.iter().all(|&c| c >= MIN_ROW_COSINE), "onnxruntime: {cos:?}");

    // bertc reads its own onnxruntime file back (contrib ops included) and
    // writes the same bytes.
    let again = bertc::onnx::import_bytes(&model).unwrap();
    assert_eq!(export_bytes(&again, ExportOptions::default()).unwrap(), model);

    // Every integer product runs in onnxruntime's fused int8 kernels.
    let fused = onnxruntime_optimized_ops(&model);
    let count = |op: &str| fused.get(op).copied().unwrap_or(0);
    assert_eq!(count("MatMulInteger"), 0, "{fused:?}");
    assert_eq!(
        count("MatMulIntegerToFloat") + count("DynamicQuantizeMatMul"),
        37,
        "{fused:?}"
    );
    // The residual layer norms stay onnxruntime's vectorized
    // LayerNormalization (12 + the embeddings'), not its scalar
    // SkipLayerNormalization, and every bias, the FFN input's included,
    // rides in an integer kernel or a plain Add: no BiasGelu.
    assert_eq!(count("SkipLayerNormalization"), 0, "{fused:?}");
    assert_eq!(count("LayerNormalization"), 13, "{fused:?}");
    assert_eq!(count("BiasGelu"), 0, "{fused:?}");
}

/// `--quantize-attention` on MiniLM, compiled as `compile --target
/// onnxruntime --quantize dynamic --quantize-attention` does (the gate in
/// tract, then the lowering): both attention products of every layer are
/// integer products, run in onnxruntime's u8 × s8 kernels as the linears
/// are — the speed the form is for — and the sentence embeddings still
/// meet the golden bar in onnxruntime.
#[test]
fn minilm_int8_attention_fuses_and_meets_minilm_golden() {
    use bertc::config::BertConfig;
    use bertc::pipeline::{at_level, compile, BuildOptions, PipelineOptions};
    let dir = minilm_dir();
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let opts = BuildOptions {
        weights: Some(dir.join("model.safetensors")),
        ..Default::default()
    };
    let options = PipelineOptions {
        precision: Precision {
            attention: true,
            ..dynamic(None)
        },
        target: ORT,
        ..at_level(Level::O2)
    };
    let c = compile(test_session(), &config, opts, &options).unwrap();
    let ops = c.graph().op_histogram();
    // 37 linears (above) and 2 products in each of the 6 layers.
    assert_eq!(ops.get("MatMulInteger"), Some(&(37 + 2 * 6)), "{ops:?}");
    assert_eq!(ops.get("Attention"), None, "{ops:?}");
    let model = c.to_bytes().unwrap();
    let golden = minilm_golden();
    let cos = row_cosines(&run_onnxruntime(&model, &golden), &golden);
    eprintln!("MiniLM int8 + attention, onnxruntime: sentence_embedding cosines {cos:.5?}");
    assert!(cos.iter().all(|&c| c >= MIN_ROW_COSINE), "onnxruntime: {cos:?}");
    // The linears and Q·Kᵀ fused into the float-output kernels; P·V stays
    // MatMulInteger (its integer sums are divided by their own last column
    // before any scale: nothing to fuse), the same u8 × s8 MLAS kernel.
    let fused = onnxruntime_optimized_ops(&model);
    let count = |op: &str| fused.get(op).copied().unwrap_or(0);
    assert_eq!(count("MatMulInteger"), 6, "{fused:?}");
    assert_eq!(
        count("MatMulIntegerToFloat") + count("DynamicQuantizeMatMul"),
        37 + 6,
        "{fused:?}"
    );
}

#[test]
fn seven_bit_weights_without_vnni() {
    assert_eq!(weight_bits_for_cpu(true, false), WeightBits::Seven);
    assert_eq!(weight_bits_for_cpu(true, true), WeightBits::Eight);
    assert_eq!(weight_bits_for_cpu(false, false), WeightBits::Eight);
    // `--weight-bits` takes 7 and 8 only.
    assert_eq!(WeightBits::try_from(7), Ok(WeightBits::Seven));
    assert_eq!(WeightBits::try_from(8), Ok(WeightBits::Eight));
    for other in [0u8, 1, 6, 9, 16, 255] {
        assert_eq!(
            WeightBits::try_from(other),
            Err(format!("{other} is not in 7..=8"))
        );
    }
    let w = bertc::ir::Tensor::from_f32(vec![2, 3], &[1.0, -2.0, 0.5, -1.0, 4.0, 0.25]);
    for (bits, qmax) in [(WeightBits::Seven, 63.0), (WeightBits::Eight, 127.0)] {
        assert_eq!(bits.max(), qmax);
        let (q, scales) = quantize_weight_s8(&w, None, WeightGranularity::PerChannel, bits);
        let q: Vec<i8> = q.raw().iter().map(|&b| b as i8).collect();
        // Each column's largest |w| maps to ±qmax; every value within it.
        assert_eq!(q[0], qmax as i8);
        assert_eq!(q[4], qmax as i8);
        assert!(q.iter().all(|v| v.unsigned_abs() as f32 <= qmax), "{q:?}");
        assert_eq!(scales, vec![1.0 / qmax, 4.0 / qmax, 0.5 / qmax]);
    }
}

/// `--target onnxruntime --quantize static`: the calibrated Q/DQ form of
/// `passes/quantize_int8_qdq.rs`, which onnxruntime's QDQ transformer fuses
/// into MatMulIntegerToFloat (u8 × s8); the golden bar holds in onnxruntime.
#[test]
fn minilm_onnxruntime_static_int8_fuses_and_meets_minilm_golden() {
    let compiled = minilm_static_int8(Target::Onnxruntime);
    let ops = compiled.graph().op_histogram();
    // 4 activation pairs per layer (see tests/quantize_openvino.rs), no
    // run-time quantization, and the contrib lowering still applies.
    assert_eq!(ops.get("QuantizeLinear"), Some(&(4 * 6)), "{ops:?}");
    assert_eq!(ops.get("DynamicQuantizeLinear"), None, "{ops:?}");
    assert_eq!(ops.get("SkipLayerNormalization"), None, "{ops:?}");
    let model = compiled.to_bytes().unwrap();
    let fused = onnxruntime_optimized_ops(&model);
    // Nor does onnxruntime's optimizer make any (its kernel is slower).
    assert_eq!(fused.get("SkipLayerNormalization"), None, "{fused:?}");
    // Every one of the 36 products; the f32 outlier side products of
    // layers 0-3 stay MatMul.
    assert_eq!(fused.get("MatMulIntegerToFloat"), Some(&36), "{fused:?}");

    let golden = minilm_golden();
    let cos = sentence_row_cosines(&run_onnxruntime(&model, &golden), &golden);
    eprintln!("MiniLM static int8 onnxruntime form, onnxruntime: sentence_embedding cosines {cos:.5?}");
    assert!(cos.iter().all(|&c| c >= MIN_ROW_COSINE), "onnxruntime: {cos:?}");
}

/// `--quantize-skip auto` on a form that misses the bar: per-tensor weight
/// scales (onnxruntime's own per-tensor file: golden worst row 0.892). The
/// sensitivity pass keeps the fewest layers f32 that bring the gate's
/// cosine to 0.99, and `apply` with "auto" makes exactly that graph.
#[test]
fn quantize_skip_auto_keeps_the_most_sensitive_layers_f32() {
    use bertc::quantize::sensitivity::auto_skip;
    use bertc::quantize::{accuracy_report, calibration, validation_inputs, DEFAULT_MIN_COSINE};

    let f32_graph = minilm_fp32();
    let mut opts = Precision {
        weights: WeightGranularity::PerTensor,
        ..dynamic(None)
    };
    let calibrated = calibration(test_session(), &f32_graph, &opts, ORT).unwrap();
    let choice = auto_skip(test_session(), &f32_graph, &opts, ORT, calibrated.as_ref()).unwrap();
    eprintln!(
        "auto: keep f32 {:?} (cosine {:.5}); most sensitive {:?}",
        choice.keep_f32,
        choice.cosine,
        &choice.sensitivity[..choice.sensitivity.len().min(5)]
    );
    // All 37 products quantized miss the bar, so something is kept f32,
    // but only a few of them, and the mix holds.
    assert!(!choice.keep_f32.is_empty());
    assert!(choice.keep_f32.len() <= 6, "{:?}", choice.keep_f32);
    assert_eq!(choice.sensitivity.len(), 37);
    assert!(choice.cosine >= DEFAULT_MIN_COSINE, "{choice:?}");

    opts.skip = Skip::Auto;
    let mut g = f32_graph.clone();
    apply(test_session(), &mut g, &opts, ORT).unwrap();
    let ops = g.op_histogram();
    assert_eq!(
        ops.get("MatMulInteger"),
        Some(&(37 - choice.keep_f32.len())),
        "{ops:?}"
    );
    let report = accuracy_report(test_session(), &f32_graph, &g, &validation_inputs(&f32_graph)).unwrap();
    assert!(
        report.outputs.iter().all(|o| o.cosine >= DEFAULT_MIN_COSINE),
        "{report:?}"
    );
    // The file says which layers were kept.
    assert_eq!(
        g.metadata.get(bertc::quantize::KEPT_F32),
        Some(&choice.keep_f32.join(","))
    );
    // The bar is the gate's, --min-cosine: one the all-quantized graph
    // already holds keeps nothing f32 (sensitivity is the margin to the
    // bar: below it, every layer quantized but one).
    assert!(choice.sensitivity[0].1 < 0.0, "{choice:?}");
    opts.skip = Skip::default();
    opts.min_cosine = 0.5;
    let lenient = auto_skip(test_session(), &f32_graph, &opts, ORT, calibrated.as_ref()).unwrap();
    assert!(lenient.keep_f32.is_empty(), "{lenient:?}");
    assert!(lenient.cosine >= opts.min_cosine, "{lenient:?}");
}

/// Per-token scales and smoothing are where calibration finds uneven
/// tokens or outlier channels, and nowhere else: on MiniLM the measured
/// spreads pick the FFN inputs of layers 0-4 and every layer norm; a
/// random-init BERT, whose tokens and channels are even, gets neither
/// (and so the plain DynamicQuantizeLinear form, no slower than
/// onnxruntime's own).
#[test]
fn per_token_and_smoothing_follow_calibration() {
    use bertc::passes::{
        per_token_inputs, smoothing_factors, OUTLIER_ROW_SPREAD, SMOOTHING_ALPHA_ONNXRUNTIME,
    };
    use bertc::quantize::calibration;

    let opts = dynamic(None);
    let minilm = minilm_fp32();
    let c = calibration(test_session(), &minilm, &opts, ORT).unwrap().unwrap();
    let ffn = |layer: usize| format!("encoder.layer.{layer}.intermediate.act");
    let spreads: Vec<f32> = (0..6).map(|l| c.row_spread[&ffn(l)]).collect();
    eprintln!("MiniLM FFN-input row spreads: {spreads:.2?}");
    let chosen = per_token_inputs(&minilm, &[], &c.row_spread);
    let expected: std::collections::BTreeSet<String> = (0..4).map(ffn).collect();
    assert_eq!(
        chosen, expected,
        "row spreads {spreads:?} against {OUTLIER_ROW_SPREAD}"
    );
    let smoothed = smoothing_factors(&minilm, &[], &c.ranges, SMOOTHING_ALPHA_ONNXRUNTIME);
    assert_eq!(smoothed.len(), 12, "{:?}", smoothed.keys());

    let config = fixture("tiny-base");
    let tiny_config = bertc::config::BertConfig::from_path(&config.join("config.json")).unwrap();
    let tiny = bertc::pipeline::compile(
        test_session(),
        &tiny_config,
        bertc::pipeline::BuildOptions {
            weights: Some(config.join("model.safetensors")),
            ..Default::default()
        },
        &bertc::pipeline::at_level(Level::O2),
    )
    .unwrap()
    .into_graph();
    let c = calibration(test_session(), &tiny, &opts, ORT).unwrap().unwrap();
    assert!(
        per_token_inputs(&tiny, &[], &c.row_spread).is_empty(),
        "{:?}",
        c.row_spread
    );
    assert!(smoothing_factors(&tiny, &[], &c.ranges, SMOOTHING_ALPHA_ONNXRUNTIME).is_empty());
    let mut g = tiny.clone();
    apply(test_session(), &mut g, &opts, ORT).unwrap();
    let ops = g.op_histogram();
    assert_eq!(ops.get("ReduceMax"), None, "{ops:?}");
    assert_eq!(ops.get("DynamicQuantizeLinear"), Some(&9), "{ops:?}");
}

/// `--calibrate` with `--quantize dynamic`: the onnxruntime form reads the
/// file (it picks per-token scales and smoothing from it), so its model
/// differs from the one calibrated on generated inputs; a file missing an
/// input is refused by name; other targets, which calibrate nothing,
/// refuse the flag instead of ignoring it.
#[test]
fn dynamic_onnxruntime_form_calibrates_on_the_given_file() {
    use bertc::quantize::calibration_batches;

    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f);
    let mut inputs = bertc::runtime::realistic_inputs(30522, 2, 8, 64, 11);
    bertc::runtime::write_safetensors(&path("calib.safetensors"), &inputs).unwrap();
    inputs.remove("token_type_ids");
    bertc::runtime::write_safetensors(&path("bad.safetensors"), &inputs).unwrap();

    let f32_graph = minilm_fp32();
    let quantized = |calibrate| {
        let mut g = f32_graph.clone();
        apply(test_session(), &mut g, &dynamic(calibrate), ORT).unwrap();
        export_bytes(&g, ExportOptions::default()).unwrap()
    };
    let batches = calibration_batches(&f32_graph, Some(&path("calib.safetensors"))).unwrap();
    assert_eq!(batches.len(), 2, "8 rows in batches of 4");
    let from_file = quantized(Some(path("calib.safetensors")));
    let generated = quantized(None);
    assert!(from_file != generated, "the calibration file changed nothing");

    let compile = |extra: &[&str], calib: &str, out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args(["compile", "bert-tiny", "--quantize", "dynamic", "--calibrate"])
            .arg(path(calib))
            .args(extra)
            .arg("-o")
            .arg(path(out))
            .output()
            .unwrap()
    };
    let refused = compile(&[], "calib.safetensors", "portable.onnx");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("needs --target onnxruntime"),
        "{err}"
    );
    assert!(!path("portable.onnx").exists());
    let bad = compile(&["--target", "onnxruntime"], "bad.safetensors", "bad.onnx");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("token_type_ids"), "{err}");
    assert!(!path("bad.onnx").exists());
    let done = compile(&["--target", "onnxruntime"], "calib.safetensors", "ort.onnx");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
}

/// `--weight-bits 7`: every pair of adjacent weights along K sums to at
/// most 126 in magnitude, so onnxruntime's AVX2 u8 × s8 kernel, which adds
/// pairs of u8 · s8 products in 16 bits (`vpmaddubsw`), cannot saturate
/// (255 · 126 = 32130 ≤ 32767); MiniLM still meets the golden bar. The
/// flag is refused where it means nothing.
#[test]
fn seven_bit_weights_cannot_saturate_and_meet_minilm_golden() {
    let mut g = minilm_fp32();
    let opts = Precision {
        weight_bits: WeightBits::Seven,
        ..dynamic(None)
    };
    apply(test_session(), &mut g, &opts, ORT).unwrap();
    let mut products = 0;
    for id in g.node_ids().collect::<Vec<_>>() {
        if g.node(id).op != bertc::ir::Op::MatMulInteger {
            continue;
        }
        let b = g.inputs_of(id)[1].unwrap();
        let bertc::ir::Op::Constant(w) = &g.node(b.node).op else {
            panic!("weights are constants")
        };
        let (k, n) = (w.dims()[0], w.dims()[1]);
        let q: Vec<i8> = w.raw().iter().map(|&x| x as i8).collect();
        let worst_pair = (0..k / 2)
            .flat_map(|j| (0..n).map(move |c| (j, c)))
            .map(|(j, c)| {
                q[2 * j * n + c].unsigned_abs() as u32 + q[(2 * j + 1) * n + c].unsigned_abs() as u32
            })
            .max()
            .unwrap();
        assert!(worst_pair <= 126, "{}: pair sum {worst_pair}", g.node(id).name);
        products += 1;
    }
    assert_eq!(products, 37);
    let golden = minilm_golden();
    let model = export_bytes(&g, ExportOptions::default()).unwrap();
    let cos = row_cosines(&run_onnxruntime(&model, &golden), &golden);
    eprintln!("MiniLM 7-bit onnxruntime form, onnxruntime: sentence_embedding cosines {cos:.5?}");
    assert!(cos.iter().all(|&c| c >= MIN_ROW_COSINE), "{cos:?}");

    // scripts/ort_saturation.py runs the exact AVX2 arithmetic: the 7-bit
    // file computes the same there, the 8-bit one does not.
    let mut eight = minilm_fp32();
    apply(test_session(), &mut eight, &dynamic(None), ORT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, g, saturates) in [("seven.onnx", &g, false), ("eight.onnx", &eight, true)] {
        let path = dir.path().join(name);
        std::fs::write(&path, export_bytes(g, ExportOptions::default()).unwrap()).unwrap();
        let out = Command::new("python3")
            .arg(root().join("scripts/ort_saturation.py"))
            .arg(&path)
            .arg(fixture("minilm-l6").join("minilm-l6-golden.safetensors"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        eprintln!("{name}:\n{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("max-abs exact vs saturated"))
            .unwrap();
        let max_abs: f64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
        assert_eq!(max_abs > 0.0, saturates, "{name}: {line}");
    }

    for (args, says) in [
        (
            &["--quantize", "dynamic", "--weight-bits", "7"][..],
            "not the portable form (i8 x i8",
        ),
        (
            &["--precision", "fp16", "--weight-bits", "7"][..],
            "--weight-bits applies only to int8",
        ),
        (
            &[
                "--target",
                "onnxruntime",
                "--quantize",
                "dynamic",
                "--weight-bits",
                "6",
            ][..],
            "7..=8",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args(["compile", "bert-tiny", "-o"])
            .arg(dir.path().join("m.onnx"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
        assert!(!dir.path().join("m.onnx").exists());
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args([
            "compile",
            "bert-tiny",
            "--target",
            "onnxruntime",
            "--quantize",
            "dynamic",
            "--weight-bits",
            "7",
            "-o",
        ])
        .arg(dir.path().join("m.onnx"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
