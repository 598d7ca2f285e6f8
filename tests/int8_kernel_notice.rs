//! The kernel `compile --quantize` and `bench` name is the one tract puts
//! in the plan of an int8 BERT-base layer (128 tokens, hidden 768) in the
//! same process, with the threads bertc runs it with. (tract chooses
//! between its VNNI tiles by a per-process timing probe, so the name must
//! come from this process's own choice.)

use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, compile, load_config, BuildOptions};
use bertc::quantize::{apply, tract_int8_kernel, Form, Precision};
use bertc::runtime::TractSession;
use bertc::session::{available_threads, Session};
use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;

#[test]
fn the_named_int8_kernel_is_the_one_an_int8_bert_base_plan_runs() {
    // What `compile` and `bench` run on when --threads is not given.
    let session = Session::new(available_threads().max(2)).unwrap();
    let mut config = load_config("bert-base-uncased").unwrap();
    config.num_hidden_layers = 1;
    let mut opts = at_level(Level::O2);
    opts.check = false;
    let mut g = compile(&session, &config, BuildOptions::default(), &opts)
        .unwrap()
        .into_graph();
    apply(
        &session,
        &mut g,
        &Precision::new(Form::Int8Dynamic),
        Target::Portable,
    )
    .unwrap();
    let model = export_bytes(&g, ExportOptions::default()).unwrap();
    let mut loaded = TractSession::from_bytes(&session, &model).unwrap();
    let (hosts, _) = loaded.prepare(&bertc::runtime::inputs_for(&g, 1, 128)).unwrap();
    let plan = loaded.plan_for(&hosts.iter().collect::<Vec<_>>()).unwrap();
    let mut kernels: Vec<String> = plan
        .model()
        .nodes()
        .iter()
        .filter_map(|n| n.op_as::<OptMatMul>())
        .filter(|op| op.c_fact.datum_type == DatumType::I32)
        .flat_map(|op| op.mmm.iter().map(|k| k.name().to_string()))
        .collect();
    kernels.sort();
    kernels.dedup();
    let named = tract_int8_kernel().name;
    assert!(!kernels.is_empty(), "no int8 product in the plan");
    assert!(
        kernels.contains(&named),
        "compile names {named}, the plan runs {kernels:?}"
    );
}

/// `compile --quantize` says when the int8 form it wrote is tract's, which
/// onnxruntime and OpenVINO run slower than fp32, and names the targets
/// that are fast there; the onnxruntime form gets no such note.
#[test]
fn compile_notes_which_runtimes_the_reduced_form_is_for() {
    let dir = tempfile::tempdir().unwrap();
    let compile = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .args(["compile", "bert-tiny", "--quantize", "dynamic", "-o"])
            .arg(dir.path().join("m.onnx"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let portable = compile(&[]);
    assert!(
        portable.contains("note: this int8 form (i8 x i8 MatMulInteger) is tract's")
            && portable.contains("--target onnxruntime --quantize dynamic"),
        "{portable}"
    );
    let ort = compile(&["--target", "onnxruntime"]);
    assert!(!ort.contains("int8 form"), "{ort}");
    // Its 8-bit weights get the saturation note, 7-bit ones none.
    assert!(
        ort.contains("note: 8-bit weights") && ort.contains("--weight-bits 7"),
        "{ort}"
    );
    let seven = compile(&["--target", "onnxruntime", "--weight-bits", "7"]);
    assert!(!seven.contains("note:"), "{seven}");
    // fp16 says what it is for, in every target.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny", "--precision", "fp16", "-o"])
        .arg(dir.path().join("h.onnx"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("note: fp16 stores the weights as f16"),
        "{err}"
    );
}
