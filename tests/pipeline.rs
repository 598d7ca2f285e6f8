//! The library pipeline: every stage and its checks run through one call,
//! and a check that compares nothing, or misses an output, fails.

mod common;

use bertc::cost::graph_cost;
use bertc::ir::{Graph, IrError};
use bertc::passes::{Level, Pass, PassManager, PassReport, Target};
use bertc::pipeline::check::{check_equivalence, check_inputs, require_within, CheckError, CHECK_ATOL};
use bertc::pipeline::{
    at_level, build, compile, load_config, run, with_passes, BuildOptions, OptionError, PassSelection,
    PipelineOptions, Source,
};
use bertc::quantize::{Form, Precision, Skip};
use bertc::runtime::{compare_outputs, CompareError, NamedTensors};
use bertc::Error;
use common::test_session;

/// A wrong pass: renames the first output.
struct RenameFirstOutput;

impl Pass for RenameFirstOutput {
    fn name(&self) -> &'static str {
        "rename_first_output"
    }
    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let first = g.outputs()[0].0.clone();
        g.rename_output(&first, "renamed");
        Ok(PassReport {
            matches: 1,
            ..Default::default()
        })
    }
}

fn tiny() -> Graph {
    let c = load_config("bert-tiny").unwrap();
    build(&c, &BuildOptions::default()).unwrap().graph
}

#[test]
fn compile_runs_the_check_on_every_output() {
    let c = load_config("bert-tiny").unwrap();
    let compiled = compile(test_session(), &c, BuildOptions::default(), &at_level(Level::O2)).unwrap();
    let checked: Vec<&str> = compiled.report.check.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(checked, ["last_hidden_state", "pooler_output"]);
    for c in &compiled.report.check {
        assert!(c.max_abs <= CHECK_ATOL, "{} moved by {}", c.name, c.max_abs);
    }
    let fused = compiled
        .report
        .passes
        .iter()
        .find(|r| r.pass == "fuse_attention")
        .unwrap();
    assert_eq!(fused.report.matches, 2, "both layers' attention fused");
    // ... and written decomposed for the portable target, inside the
    // checked passes: no Attention-23, so Gelu-20 sets the opset.
    let decomposed = compiled
        .report
        .passes
        .iter()
        .find(|r| r.pass == "decompose_attention")
        .unwrap();
    assert_eq!(decomposed.report.matches, 2);
    assert!(!compiled.graph().op_histogram().contains_key("Attention"));
    assert_eq!(compiled.report.opset, 20);
}

#[test]
fn a_pass_that_renames_an_output_is_refused_by_the_check() {
    let reference = tiny();
    let mut candidate = reference.clone();
    PassManager::new()
        .with(RenameFirstOutput)
        .run(&mut candidate)
        .unwrap();
    let err =
        check_equivalence(test_session(), &reference, &candidate, &check_inputs(&reference)).unwrap_err();
    match err {
        CheckError::Compare(CompareError::MissingOutput { output, found }) => {
            assert_eq!(output, "last_hidden_state");
            assert!(found.contains(&"renamed".to_string()), "{found:?}");
        }
        other => panic!("expected MissingOutput, got {other}"),
    }
}

#[test]
fn a_check_that_compares_nothing_fails() {
    assert!(matches!(
        compare_outputs(&NamedTensors::new(), &NamedTensors::new()),
        Err(CompareError::NothingCompared)
    ));
    assert!(matches!(
        require_within(&[], CHECK_ATOL),
        Err(CheckError::Compare(CompareError::NothingCompared))
    ));
}

