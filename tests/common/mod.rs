//! Helpers shared by the integration tests: fixtures, compiling, running.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bertc::config::BertConfig;
use bertc::ir::Graph;
use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{level_passes, Level, PassManager};
use bertc::pipeline::{at_level, compile, with_passes, BuildOptions, PipelineOptions};
use bertc::runtime::{compare, read_safetensors, write_safetensors, HostTensor, NamedTensors, TractSession};
use bertc::Session;
use serde_json::Value;

/// The session every library call of a test binary runs tract on: two
/// threads, as CI has (one pool per test binary, shared by its tests).
pub fn test_session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| Session::new(2).expect("tract starts 2 threads"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/{rel}`: every file a test reads lives there (or is the
/// MiniLM checkpoint that scripts/setup-test-env.sh fetches, sha256-checked),
/// so a clone with nothing beside it runs the suite. tests/fixtures/README.md
/// says where each folder came from. Missing data fails the test.
pub fn fixture(rel: &str) -> PathBuf {
    let path = root().join("tests/fixtures").join(rel);
    assert!(path.exists(), "the fixture {rel} is not at {}", path.display());
    path
}

/// The real all-MiniLM-L6-v2 checkpoint, fetched by scripts/fetch-minilm.sh.
/// Missing weights fail the test: a skipped numeric check is no check.
pub fn minilm_dir() -> PathBuf {
    let dir = match std::env::var_os("BERTC_MINILM_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("BERTC_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/bertc")
                });
            cache.join("minilm-l6")
        }
    };
    assert!(
        dir.join("model.safetensors").is_file(),
        "the MiniLM checkpoint is not at {}: run scripts/fetch-minilm.sh (or scripts/setup-test-env.sh) first",
        dir.display()
    );
    dir
}

/// Build options for tests that only count (parameters, nodes, shapes,
/// multiply-adds, bytes) or review structure: placeholder weights instead
/// of drawn random ones (xlm-roberta-large would draw 2.2 GB of them).
/// Tests that run numbers keep seeded or real weights.
pub fn shapes_only() -> BuildOptions {
    BuildOptions {
        shapes_only: true,
        ..Default::default()
    }
}

/// Compiles a config + checkpoint at -O0 (dead-node elimination only).
pub fn compile_checkpoint(config: &Path, weights: &Path) -> Vec<u8> {
    compile_checkpoint_with(config, weights, &with_passes(&["dead_node_elimination"]))
}

/// Compiles a config + checkpoint at `level`.
pub fn compile_checkpoint_at(config: &Path, weights: &Path, level: Level) -> Vec<u8> {
    compile_checkpoint_with(config, weights, &at_level(level))
}

/// Compiles through the library pipeline, its equivalence check included
/// (and the graph verified after every pass: tests are debug builds).
fn compile_checkpoint_with(config: &Path, weights: &Path, options: &PipelineOptions) -> Vec<u8> {
    let config = BertConfig::from_path(config).expect("config parses");
    let opts = BuildOptions {
        weights: Some(weights.to_path_buf()),
        ..Default::default()
    };
    compile(test_session(), &config, opts, options)
        .expect("compiles")
        .to_bytes()
        .expect("serializes")
}

/// Runs ONNX bytes in tract on the golden file's inputs.
pub fn run_tract(model: &[u8], inputs: &NamedTensors) -> NamedTensors {
    let mut s = TractSession::from_bytes(test_session(), model).expect("tract loads the model");
    s.run(inputs).expect("tract runs the model")
}

/// Asserts every output in `actual` that `expected` has is within `atol`;
/// returns the worst max-abs seen.
pub fn assert_close(what: &str, actual: &NamedTensors, expected: &NamedTensors, atol: f64) -> f64 {
    let mut worst = 0f64;
    let mut compared = 0;
    for (name, a) in actual {
        let Some(e) = expected.get(name) else { continue };
        let c = compare(name, a, e);
        assert!(
            c.shape_matches,
            "{what}: `{name}` has shape {:?}, expected {:?}",
            a.shape, e.shape
        );
        assert!(
            c.max_abs <= atol,
            "{what}: `{name}` max-abs {:e} > {atol:e}",
            c.max_abs
        );
        worst = worst.max(c.max_abs);
        compared += 1;
    }
    assert!(compared > 0, "{what}: no output had a reference");
    worst
}

/// Runs the model in onnxruntime through scripts/ort_check.py, which first
/// runs `onnx.checker.check_model(full_check=True)`.
pub fn run_onnxruntime(model: &[u8], inputs: &NamedTensors) -> NamedTensors {
    run_python(
        "scripts/ort_check.py",
        "onnx checker / onnxruntime",
        model,
        inputs,
    )
}

/// Runs the model in OpenVINO (CPU, f32 inference precision) through
/// scripts/ov_run.py.
pub fn run_openvino(model: &[u8], inputs: &NamedTensors) -> NamedTensors {
    run_python("scripts/ov_run.py", "OpenVINO", model, inputs)
}

/// Runs `script MODEL INPUTS OUTPUTS` (safetensors in and out).
fn run_python(script: &str, what: &str, model: &[u8], inputs: &NamedTensors) -> NamedTensors {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.onnx");
    std::fs::write(&m, model).unwrap();
    let out = python_on_file(script, what, &m, inputs, "out.safetensors", &[]);
    read_safetensors(&out.path().join("out.safetensors")).unwrap()
}

/// Runs `script MODEL INPUTS OUTDIR/outputs extra…` on a model file as it
/// lies on disk (its external data beside it); returns OUTDIR.
fn python_on_file(
    script: &str,
    what: &str,
    model: &Path,
    inputs: &NamedTensors,
    outputs: &str,
    extra: &[&str],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let i = dir.path().join("in.safetensors");
    write_safetensors(&i, inputs).unwrap();
    let out = Command::new("python3")
        .arg(root().join(script))
        .arg(model)
        .arg(&i)
        .arg(dir.path().join(outputs))
        .args(extra)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{what} failed on {} ({}); run scripts/setup-test-env.sh if its Python packages are missing:\n{}",
        model.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// onnxruntime's graph optimization levels (ORT_DISABLE_ALL, ENABLE_BASIC,
/// ENABLE_EXTENDED, ENABLE_ALL) as scripts/ort_check.py names them.
pub const ORT_LEVELS: [&str; 4] = ["disable_all", "basic", "extended", "all"];

/// Runs the model file in onnxruntime at every graph optimization level
/// (one process, one session per level), after onnx's full check.
pub fn run_onnxruntime_levels(model: &Path, inputs: &NamedTensors) -> Vec<(&'static str, NamedTensors)> {
    let levels = ORT_LEVELS.join(",");
    let dir = python_on_file(
        "scripts/ort_check.py",
        "onnx checker / onnxruntime",
        model,
        inputs,
        "{level}.safetensors",
        &[&levels],
    );
    ORT_LEVELS
        .iter()
        .map(|l| {
            (
                *l,
                read_safetensors(&dir.path().join(format!("{l}.safetensors"))).unwrap(),
            )
        })
        .collect()
}

/// Runs the model file in OpenVINO (CPU, INFERENCE_PRECISION_HINT f32).
pub fn run_openvino_file(model: &Path, inputs: &NamedTensors) -> NamedTensors {
    let dir = python_on_file(
        "scripts/ov_run.py",
        "OpenVINO",
        model,
        inputs,
        "out.safetensors",
        &[],
    );
    read_safetensors(&dir.path().join("out.safetensors")).unwrap()
}

pub fn golden(case_dir: &Path) -> NamedTensors {
    read_safetensors(&case_dir.join("golden.safetensors")).expect("golden file reads")
}

/// Runs the `bertc` binary with `args`.
pub fn bertc_run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertc"));
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("bertc runs")
}

/// `bertc run MODEL ARGS… --json --threads 1`, parsed.
pub fn run_json(model: &Path, args: &[String]) -> Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &model];
    for a in args {
        all.push(a);
    }
    all.extend([&"--json" as &dyn AsRef<std::ffi::OsStr>, &"--threads", &"1"]);
    let out = bertc_run(&all);
    assert!(
        out.status.success(),
        "bertc run {} failed: {}",
        model.display(),
        stderr_of(&out)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

/// A JSON array of strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A run's standard error, as text.
pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The real all-MiniLM-L6-v2 compiled at -O2 through the pipeline (checked).
pub fn minilm_fp32() -> bertc::ir::Graph {
    let dir = minilm_dir();
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let opts = BuildOptions {
        weights: Some(dir.join("model.safetensors")),
        ..Default::default()
    };
    compile(test_session(), &config, opts, &at_level(Level::O2))
        .unwrap()
        .into_graph()
}

/// PyTorch's outputs of the real MiniLM (tests/fixtures/minilm-l6).
pub fn minilm_golden() -> NamedTensors {
    read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap()
}

/// The fused ops of a graph, counted in ONE place: the tests that assert
/// fusion counts read them here, so a change of how a fusion is emitted
/// (say, per target) is a one-place edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedCounts {
    pub attention: usize,
    pub layer_norm: usize,
    pub gelu: usize,
}

pub fn fused_counts(compiled: &bertc::pipeline::Compiled) -> FusedCounts {
    let h = compiled.graph().op_histogram();
    let n = |op: &str| h.get(op).copied().unwrap_or(0);
    FusedCounts {
        // -O2 fuses every attention, then writes it out in the form each
        // target runs fastest (decomposed but for onnxruntime): the
        // fusion's own report counts them.
        attention: compiled
            .report
            .all_passes()
            .filter(|r| r.pass == "fuse_attention")
            .map(|r| r.report.matches)
            .sum(),
        // RMSNorm (EuroBERT's) counts as the family's layer norm.
        layer_norm: n("LayerNormalization") + n("RMSNormalization"),
        gelu: n("Gelu"),
    }
}

/// The seeded checkpoints of BERT's relatives with PyTorch's outputs
/// (tests/fixtures/family, 2.5 MB).
pub fn family_dir(case: &str) -> PathBuf {
    fixture(&format!("family/{case}"))
}

/// Asserts `text` against `snapshots/{name}.snap` (insta), the one place
/// the snapshot settings live.
pub fn assert_dump_snapshot(name: &str, text: &str) {
    insta::with_settings!({
        // Relative to this file: the repository's snapshots/.
        snapshot_path => "../../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name.to_string(), text);
    });
}

/// One bare-encoder case per family of tests/fixtures/family (RoBERTa
/// stands for XLM-R): the ones dumped in full and given every head.
pub const FAMILY_BASE_CASES: [&str; 5] = [
    "roberta-base",
    "distilbert-base",
    "electra-base",
    "albert-base",
    "mpnet-base",
];

/// The real MiniLM with its sentence-embedding head, compiled at -O2 for
/// `target` with `--quantize static` (generated calibration, min-max).
pub fn minilm_static_int8(target: bertc::passes::Target) -> bertc::pipeline::Compiled {
    minilm_static_int8_with(target, false)
}

/// [`minilm_static_int8`], with `--quantize-attention` when `attention`.
pub fn minilm_static_int8_with(target: bertc::passes::Target, attention: bool) -> bertc::pipeline::Compiled {
    use bertc::quantize::{CalibrationMethod, Form, Precision};
    let dir = minilm_dir();
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let source = BuildOptions {
        weights: Some(dir.join("model.safetensors")),
        head: Some(bertc::builder::Head::SentenceEmbedding),
        ..Default::default()
    };
    let options = PipelineOptions {
        target,
        precision: Precision {
            attention,
            ..Precision::new(Form::Int8Static(CalibrationMethod::MinMax))
        },
        ..at_level(Level::O2)
    };
    compile(test_session(), &config, source, &options).unwrap()
}

/// Cosine of each `sentence_embedding` row of `outputs` with the golden's.
pub fn sentence_row_cosines(outputs: &NamedTensors, golden: &NamedTensors) -> Vec<f64> {
    let (got, want) = (&outputs["sentence_embedding"], &golden["sentence_embedding"]);
    let h = *want.shape.last().unwrap();
    let (a, b) = (got.to_f32(), want.to_f32());
    a.chunks(h)
        .zip(b.chunks(h))
        .map(|(x, y)| bertc::quantize::cosine(x, y))
        .collect()
}

/// Everything bertc names as temporary (`.bertc-*`: files and export
/// staging folders) in `dir`.
#[allow(dead_code)]
pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bertc-"))
        .collect()
}

/// Equal structure, keys, strings and integers; floats within `atol`.
/// Returns the largest float difference.
pub fn assert_json_close(actual: &Value, expected: &Value, atol: f64, at: &str) -> f64 {
    match (actual, expected) {
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{at}: {actual} vs {expected}");
            a.iter()
                .zip(e)
                .enumerate()
                .map(|(i, (a, e))| assert_json_close(a, e, atol, &format!("{at}[{i}]")))
                .fold(0.0, f64::max)
        }
        (Value::Object(a), Value::Object(e)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(e), "{at}: keys");
            e.iter()
                .map(|(k, e)| assert_json_close(&a[k], e, atol, &format!("{at}.{k}")))
                .fold(0.0, f64::max)
        }
        (Value::Number(a), Value::Number(e)) if e.is_f64() => {
            let d = (a.as_f64().unwrap() - e.as_f64().unwrap()).abs();
            assert!(d <= atol, "{at}: {a} vs {e} (|diff| {d:e} > {atol:e})");
            d
        }
        _ => {
            assert_eq!(actual, expected, "{at}");
            0.0
        }
    }
}

/// The worst row cosine of any output in a compile's accuracy gate.
pub fn gate_worst_row_cosine(c: &bertc::pipeline::Compiled) -> f64 {
    let accuracy = c.report.accuracy.as_ref().expect("the gate ran");
    accuracy
        .outputs
        .iter()
        .map(|o| o.min_row_cosine)
        .fold(1.0, f64::min)
}

/// The graph after -O2's passes (no target lowering), verified after each.
pub fn fused_o2(g: &Graph) -> Graph {
    let mut fused = g.clone();
    PassManager::from_names(level_passes(Level::O2))
        .unwrap()
        .verify_each(true)
        .run(&mut fused)
        .unwrap();
    fused
}

/// Worst max-abs between two graphs' outputs in tract on `inputs`.
pub fn moved(a: &Graph, b: &Graph, inputs: &NamedTensors) -> f64 {
    let run = |g: &Graph| run_tract(&export_bytes(g, ExportOptions::default()).unwrap(), inputs);
    let (x, y) = (run(a), run(b));
    x.iter()
        .map(|(name, t)| compare(name, t, &y[name]).max_abs)
        .fold(0.0, f64::max)
}

/// The first `rows` rows (batch entries) of each tensor.
pub fn first_rows(tensors: &NamedTensors, rows: usize) -> NamedTensors {
    tensors
        .iter()
        .map(|(name, t)| {
            let mut shape = t.shape.clone();
            let per_row: usize = shape[1..].iter().product();
            shape[0] = shape[0].min(rows);
            let values = t.to_f32()[..shape[0] * per_row].to_vec();
            (name.clone(), HostTensor::f32(shape, values))
        })
        .collect()
}
