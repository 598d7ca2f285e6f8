//! onnxruntime and OpenVINO behind bertc's runtime interface: every head
//! gives tract's outputs in both (OpenVINO at f32 precision), a file
//! written for onnxruntime is refused by tract with what it is for, `bertc
//! run --runtime` answers as tract does, and a runtime that is not there
//! is a one-line error. The runtimes' libraries come from the PyPI wheels
//! scripts/setup-test-env.sh installs: missing, these tests fail.

mod common;

use std::path::{Path, PathBuf};

use bertc::builder::Head;
use bertc::config::BertConfig;
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, compile, BuildOptions, Compiled, PipelineOptions};
use bertc::runtime::{
    BackendError, ModelSource, NamedTensors, Runtime, RuntimeError, RuntimeModel, RuntimeOptions,
};
use common::{assert_close, bertc_run, fixture, golden, minilm_dir, run_tract, stderr_of, test_session};
use serde_json::Value;

/// Every head bertc builds, on the seeded fixtures: (case, head).
const HEADS: [(&str, Option<Head>); 6] = [
    ("tiny-base", None),
    ("tiny-cls", None),
    ("tiny-tok", None),
    ("tiny-qa", None),
    ("tiny-mlm", None),
    ("tiny-base", Some(Head::SentenceEmbedding)),
];

/// The brief's bar: onnxruntime and OpenVINO (f32) within 1e-4 of tract.
const ATOL: f64 = 1e-4;

fn compiled(case: &str, head: Option<Head>, options: &PipelineOptions) -> Compiled {
    let d = fixture(case);
    let config = BertConfig::from_path(&d.join("config.json")).unwrap();
    let opts = BuildOptions {
        weights: Some(d.join("model.safetensors")),
        head,
        ..Default::default()
    };
    compile(test_session(), &config, opts, options).unwrap()
}

fn options(threads: usize) -> RuntimeOptions {
    RuntimeOptions {
        threads,
        take_turns: false,
        one_plan: false,
    }
}

fn run_in(runtime: Runtime, bytes: &[u8], inputs: &NamedTensors) -> NamedTensors {
    let mut model = RuntimeModel::load(test_session(), runtime, ModelSource::Bytes(bytes), &options(2))
        .unwrap_or_else(|e| panic!("{runtime} loads the model: {e}"));
    model
        .run(inputs)
        .unwrap_or_else(|e| panic!("{runtime} runs the model: {e}"))
}

#[test]
fn every_head_gives_tracts_outputs_in_onnxruntime_and_openvino() {
    for (case, head) in HEADS {
        let bytes = compiled(case, head, &at_level(Level::O2)).to_bytes().unwrap();
        let inputs = golden(&fixture(case));
        let tract = run_tract(&bytes, &inputs);
        for runtime in [Runtime::Onnxruntime, Runtime::Openvino] {
            let what = format!("{case} {head:?} in {runtime}");
            let out = run_in(runtime, &bytes, &inputs);
            assert_eq!(
                out.keys().collect::<Vec<_>>(),
                tract.keys().collect::<Vec<_>>(),
                "{what}: outputs"
            );
            let worst = assert_close(&what, &out, &tract, ATOL);
            eprintln!("{what}: max-abs to tract {worst:e}");
        }
    }
}

#[test]
fn a_model_runs_the_same_from_its_file_and_prepared_for_timing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cls.onnx");
    std::fs::write(
        &file,
        compiled("tiny-cls", None, &at_level(Level::O2))
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    let inputs = golden(&fixture("tiny-cls"));
    for runtime in Runtime::ALL {
        let mut model =
            RuntimeModel::load(test_session(), runtime, ModelSource::File(&file), &options(1)).unwrap();
        assert_eq!(model.runtime(), runtime);
        assert_eq!(model.output_names(), ["logits"], "{runtime}");
        assert!(
            model.input_names().iter().any(|n| n == "input_ids"),
            "{runtime}: {:?}",
            model.input_names()
        );
        let err = model.run_prepared().unwrap_err();
        assert!(
            matches!(err, RuntimeError::Backend(BackendError::NotPrepared)),
            "{runtime}: {err}"
        );
        model.prepare(&inputs).unwrap();
        model.run_prepared().unwrap();
        let out = model.run(&inputs).unwrap();
        assert_eq!(out["logits"].shape, inputs["logits"].shape, "{runtime}");
        model.forget_prepared();
        assert!(model.run_prepared().is_err(), "{runtime}: forgotten inputs");
    }
}

