//! Hostile bytes through the library's readers (issue 13, "Reading the code
//! found…"): hand-made ONNX graphs that used to panic the importer, shape
//! inference or the passes, generated inputs for degenerate tables, and
//! sizes that wrapped. Each must end in a typed error (or a correct result),
//! never a panic.

use bertc::onnx::proto::{self, tensor_shape_proto::dimension::Value as DimValue};
use prost::Message;

fn tensor_type(elem_type: i32, dims: &[i64]) -> Option<proto::TypeProto> {
    Some(proto::TypeProto {
        value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
            elem_type,
            shape: Some(proto::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&d| proto::tensor_shape_proto::Dimension {
                        value: Some(DimValue::DimValue(d)),
                        denotation: String::new(),
                    })
                    .collect(),
            }),
        })),
        denotation: String::new(),
    })
}

fn value(name: &str, elem_type: i32, dims: &[i64]) -> proto::ValueInfoProto {
    proto::ValueInfoProto {
        name: name.into(),
        r#type: tensor_type(elem_type, dims),
        doc_string: String::new(),
    }
}

fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<proto::AttributeProto>,
) -> proto::NodeProto {
    proto::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_node"),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: proto::attribute_type::INT,
        i,
        ..Default::default()
    }
}

/// ConstantOfShape's `value`: an int64 scalar (its output is then known
/// at compile time, the branch that allocated `n` elements).
fn int64_value(v: i64) -> proto::AttributeProto {
    let mut t = i64_tensor("value", &[v]);
    t.dims = vec![1];
    proto::AttributeProto {
        name: "value".into(),
        r#type: proto::attribute_type::TENSOR,
        t: Some(t),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> proto::TensorProto {
    proto::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: proto::data_type::FLOAT,
        raw_data: values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, values: &[i64]) -> proto::TensorProto {
    proto::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: proto::data_type::INT64,
        raw_data: values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
        ..Default::default()
    }
}

/// An opset-17 model of `nodes`, with these graph inputs, initializers and outputs.
fn model(
    inputs: Vec<proto::ValueInfoProto>,
    initializer: Vec<proto::TensorProto>,
    nodes: Vec<proto::NodeProto>,
    outputs: Vec<proto::ValueInfoProto>,
) -> Vec<u8> {
    proto::ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(proto::GraphProto {
            node: nodes,
            name: "g".into(),
            initializer,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The error of importing `bytes`, which must fail without panicking.
fn import_error(bytes: &[u8]) -> String {
    match std::panic::catch_unwind(|| bertc::onnx::import_bytes(bytes)) {
        Err(_) => panic!("the importer panicked"),
        Ok(Ok(_)) => panic!("the hostile model was accepted"),
        Ok(Err(e)) => e.to_string(),
    }
}

#[test]
fn constant_of_shape_with_a_negative_target_is_an_error() {
    let bytes = model(
        vec![],
        vec![i64_tensor("target", &[-1])],
        vec![node("ConstantOfShape", &["target"], &["y"], vec![int64_value(7)])],
        vec![value("y", proto::data_type::INT64, &[1])],
    );
    let e = import_error(&bytes);
    assert!(e.contains("ConstantOfShape") && e.contains("-1"), "{e}");
}

#[test]
fn shape_with_start_and_no_input_is_an_error() {
    let bytes = model(
        vec![],
        vec![],
        vec![node("Shape", &[], &["y"], vec![int_attr("start", 1)])],
        vec![value("y", proto::data_type::INT64, &[1])],
    );
    let e = import_error(&bytes);
    assert!(e.contains("Shape") && e.contains("no input"), "{e}");
}

#[test]
fn a_negative_dim_value_is_an_error_naming_the_input() {
    let bytes = model(
        vec![value("x", proto::data_type::FLOAT, &[2, -3])],
        vec![],
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![value("y", proto::data_type::FLOAT, &[2, 3])],
    );
    let e = import_error(&bytes);
    assert!(
        e.contains("`x`") && e.contains("-3") && e.contains("negative"),
        "{e}"
    );
}

#[test]
fn an_initializer_whose_size_wraps_is_an_error() {
    // 2^62 × 32 f32 elements wrap to 0 bytes in unchecked arithmetic, which
    // the empty data would then "match".
    let mut t = f32_tensor("w", &[1 << 62, 32], &[]);
    t.raw_data = Default::default();
    let bytes = model(
        vec![],
        vec![t],
        vec![node("Relu", &["w"], &["y"], vec![])],
        vec![value("y", proto::data_type::FLOAT, &[1])],
    );
    let e = import_error(&bytes);
    assert!(e.contains("`w`") && e.contains("4611686018427387904"), "{e}");
}

/// x [1, 4] · W [4, 0] + b [0]: a linear layer of width zero.
fn zero_width_linear() -> Vec<u8> {
    model(
        vec![value("x", proto::data_type::FLOAT, &[1, 4])],
        vec![f32_tensor("w", &[4, 0], &[]), f32_tensor("b", &[0], &[])],
        vec![
            node("MatMul", &["x", "w"], &["xw"], vec![]),
            node("Add", &["xw", "b"], &["y"], vec![]),
        ],
        vec![value("y", proto::data_type::FLOAT, &[1, 0])],
    )
}

#[test]
fn zero_width_linear_weights_do_not_reach_the_quantizer_or_the_fusions() {
    let bytes = zero_width_linear();
    // Import, -O2, int8 and fp16 rewrites, export: what `optimize` and
    // `compile --quantize` do, without tract.
    let result = std::panic::catch_unwind(|| bertc::untrusted::onnx_model(&bytes));
    let graph = result
        .expect("a zero-width linear panicked a pass")
        .expect("a zero-width linear is a valid (empty) graph");
    assert_eq!(graph.outputs().len(), 1);
    // The quantizer leaves it alone: no int8 product for a zero-width weight.
    let mut g = graph.clone();
    let runs = bertc::passes::PassManager::new()
        .with(bertc::passes::QuantizeInt8::dynamic())
        .run(&mut g)
        .unwrap();
    assert_eq!(runs[0].report.matches, 0);
}

#[test]
fn duplicate_outputs_and_no_outputs_are_errors() {
    let relu = || vec![node("Relu", &["x"], &["y"], vec![])];
    let x = || vec![value("x", proto::data_type::FLOAT, &[2])];
    let y = || value("y", proto::data_type::FLOAT, &[2]);
    let e = import_error(&model(x(), vec![], relu(), vec![]));
    assert!(e.contains("no outputs"), "{e}");
    let e = import_error(&model(x(), vec![], relu(), vec![y(), y()]));
    assert!(e.contains("`y` twice"), "{e}");
}

/// onnx's checker refuses two initializers of one name and a domain
/// imported twice; bertc took the last tensor and the first opset (issue
/// 25). Both are refused, naming what is doubled.
#[test]
fn a_doubled_initializer_or_default_opset_is_refused_as_onnx_checker_does() {
    let add = || {
        model(
            vec![value("x", proto::data_type::FLOAT, &[2])],
            vec![
                f32_tensor("w", &[2], &[1.0, 2.0]),
                f32_tensor("w", &[2], &[3.0, 4.0]),
            ],
            vec![node("Add", &["x", "w"], &["y"], vec![])],
            vec![value("y", proto::data_type::FLOAT, &[2])],
        )
    };
    let e = import_error(&add());
    assert!(e.contains("two initializers are named `w`"), "{e}");
    let mut m = proto::ModelProto::decode(add().as_slice()).unwrap();
    m.graph.as_mut().unwrap().initializer.pop();
    assert!(bertc::onnx::import_bytes(&m.encode_to_vec()).is_ok());
    for second in ["", "ai.onnx"] {
        let mut twice = m.clone();
        twice.opset_import.push(proto::OperatorSetIdProto {
            domain: second.into(),
            version: 13,
        });
        let e = import_error(&twice.encode_to_vec());
        assert!(
            e.contains("imports the default domain 2 times (opsets [17, 13])"),
            "{e}"
        );
    }
}

#[test]
fn versions_outside_what_bertc_knows_are_errors_naming_them() {
    let bytes = model(
        vec![value("x", proto::data_type::FLOAT, &[2])],
        vec![],
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![value("y", proto::data_type::FLOAT, &[2])],
    );
    let with = |ir: i64, opset: i64| {
        let mut m = proto::ModelProto::decode(bytes.as_slice()).unwrap();
        m.ir_version = ir;
        m.opset_import[0].version = opset;
        m.encode_to_vec()
    };
    assert!(bertc::onnx::import_bytes(&with(8, 17)).is_ok());
    for (ir, opset, needle) in [
        (999, 17, "IR version is 999; bertc reads 3 to 11"),
        (8, 999, "opset is 999; bertc reads 11 to 23"),
        (8, 1, "opset is 1; bertc reads 11 to 23"),
    ] {
        let e = bertc::onnx::import_bytes(&with(ir, opset)).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    // Read from a file, the error names it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.onnx");
    std::fs::write(&path, with(999, 17)).unwrap();
    let e = bertc::onnx::read_model(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: ", path.display())) && e.contains("IR version is 999"),
        "{e}"
    );
    // An op newer than the opset the model imports.
    let mut m = proto::ModelProto::decode(with(8, 13).as_slice()).unwrap();
    m.graph.as_mut().unwrap().node[0] = node("Gelu", &["x"], &["y"], vec![]);
    let e = import_error(&m.encode_to_vec());
    assert!(e.contains("Gelu does not exist before opset 20"), "{e}");
}

#[test]
fn generated_inputs_stay_inside_tiny_tables_and_empty_sequences() {
    for vocab in [0usize, 1, 2, 3, 300] {
        for seq in [0usize, 1, 2, 7] {
            let inputs = bertc::runtime::realistic_inputs(vocab, 1, 3, seq, 0);
            let ids = &inputs["input_ids"];
            assert_eq!(ids.shape, vec![3, seq]);
            let bertc::runtime::HostData::I64(v) = &ids.data else {
                panic!("ids are i64")
            };
            let limit = vocab.max(1) as i64;
            assert!(
                v.iter().all(|&id| (0..limit).contains(&id)),
                "vocab {vocab}, seq {seq}: ids {v:?} leave 0..{limit}"
            );
        }
    }
}

#[test]
fn a_huge_num_labels_is_refused_before_building_labels() {
    let text = r#"{"model_type": "bert", "num_labels": 4000000000}"#;
    // Refused by its bound, not after building 4e9 strings (that takes
    // minutes and 100+ GB: the test would not finish).
    let e = bertc::untrusted::config(text.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("num_labels") && e.contains("4000000000"), "{e}");
}

/// A model bertc's IR cannot import (Sinh is not an IR op), so no input
/// check applies, but tract runs: an out-of-range id panics inside tract's
/// Gather. The panic must come back as one error line, with tract's panic
/// text and backtrace kept off the terminal.
#[test]
fn a_tract_panic_is_an_error_without_its_text_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = model(
        vec![value("input_ids", proto::data_type::INT64, &[1, 2])],
        vec![f32_tensor("table", &[4, 2], &[0.5; 8])],
        vec![
            node("Gather", &["table", "input_ids"], &["rows"], vec![]),
            node("Sinh", &["rows"], &["y"], vec![]),
        ],
        vec![value("y", proto::data_type::FLOAT, &[1, 2, 2])],
    );
    let model_path = dir.path().join("sinh.onnx");
    std::fs::write(&model_path, bytes).unwrap();
    let golden = dir.path().join("golden.st");
    let inputs = bertc::runtime::NamedTensors::from([(
        "input_ids".to_string(),
        bertc::runtime::HostTensor::i64(vec![1, 2], vec![1, 9]),
    )]);
    bertc::runtime::write_safetensors(&golden, &inputs).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .arg("validate")
        .arg(&model_path)
        .arg("--golden")
        .arg(&golden)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("tract panicked while it tried to"), "{err}");
    for noise in ["panicked at", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(
            !err.contains(noise),
            "tract's panic text reached the terminal: {err}"
        );
    }
}
