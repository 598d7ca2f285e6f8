//! bertc reads onnxruntime's (and so Optimum's) int8 files: the outputs of
//! `quantize_dynamic` (DynamicQuantizeLinear, MatMulInteger with zero
//! points, DequantizeLinear), `quantize_static` in QDQ format
//! (QuantizeLinear / DequantizeLinear pairs) and in QOperator format
//! (QLinearMatMul), made here from the seeded tiny-base fixture by
//! scripts/ort_quantize.py. Each file imports, runs in tract with the
//! outputs onnxruntime gives for the same file, round-trips through the
//! exporter, and loads in `bertc inspect` / `bench` / `optimize`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bertc::onnx::{export_bytes, import_bytes, read_model, ExportOptions};
use bertc::passes::Level;
use bertc::runtime::compare;
use common::*;

/// How close tract's run of a file is to onnxruntime's run of the same
/// file (max-abs, min cosine). Dynamic and QLinearMatMul files compute the
/// same integer products in both (measured: 1e-6). In QDQ files onnxruntime
/// fuses each Q/DQ pair into its int8 kernels and requantizes the products'
/// outputs itself, where tract computes what the ops say in float:
/// tiny-base differs by up to 0.14 (a few output quantization steps),
/// cosine 0.9995.
fn same_file_tolerance(mode: &str) -> (f64, f64) {
    match mode {
        "qdq" => (0.25, 0.999),
        _ => (1e-4, 0.99999),
    }
}

/// The tiny-base fixture at -O0 and its onnxruntime quantizations.
fn quantized_files(dir: &Path) -> Vec<(&'static str, PathBuf, &'static [&'static str])> {
    let case = fixture("tiny-base");
    let fp32 = dir.join("fp32.onnx");
    let bytes = compile_checkpoint_at(
        &case.join("config.json"),
        &case.join("model.safetensors"),
        Level::O0,
    );
    std::fs::write(&fp32, bytes).unwrap();
    let modes: [(&str, &[&str]); 3] = [
        (
            "dynamic",
            &["DynamicQuantizeLinear", "MatMulInteger", "DequantizeLinear"],
        ),
        ("qdq", &["QuantizeLinear", "DequantizeLinear"]),
        (
            "qlinear-matmul",
            &["QLinearMatMul", "QuantizeLinear", "DequantizeLinear"],
        ),
    ];
    modes
        .into_iter()
        .map(|(mode, ops)| {
            let out = dir.join(format!("{mode}.onnx"));
            let run = Command::new("python3")
                .arg(root().join("scripts/ort_quantize.py"))
                .args([&fp32, &out])
                .arg(mode)
                .output()
                .expect("python3 runs");
            assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
            (mode, out, ops)
        })
        .collect()
}

#[test]
fn onnxruntime_quantized_files_import_run_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = golden(&fixture("tiny-base"));
    for (mode, path, ops) in quantized_files(dir.path()) {
        let g = read_model(&path).unwrap_or_else(|e| panic!("{mode}: {e}"));
        let histogram = g.op_histogram();
        for op in ops {
            assert!(histogram.contains_key(op), "{mode}: no {op} in {histogram:?}");
        }
        // Same file, two runtimes.
        let exported = export_bytes(&g, ExportOptions::default()).unwrap();
        let tract = run_tract(&exported, &inputs);
        let ort = run_onnxruntime(&std::fs::read(&path).unwrap(), &inputs);
        for (name, t) in &tract {
            let c = compare(name, t, &ort[name]);
            eprintln!(
                "{mode}: {name} tract vs onnxruntime max-abs {:.2e} cosine {:.6}",
                c.max_abs, c.cosine
            );
            assert!(c.shape_matches, "{mode}: {name} shapes differ");
            let (max_abs, min_cosine) = same_file_tolerance(mode);
            assert!(
                c.cosine >= min_cosine && c.max_abs <= max_abs,
                "{mode}: {name} tract vs onnxruntime {c:?}"
            );
        }
        // Export → import → export is a fixed point with the same ops.
        let again = import_bytes(&exported).unwrap();
        assert_eq!(
            again.op_histogram(),
            histogram,
            "{mode}: ops changed on round trip"
        );
        assert_eq!(
            export_bytes(&again, ExportOptions::default()).unwrap(),
            exported,
            "{mode}: export is not a fixed point"
        );
        // And onnxruntime runs bertc's export of it as it ran the original.
        let ort_again = run_onnxruntime(&exported, &inputs);
        for (name, t) in &ort {
            let c = compare(name, &ort_again[name], t);
            assert!(
                c.max_abs <= 1e-5,
                "{mode}: {name} onnxruntime on the export {c:?}"
            );
        }
    }
}

#[test]
fn inspect_bench_and_optimize_load_onnxruntime_int8_files() {
    let dir = tempfile::tempdir().unwrap();
    let bertc = |args: &[&str], file: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args(args)
            .arg(file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "bertc {args:?} {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    for (mode, path, _) in quantized_files(dir.path()) {
        let inspect = bertc(&["inspect", "--seq", "32"], &path);
        // The int8 products are linear layers in the cost model as in fp32:
        // tiny-base, S=32: 590.8 k linear multiply-adds.
        assert!(inspect.contains("linear 590.8 k"), "{mode}: {inspect}");
        let bench = bertc(
            &[
                "bench",
                "--seq",
                "16",
                "--runs",
                "2",
                "--warmup",
                "1",
                "--no-peak",
            ],
            &path,
        );
        assert!(bench.contains("16"), "{mode}: {bench}");
        let out = dir.path().join(format!("{mode}-O2.onnx"));
        let optimize = bertc(&["optimize", "-o", out.to_str().unwrap()], &path);
        assert!(optimize.contains("check"), "{mode}: {optimize}");
        assert!(out.exists());
    }
}