#[test]
fn the_accuracy_gate_runs_inside_the_pipeline() {
    let c = load_config("bert-tiny").unwrap();
    let int8 = |min_cosine: f64| PipelineOptions {
        precision: Precision {
            min_cosine,
            ..Precision::new(Form::Int8Dynamic)
        },
        ..at_level(Level::O2)
    };
    let ok = compile(test_session(), &c, BuildOptions::default(), &int8(0.99)).unwrap();
    let accuracy = ok.report.accuracy.as_ref().expect("an accuracy report");
    let names: Vec<&str> = accuracy.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["last_hidden_state", "pooler_output"]);
    assert!(accuracy
        .outputs
        .iter()
        .all(|o| o.min_row_cosine > 0.99 && o.min_row_cosine < 1.0));
    assert_eq!(
        ok.graph().metadata.get("bertc.precision").map(String::as_str),
        Some("int8-dynamic")
    );
    // No int8 model is exactly the f32 one: a gate of 1 must refuse it.
    match compile(test_session(), &c, BuildOptions::default(), &int8(1.0)) {
        Err(Error::Check(CheckError::AccuracyBelow { min_cosine, .. })) => assert_eq!(min_cosine, 1.0),
        Err(other) => panic!("expected AccuracyBelow, got {other}"),
        Ok(_) => panic!("a gate of cosine 1 passed an int8 model"),
    }
    // The row bar, when held, refuses on the worst row a pipeline reads
    // (here below 1 while the whole output holds 0.99).
    let row_bar = PipelineOptions {
        precision: Precision {
            min_row_cosine: Some(1.0),
            ..int8(0.99).precision
        },
        ..int8(0.99)
    };
    match compile(test_session(), &c, BuildOptions::default(), &row_bar) {
        Err(Error::Check(CheckError::RowAccuracyBelow {
            cosine,
            min_row_cosine,
            ..
        })) => {
            assert_eq!(min_row_cosine, 1.0);
            // The first output's worst real row (both miss a bar of 1).
            assert_eq!(cosine, accuracy.outputs[0].min_real_row_cosine);
            assert!(cosine < 1.0);
        }
        Err(other) => panic!("expected RowAccuracyBelow, got {other}"),
        Ok(_) => panic!("a row bar of 1 passed an int8 model"),
    }
}

#[test]
fn meaningless_options_are_refused_before_any_work() {
    let skip_everything = PipelineOptions {
        precision: Precision {
            skip: Skip::Layers(vec![String::new()]),
            ..Precision::new(Form::Int8Dynamic)
        },
        ..Default::default()
    };
    assert_eq!(skip_everything.validate(), Err(OptionError::EmptySkipPattern));
    let ort_at_o1 = PipelineOptions {
        target: Target::Onnxruntime,
        ..at_level(Level::O1)
    };
    assert!(matches!(
        ort_at_o1.validate(),
        Err(OptionError::TargetNeedsO2 { .. })
    ));
    let ort_with_passes = PipelineOptions {
        target: Target::Onnxruntime,
        ..with_passes(&["fuse_gelu"])
    };
    assert!(matches!(
        ort_with_passes.validate(),
        Err(OptionError::TargetNeedsO2 { .. })
    ));
    let bad_gate = PipelineOptions {
        precision: Precision {
            min_cosine: 1.5,
            ..Precision::new(Form::Fp16)
        },
        ..Default::default()
    };
    assert_eq!(bad_gate.validate(), Err(OptionError::MinCosine(1.5)));
    let bad_row_gate = PipelineOptions {
        precision: Precision {
            min_row_cosine: Some(-0.5),
            ..Precision::new(Form::Int8Dynamic)
        },
        ..Default::default()
    };
    assert_eq!(bad_row_gate.validate(), Err(OptionError::MinRowCosine(-0.5)));
    let row_gate_on_fp32 = PipelineOptions {
        precision: Precision {
            min_row_cosine: Some(0.99),
            ..Precision::new(Form::Fp32)
        },
        ..Default::default()
    };
    assert_eq!(
        row_gate_on_fp32.validate(),
        Err(OptionError::MinRowCosineNeedsReduced)
    );
}