/// `--target onnxruntime` (contrib ops) runs in onnxruntime and OpenVINO
/// as the portable file runs in tract; tract refuses it, naming the ops
/// and the runtimes to use.
#[test]
fn onnxruntime_target_files_run_there_and_tract_says_what_they_are_for() {
    let portable = compiled("tiny-cls", None, &at_level(Level::O2));
    let target = PipelineOptions {
        target: Target::Onnxruntime,
        ..at_level(Level::O2)
    };
    let for_ort = compiled("tiny-cls", None, &target);
    let bytes = for_ort.to_bytes().unwrap();
    let inputs = golden(&fixture("tiny-cls"));
    let tract = run_tract(&portable.to_bytes().unwrap(), &inputs);
    for runtime in [Runtime::Onnxruntime, Runtime::Openvino] {
        let out = run_in(runtime, &bytes, &inputs);
        assert_close(&format!("onnxruntime target in {runtime}"), &out, &tract, ATOL);
    }
    let err = RuntimeModel::load_checked(
        test_session(),
        Runtime::Tract,
        ModelSource::Bytes(&bytes),
        &options(1),
        for_ort.graph(),
    )
    .err()
    .expect("tract refuses a file with onnxruntime's contrib ops");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            RuntimeError::Backend(BackendError::WrittenForOnnxruntime { .. })
        ),
        "{text}"
    );
    for needle in [
        "--target onnxruntime",
        "EmbedLayerNormalization",
        "--runtime onnxruntime",
    ] {
        assert!(text.contains(needle), "`{needle}` missing: {text}");
    }
    assert!(!text.contains('\n'), "one line: {text}");
}

fn pipelines(folder: &str) -> PathBuf {
    let dir = fixture("pipelines").join(folder);
    assert!(
        dir.join("config.json").is_file(),
        "no pipeline folder at {}",
        dir.display()
    );
    dir
}

fn texts(folder: &str, key: &str) -> Vec<String> {
    let path = pipelines(folder).join("pipeline-golden.json");
    let golden: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    golden[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// `bertc run MODEL ARGS… --json --threads 1 --runtime RUNTIME`, parsed.
fn run_json(model: &Path, args: &[String], runtime: Runtime) -> Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &model];
    for a in args {
        all.push(a);
    }
    let name = runtime.name();
    all.extend([
        &"--json" as &dyn AsRef<std::ffi::OsStr>,
        &"--threads",
        &"1",
        &"--runtime",
        &name,
    ]);
    let out = bertc_run(&all);
    assert!(
        out.status.success(),
        "bertc run {} --runtime {name} failed: {}",
        model.display(),
        stderr_of(&out)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

/// Same structure, strings and integers; floats within `atol`. Returns
/// the largest float difference.
fn json_difference(a: &Value, b: &Value, atol: f64, at: &str) -> f64 {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            x.iter()
                .zip(y)
                .enumerate()
                .map(|(i, (x, y))| json_difference(x, y, atol, &format!("{at}[{i}]")))
                .fold(0.0, f64::max)
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}: keys"
            );
            x.iter()
                .map(|(k, v)| json_difference(v, &y[k], atol, &format!("{at}.{k}")))
                .fold(0.0, f64::max)
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let d = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs();
            assert!(d <= atol, "{at}: {x} vs {y}");
            d
        }
        _ => {
            assert_eq!(a, b, "{at}");
            0.0
        }
    }
}

/// Every task `bertc run` answers, in onnxruntime and OpenVINO as in
/// tract: the same labels, entities, spans and tokens, scores within 1e-5.
#[test]
fn run_answers_in_onnxruntime_and_openvino_as_in_tract() {
    let mut qa = vec![];
    let golden: Value =
        serde_json::from_slice(&std::fs::read(pipelines("qa").join("pipeline-golden.json")).unwrap())
            .unwrap();
    for input in golden["inputs"].as_array().unwrap() {
        for key in ["question", "context"] {
            qa.extend([format!("--{key}"), input[key].as_str().unwrap().to_string()]);
        }
    }
    let cases: [(PathBuf, Vec<String>); 5] = [
        (pipelines("seq-cls"), texts("seq-cls", "texts")),
        (pipelines("token-cls"), texts("token-cls", "texts")),
        (pipelines("qa"), qa),
        (pipelines("fill-mask"), texts("fill-mask", "texts")),
        (
            minilm_dir(),
            vec![
                "A man is eating food.".into(),
                "Someone eats a meal.".into(),
                "The sky is blue.".into(),
            ],
        ),
    ];
    for (model, args) in cases {
        let tract = run_json(&model, &args, Runtime::Tract);
        for runtime in [Runtime::Onnxruntime, Runtime::Openvino] {
            let what = format!("{} in {runtime}", model.display());
            let doc = run_json(&model, &args, runtime);
            let d = json_difference(&doc, &tract, 1e-5, &what);
            eprintln!("{what}: max |difference| to tract {d:e}");
        }
    }
}

