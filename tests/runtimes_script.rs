//! scripts/runtimes.py end to end on two bert-tiny files: the table's shape,
//! the JSON keys, and a file tract cannot load shown as its reason. Never timings.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const RUNTIMES: [&str; 3] = ["tract", "onnxruntime", "openvino"];

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed (run scripts/setup-test-env.sh if onnxruntime or openvino is missing): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// bert-tiny at -O0, and for onnxruntime (contrib ops: tract cannot load it).
fn tiny_files(dir: &Path) -> [String; 2] {
    let plain = dir.join("tiny-o0.onnx");
    let ort = dir.join("tiny-ort.onnx");
    run(Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny", "-O0", "-o"])
        .arg(&plain));
    run(Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny", "--target", "onnxruntime", "-o"])
        .arg(&ort));
    [plain, ort].map(|p| p.to_str().unwrap().to_owned())
}

fn script(files: &[String], extra: &[&str]) -> Output {
    run(Command::new("python3")
        .args(["scripts/runtimes.py", "--bertc", env!("CARGO_BIN_EXE_bertc")])
        .args(["--seq", "16", "--rounds", "1", "--runs", "1", "--warmup", "0"])
        .args(extra)
        .args(files))
}

#[test]
fn runtimes_script_reports_every_file_in_every_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let files = tiny_files(dir.path());

    let v: Value = serde_json::from_slice(&script(&files, &["--json"]).stdout).expect("clean JSON on stdout");
    assert_eq!((v["batch"].as_u64(), v["seq"].as_u64()), (Some(1), Some(16)));
    assert_eq!((v["threads"].as_u64(), v["rounds"].as_u64()), (Some(2), Some(1)));
    assert!(!v["cpu"]["model"].as_str().unwrap().is_empty());
    let flags = v["cpu"]["flags"].as_object().unwrap();
    for flag in [
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "amx_int8",
        "avx512_bf16",
    ] {
        assert!(flags[flag].is_boolean(), "cpu flag {flag}: {flags:?}");
    }
    let names: Vec<&str> = v["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, RUNTIMES);
    assert_eq!(v["files"], serde_json::json!(files));
    for runtime in RUNTIMES {
        let first = &v["cells"][runtime][&files[0]];
        assert!(first["p50_ms"].as_f64().unwrap() > 0.0, "{runtime}: {first}");
        assert_eq!(first["ratio_to_first"], 1.0, "{runtime}");
        assert_eq!(first["round_p50_ms"].as_array().unwrap().len(), 1, "one round");
    }
    // The contrib ops of the onnxruntime target: a reason in tract's cell (bertc says what
    // the file is for), numbers in the others.
    let tract = v["cells"]["tract"][&files[1]]["error"].as_str().unwrap();
    assert!(
        tract.starts_with("cannot load: ") && tract.contains("written for onnxruntime"),
        "{tract}"
    );
    for runtime in ["onnxruntime", "openvino"] {
        let cell = &v["cells"][runtime][&files[1]];
        let expected =
            cell["p50_ms"].as_f64().unwrap() / v["cells"][runtime][&files[0]]["p50_ms"].as_f64().unwrap();
        assert!(
            (cell["ratio_to_first"].as_f64().unwrap() - expected).abs() < 1e-9,
            "{cell}"
        );
    }

    // The Markdown: the CPU and settings above one table, a row per file, a column per runtime.
    let text = String::from_utf8(script(&files, &[]).stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("CPU: ") && lines[0].contains("avx512_vnni"),
        "{text}"
    );
    let table: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 2 + files.len(), "{text}");
    assert_eq!(table[0], "| file | tract | onnxruntime | openvino |");
    assert_eq!(table[1], "|---|---|---|---|");
    for (row, file) in table[2..].iter().zip(&files) {
        assert!(row.starts_with(&format!("| {file} |")), "{row}");
        assert_eq!(row.matches(" | ").count(), RUNTIMES.len(), "{row}");
    }
    assert!(table[2].contains("ms (1.00×)"), "{}", table[2]);
    assert!(table[3].contains("| cannot load: "), "{}", table[3]);
}

/// scripts/tract_int8_floor.py on bert-tiny's int8 file: the same integer
/// products, each quantized input reduced to a bare Cast (no range, scale
/// or rounding ops left), the file still runs in tract; a file without
/// bertc's quantizer, or an output that is the input, is refused.
#[test]
fn tract_int8_floor_keeps_only_the_casts_around_the_products() {
    let dir = tempfile::tempdir().unwrap();
    let (int8, floor, fp32) = (
        dir.path().join("int8.onnx"),
        dir.path().join("floor.onnx"),
        dir.path().join("fp32.onnx"),
    );
    run(Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny", "--quantize", "dynamic", "-o"])
        .arg(&int8));
    run(Command::new("python3")
        .arg("scripts/tract_int8_floor.py")
        .args([&int8, &floor]));
    let ops = |p: &Path| {
        bertc::onnx::read_model(p)
            .unwrap()
            .op_histogram()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (q, f) = (ops(&int8), ops(&floor));
    assert_eq!(f.get("MatMulInteger"), q.get("MatMulInteger"));
    assert!(q.contains_key("ReduceMax") && q.contains_key("Exp"), "{q:?}");
    for gone in ["ReduceMax", "ReduceMin", "Exp", "Log"] {
        assert!(!f.contains_key(gone), "{gone} left in {f:?}");
    }
    run(Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args([
            "bench",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--no-peak",
            "--seq",
            "16",
        ])
        .arg(&floor));

    run(Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny", "-o"])
        .arg(&fp32));
    let refused = Command::new("python3")
        .arg("scripts/tract_int8_floor.py")
        .args([&fp32, &dir.path().join("none.onnx")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no bertc int8 quantizer"));
    assert!(!dir.path().join("none.onnx").exists());

    // The output may not be the input.
    let before = std::fs::read(&int8).unwrap();
    let onto_input = Command::new("python3")
        .arg("scripts/tract_int8_floor.py")
        .args([&int8, &int8])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!onto_input.status.success());
    assert!(String::from_utf8_lossy(&onto_input.stderr).contains("is the input model"));
    assert_eq!(std::fs::read(&int8).unwrap(), before);
}