/// Every option that only int8 reads is refused on fp16 and fp32, naming
/// the flag and the precision; fp32 takes no gate.
#[test]
fn int8_options_on_another_precision_are_refused_by_name() {
    use bertc::passes::WeightGranularity;
    use bertc::quantize::WeightBits;
    for form in [Form::Fp32, Form::Fp16] {
        let name = Precision::new(form).name();
        for (precision, flag) in [
            (
                Precision {
                    weights: WeightGranularity::PerTensor,
                    ..Precision::new(form)
                },
                "--per-tensor",
            ),
            (
                Precision {
                    weight_bits: WeightBits::Seven,
                    ..Precision::new(form)
                },
                "--weight-bits",
            ),
            (
                Precision {
                    skip: Skip::Auto,
                    ..Precision::new(form)
                },
                "--quantize-skip",
            ),
            (
                Precision {
                    embeddings: false,
                    ..Precision::new(form)
                },
                "--no-quantize-embeddings",
            ),
        ] {
            let options = PipelineOptions {
                precision,
                ..Default::default()
            };
            assert_eq!(
                options.validate(),
                Err(OptionError::NeedsInt8 {
                    flag,
                    precision: name
                })
            );
        }
        let calibrated = PipelineOptions {
            precision: Precision {
                calibrate: Some("calib.safetensors".into()),
                ..Precision::new(form)
            },
            ..Default::default()
        };
        assert_eq!(calibrated.validate(), Err(OptionError::CalibrateNeedsInt8));
    }
    let gated_fp32 = PipelineOptions {
        precision: Precision {
            min_cosine: 0.5,
            ..Precision::default()
        },
        ..Default::default()
    };
    assert_eq!(gated_fp32.validate(), Err(OptionError::MinCosineNeedsReduced));
    let seven_bit_tract = PipelineOptions {
        target: Target::Tract,
        precision: Precision {
            weight_bits: WeightBits::Seven,
            ..Precision::new(Form::Int8Dynamic)
        },
        ..Default::default()
    };
    assert_eq!(
        seven_bit_tract.validate(),
        Err(OptionError::WeightBitsNeedUnsignedForm("tract"))
    );
}

#[test]
fn an_opset_too_low_for_a_fused_op_fails_before_the_check() {
    let opts = PipelineOptions {
        opset: Some(17),
        ..at_level(Level::O2)
    };
    let err = run(test_session(), Source::Graph(tiny()), &opts)
        .err()
        .expect("opset 17 cannot hold Gelu-20");
    let text = err.to_string();
    assert!(text.contains("Gelu"), "{text}");
}

#[test]
fn explicit_passes_replace_the_level_and_skip_the_lowering() {
    let opts = PipelineOptions {
        passes: PassSelection::Explicit(vec!["fuse_gelu".into()]),
        ..Default::default()
    };
    let compiled = run(test_session(), Source::Graph(tiny()), &opts).unwrap();
    let ran: Vec<&str> = compiled.report.all_passes().map(|r| r.pass).collect();
    assert_eq!(ran, ["fuse_gelu"]);
    assert_eq!(compiled.report.passes[0].report.matches, 2);
    assert_eq!(compiled.report.check.len(), 2, "the explicit list is checked too");
}

#[test]
fn shapes_only_builds_cost_what_seeded_builds_cost() {
    for name in ["bert-tiny", "all-MiniLM-L6-v2"] {
        let c = load_config(name).unwrap();
        for level in [Level::O0, Level::O2] {
            let options = PipelineOptions {
                check: false,
                ..at_level(level)
            };
            let seeded = compile(test_session(), &c, BuildOptions::default(), &options)
                .unwrap()
                .into_graph();
            let shapes = BuildOptions {
                shapes_only: true,
                ..Default::default()
            };
            let placeholder = compile(test_session(), &c, shapes, &options)
                .unwrap()
                .into_graph();
            assert_eq!(
                seeded.op_histogram(),
                placeholder.op_histogram(),
                "{name} {level:?}"
            );
            assert_eq!(
                seeded.parameter_count(),
                placeholder.parameter_count(),
                "{name} {level:?}"
            );
            let (a, b) = (
                graph_cost(&seeded, 2, 64).unwrap(),
                graph_cost(&placeholder, 2, 64).unwrap(),
            );
            assert_eq!(a.macs_per_sequence, b.macs_per_sequence, "{name} {level:?}");
            assert_eq!(a.activation_bytes, b.activation_bytes, "{name} {level:?}");
            assert_eq!(a.weight_bytes.stored, b.weight_bytes.stored, "{name} {level:?}");
        }
    }
}