/// A runtime whose library is not there: one line on stderr naming it and
/// how to install it, exit code 2, no panic — for run and bench alike.
#[test]
fn a_missing_runtime_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("base.onnx");
    std::fs::write(
        &model,
        compiled("tiny-base", None, &at_level(Level::O0))
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    let missing = dir.path().join("no-such-library.so");
    for (var, runtime, package) in [
        (
            "BERTC_ONNXRUNTIME_LIB",
            "onnxruntime",
            "pip install onnxruntime==",
        ),
        ("BERTC_OPENVINO_LIB", "openvino", "pip install openvino=="),
    ] {
        for args in [
            vec![
                "bench",
                model.to_str().unwrap(),
                "--seq",
                "8",
                "--no-peak",
                "--runs",
                "1",
                "--runtime",
                runtime,
            ],
            vec![
                "run",
                minilm_dir().to_str().unwrap(),
                "hello",
                "--runtime",
                runtime,
            ],
        ] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
                .args(&args)
                .env(var, &missing)
                .env("RUST_BACKTRACE", "1")
                .output()
                .unwrap();
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
            for needle in [var, package, missing.to_str().unwrap(), "does not exist"] {
                assert!(err.contains(needle), "{args:?}: `{needle}` missing: {err}");
            }
            assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
        }
    }
    // A file that is no shared library at all is named too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args([
            "bench",
            model.to_str().unwrap(),
            "--seq",
            "8",
            "--no-peak",
            "--runs",
            "1",
            "--runtime",
            "onnxruntime",
        ])
        .env("BERTC_ONNXRUNTIME_LIB", &model)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot load onnxruntime from {}", model.display())),
        "{err}"
    );
}

/// `bench --runtime` runs each model in each runtime, interleaved, one
/// result per model and runtime, ratios to the first model of the same
/// runtime.
#[test]
fn bench_runs_every_model_in_every_runtime_asked() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = ["tiny-cls", "tiny-tok"]
        .iter()
        .map(|case| {
            let path = dir.path().join(format!("{case}.onnx"));
            std::fs::write(
                &path,
                compiled(case, None, &at_level(Level::O2)).to_bytes().unwrap(),
            )
            .unwrap();
            path.display().to_string()
        })
        .collect();
    let out = bertc_run(&[
        &"bench",
        &files[0],
        &files[1],
        &"--runtime",
        &"tract,onnxruntime,openvino",
        &"--threads",
        &"1",
        &"--runs",
        &"3",
        &"--warmup",
        &"1",
        &"--seq",
        &"16",
        &"--no-peak",
        &"--json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runtime"], "tract,onnxruntime,openvino");
    let results = v["results"].as_array().unwrap();
    let got: Vec<(&str, &str)> = results
        .iter()
        .map(|r| (r["runtime"].as_str().unwrap(), r["model"].as_str().unwrap()))
        .collect();
    let mut want = vec![];
    for runtime in ["tract", "onnxruntime", "openvino"] {
        for f in &files {
            want.push((runtime, f.as_str()));
        }
    }
    assert_eq!(got, want);
    for r in results {
        assert!(r["p50_ms"].as_f64().unwrap() > 0.0, "{r}");
        let ratio = r["ratio_to_first"].as_f64().unwrap();
        if r["model"] == files[0].as_str() {
            assert_eq!(ratio, 1.0, "{r}");
        }
    }
    for lib in v["libraries"].as_array().unwrap() {
        let path = lib["path"].as_str().unwrap();
        assert!(Path::new(path).is_file(), "{lib}");
    }
    assert_eq!(v["libraries"].as_array().unwrap().len(), 2);
}

/// A symbolic session runs every batch size and length with two plans —
/// one for single rows, one for batches — and gives the concrete plans'
/// outputs (MiniLM; `bertc serve` plans so).
#[test]
fn symbolic_plans_serve_every_shape_as_concrete_plans_do() {
    use bertc::runtime::{inputs_for_seed, PlanShapes, TractSession};
    let g = common::minilm_fp32();
    let bytes = bertc::onnx::export_bytes(&g, Default::default()).unwrap();
    let session = common::test_session();
    let mut symbolic = TractSession::from_bytes(session, &bytes)
        .unwrap()
        .with_plan_shapes(PlanShapes::Symbolic);
    let mut concrete = TractSession::from_bytes(session, &bytes).unwrap();
    for (batch, seq, seed) in [(1, 7, 1), (3, 19, 2), (2, 40, 3), (1, 7, 4), (1, 33, 5)] {
        let inputs = inputs_for_seed(&g, batch, seq, seed);
        let a = symbolic.run(&inputs).unwrap();
        let b = concrete.run(&inputs).unwrap();
        common::assert_close(&format!("[{batch}, {seq}]"), &a, &b, 1e-5);
        let kept = if (batch, seq) == (1, 7) && seed == 1 { 1 } else { 2 };
        assert_eq!(
            symbolic.plans_kept(),
            (kept, PlanShapes::Symbolic),
            "[{batch}, {seq}]"
        );
    }
    assert_eq!(concrete.plans_kept().1, PlanShapes::Concrete);
}
