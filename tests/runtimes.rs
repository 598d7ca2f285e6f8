//! onnxruntime and OpenVINO behind bertc's runtime interface: every head
//! gives tract's outputs in both (OpenVINO at f32 precision), and a file
//! written for onnxruntime is refused by tract with what it is for. The
//! runtimes' libraries come from the PyPI wheels scripts/setup-test-env.sh
//! installs: missing, these tests fail.

mod common;

use bertc::builder::Head;
use bertc::compile::CompileOptions;
use bertc::config::BertConfig;
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, compile, Compiled, PipelineOptions};
use bertc::runtime::{
    BackendError, ModelSource, NamedTensors, Runtime, RuntimeError, RuntimeModel, RuntimeOptions,
};
use common::{assert_close, fixture, golden, run_tract};

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
    let opts = CompileOptions {
        weights: Some(d.join("model.safetensors")),
        head,
        ..Default::default()
    };
    compile(&config, opts, options).unwrap()
}

fn options(threads: usize) -> RuntimeOptions {
    RuntimeOptions {
        threads,
        take_turns: false,
    }
}

fn run_in(runtime: Runtime, bytes: &[u8], inputs: &NamedTensors) -> NamedTensors {
    let mut model = RuntimeModel::load(runtime, ModelSource::Bytes(bytes), &options(2))
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
        let mut model = RuntimeModel::load(runtime, ModelSource::File(&file), &options(1)).unwrap();
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
        Runtime::Tract,
        ModelSource::Bytes(&bytes),
        &options(1),
        &for_ort.graph,
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