/// The check loads the bytes that are written; whatever later stages do,
/// the written bytes are the final graph's serialization (a stale cache
/// would write the checked graph instead of the reduced one).
#[test]
fn the_written_bytes_are_the_final_graph_serialized() {
    let c = load_config("bert-tiny").unwrap();
    for precision in [
        Precision::default(),
        Precision::new(Form::Int8Dynamic),
        Precision::new(Form::Fp16),
    ] {
        for target in [Target::Portable, Target::Onnxruntime] {
            let opts = PipelineOptions {
                precision: precision.clone(),
                target,
                ..at_level(Level::O2)
            };
            let compiled = compile(test_session(), &c, BuildOptions::default(), &opts).unwrap();
            let fresh = bertc::onnx::export_bytes(compiled.graph(), compiled.export()).unwrap();
            assert!(
                compiled.to_bytes().unwrap() == fresh,
                "{target:?} {}: the cached bytes differ from the final graph's",
                precision.name()
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.onnx");
            assert_eq!(compiled.write(&path).unwrap(), fresh.len());
            assert!(std::fs::read(&path).unwrap() == fresh);
        }
    }
}

/// The files in `dir`, by name.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// With the output path known, the pipeline serializes the final model
/// straight into a temporary file beside it while the check (or the gate)
/// runs: `write_files` then renames exactly the final graph's bytes into
/// place, and nothing else is left in the folder. Where a later stage
/// changes the graph (lowering for onnxruntime), the file is written at
/// the end as before.
#[test]
fn the_model_written_during_the_check_is_the_final_graph() {
    let c = load_config("bert-tiny").unwrap();
    for precision in [Precision::default(), Precision::new(Form::Int8Dynamic)] {
        for target in [Target::Portable, Target::Onnxruntime] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.onnx");
            let opts = PipelineOptions {
                precision: precision.clone(),
                target,
                output: Some(path.clone()),
                ..at_level(Level::O2)
            };
            let mut compiled = compile(test_session(), &c, BuildOptions::default(), &opts).unwrap();
            let what = format!("{target:?} {}", precision.name());
            // Before write_files the output does not exist; where no stage
            // after the check or gate changes the graph (not the onnxruntime
            // lowering), its bytes are already in a hidden temporary file.
            assert!(!path.exists(), "{what}: the output appeared before write_files");
            let early = listing(dir.path());
            match target {
                Target::Portable => assert!(
                    early.len() == 1 && early[0].starts_with(".bertc-"),
                    "{what}: no early write: {early:?}"
                ),
                _ => assert!(early.is_empty(), "{what}: {early:?}"),
            }
            let fresh = bertc::onnx::export_bytes(compiled.graph(), compiled.export()).unwrap();
            let written = compiled.write_files(&path).unwrap();
            assert_eq!(written.model_bytes, fresh.len(), "{what}");
            assert!(
                std::fs::read(&path).unwrap() == fresh,
                "{what}: the file is not the final graph"
            );
            assert_eq!(listing(dir.path()), ["m.onnx"], "{what}");
        }
    }
}

/// A compile that fails after the early write began — here the accuracy
/// gate, with a bar no int8 model reaches — leaves nothing behind: no
/// output, no temporary file.
#[test]
fn a_failed_gate_removes_the_model_written_during_it() {
    let c = load_config("bert-tiny").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let mut precision = Precision::new(Form::Int8Dynamic);
    precision.min_cosine = 1.0;
    let opts = PipelineOptions {
        precision,
        output: Some(path.clone()),
        ..at_level(Level::O2)
    };
    let err = compile(test_session(), &c, BuildOptions::default(), &opts)
        .err()
        .expect("the gate fails");
    assert!(err.to_string().contains("cosine"), "{err}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}
