//! bertc's files load the plain way (issue 13, "Plain tract loading" and
//! item 4): in tract with `model_for_path`, a concrete fact per input,
//! `into_optimized`, and no `with_ignore_value_info` — as PyTorch's exports
//! load; in onnxruntime at every graph optimization level; in OpenVINO
//! (f32 inference precision). Every golden case of tests/fixtures (the
//! shared golden set's cases/), every head, every target, against PyTorch's
//! outputs within 1e-4.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bertc::runtime::{HostData, HostTensor, NamedTensors};
use common::{assert_close, golden, run_onnxruntime_levels, run_openvino_file};
use tract_onnx::prelude::*;

const SEQ: usize = 16;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn compile(dir: &Path, fixture: &str, level: &str, extra: &[&str]) -> PathBuf {
    let output = dir.join(format!("{fixture}{}{level}.onnx", extra.join("")));
    let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .arg("compile")
        .arg(fixtures().join(fixture))
        .args([level, "-o"])
        .arg(&output)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    output
}

/// Loads `path` the plain way and runs it on one [1, SEQ] sequence.
fn run_plain(path: &Path) -> TractResult<Vec<(String, Vec<f32>)>> {
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    let inputs = model.input_outlets()?.len();
    for i in 0..inputs {
        model = model.with_input_fact(i, i64::fact([1, SEQ]).into())?;
    }
    let names: Vec<String> = model
        .output_outlets()?
        .iter()
        .map(|o| model.outlet_label(*o).map(String::from).unwrap_or_default())
        .collect();
    let input_names: Vec<String> = model
        .input_outlets()?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let plan = model.into_optimized()?.into_runnable()?;
    let values: TVec<TValue> = input_names
        .iter()
        .map(|name| {
            let data: Vec<i64> = match name.as_str() {
                "input_ids" => (0..SEQ as i64).map(|i| (i * 7 + 1) % 50).collect(),
                "attention_mask" => (0..SEQ).map(|i| i64::from(i < SEQ - 3)).collect(),
                _ => vec![0; SEQ],
            };
            tract_ndarray::Array2::from_shape_vec((1, SEQ), data)
                .unwrap()
                .into_tvalue()
        })
        .collect();
    let outputs = plan.run(values)?;
    Ok(names
        .into_iter()
        .zip(outputs)
        .map(|(n, t)| {
            (
                n,
                t.to_plain_array_view::<f32>().unwrap().iter().copied().collect(),
            )
        })
        .collect())
}

#[test]
fn every_head_loads_with_concrete_input_facts_and_no_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 6] = [
        ("tiny-base", &[]),
        ("tiny-base", &["--head", "sentence-embedding"]),
        ("tiny-cls", &[]),
        ("tiny-tok", &[]),
        ("tiny-qa", &[]),
        ("tiny-mlm", &[]),
    ];
    for (fixture, extra) in cases {
        let o0 = run_plain(&compile(dir.path(), fixture, "-O0", extra))
            .unwrap_or_else(|e| panic!("{fixture} {extra:?} -O0 does not load plainly: {e:?}"));
        let o2 = run_plain(&compile(dir.path(), fixture, "-O2", extra))
            .unwrap_or_else(|e| panic!("{fixture} {extra:?} -O2 does not load plainly: {e:?}"));
        assert_eq!(o0.len(), o2.len());
        for ((name, a), (name2, b)) in o0.iter().zip(&o2) {
            assert_eq!(name, name2);
            assert_eq!(a.len(), b.len(), "{fixture} {name}");
            assert!(a.iter().all(|x| x.is_finite()), "{fixture} {name}");
            let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(
                max <= 1e-4,
                "{fixture} {extra:?} `{name}`: -O0 vs -O2 max-abs {max:e}"
            );
        }
    }
}

#[test]
fn value_info_is_kept_on_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let count = |p: &Path| {
        // The ValueInfoProto entries, read by tract's own protobuf parser.
        let proto = tract_onnx::onnx().proto_model_for_path(p).unwrap();
        proto.graph.unwrap().value_info.len()
    };
    let plain = compile(dir.path(), "tiny-base", "-O2", &[]);
    assert_eq!(count(&plain), 0);
    let kept = compile(dir.path(), "tiny-base", "-O2", &["--value-info"]);
    assert!(count(&kept) > 50, "--value-info writes every intermediate");
}

/// Loads `path` the plain way with each input's fact set to its shape in
/// `inputs`, and runs it on them.
fn run_plain_on(path: &Path, inputs: &NamedTensors) -> TractResult<NamedTensors> {
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    let names: Vec<String> = model
        .input_outlets()?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    let mut values = TVec::new();
    for (i, name) in names.iter().enumerate() {
        let t = inputs
            .get(name)
            .ok_or_else(|| TractError::msg(format!("no input `{name}`")))?;
        let HostData::I64(data) = &t.data else {
            return Err(TractError::msg(format!("`{name}` is not int64")));
        };
        model = model.with_input_fact(i, i64::fact(&t.shape).into())?;
        values.push(tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), data.clone())?.into_tvalue());
    }
    let outputs: Vec<String> = model
        .output_outlets()?
        .iter()
        .map(|o| model.outlet_label(*o).map(String::from).unwrap_or_default())
        .collect();
    let plan = model.into_optimized()?.into_runnable()?;
    Ok(outputs
        .into_iter()
        .zip(plan.run(values)?)
        .map(|(n, t)| {
            let shape = t.shape().to_vec();
            let v = t.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
            (n, HostTensor::f32(shape, v))
        })
        .collect())
}

/// sentence-transformers' embedding of PyTorch's last_hidden_state: the
/// mean over real tokens, L2-normalised.
fn sentence_embedding(golden: &NamedTensors) -> HostTensor {
    let hidden = &golden["last_hidden_state"];
    let mask = golden["attention_mask"].to_f32();
    let (b, s, h) = (hidden.shape[0], hidden.shape[1], hidden.shape[2]);
    let x = hidden.to_f32();
    let mut out = vec![0f32; b * h];
    for i in 0..b {
        let row = &mut out[i * h..(i + 1) * h];
        let n: f32 = mask[i * s..(i + 1) * s].iter().sum();
        for t in (0..s).filter(|&t| mask[i * s + t] > 0.0) {
            for (o, v) in row.iter_mut().zip(&x[(i * s + t) * h..(i * s + t + 1) * h]) {
                *o += v / n;
            }
        }
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    HostTensor::f32(vec![b, h], out)
}

const TARGETS: [&str; 4] = ["portable", "tract", "openvino", "onnxruntime"];

/// PyTorch's outputs hold within this in every runtime (README: 1e-4).
const ATOL: f64 = 1e-4;

#[test]
fn every_case_head_and_target_loads_plainly_in_tract_onnxruntime_and_openvino() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, Vec<String>, NamedTensors)> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("golden.safetensors").is_file() && p.join("config.json").is_file())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("tiny-"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let args = vec!["compile".into(), p.display().to_string()];
            (name, args, golden(&p))
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(cases.len(), 10, "the ten golden cases of tests/fixtures/tiny-*");
    let base = fixtures().join("tiny-base");
    let mut embedding = golden(&base);
    embedding.insert("sentence_embedding".into(), sentence_embedding(&embedding));
    embedding.remove("last_hidden_state");
    embedding.remove("pooler_output");
    cases.push((
        "tiny-base sentence-embedding".into(),
        vec![
            "compile".into(),
            base.display().to_string(),
            "--head".into(),
            "sentence-embedding".into(),
        ],
        embedding,
    ));
    // PyTorch's own exports of tiny-base, through `optimize`.
    for export in ["torchscript-opset14", "torchscript-opset17", "dynamo-opset18"] {
        let file = fixtures()
            .join("foreign-tiny-base")
            .join(format!("{export}.onnx"));
        cases.push((
            export.into(),
            vec!["optimize".into(), file.display().to_string()],
            golden(&base),
        ));
    }

    for (name, args, expected) in &cases {
        for target in TARGETS {
            let what = format!("{name} --target {target}");
            let out = dir
                .path()
                .join(format!("{}-{target}.onnx", name.replace(' ', "-")));
            let run = Command::new(env!("CARGO_BIN_EXE_bertc"))
                .args(args)
                .args(["--target", target, "-o"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                run.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            // tract has no com.microsoft contrib ops: the onnxruntime target
            // is run by the two runtimes that have them.
            if target == "onnxruntime" {
                // bertc reads its own contrib-op files too.
                for cmd in [&["inspect", "--seq", "10"][..], &["dump"]] {
                    let run = Command::new(env!("CARGO_BIN_EXE_bertc"))
                        .arg(cmd[0])
                        .arg(&out)
                        .args(&cmd[1..])
                        .output()
                        .unwrap();
                    assert!(
                        run.status.success(),
                        "{what}: {}: {}",
                        cmd[0],
                        String::from_utf8_lossy(&run.stderr)
                    );
                    if cmd[0] == "dump" && name == "tiny-base" {
                        let text = String::from_utf8_lossy(&run.stdout);
                        assert!(
                            text.contains("EmbedLayerNormalization"),
                            "{what}: dump shows no contrib op"
                        );
                    }
                }
            } else {
                let outputs = run_plain_on(&out, expected)
                    .unwrap_or_else(|e| panic!("{what} does not load plainly in tract: {e:?}"));
                assert_close(&format!("{what}, tract"), &outputs, expected, ATOL);
            }
            for (level, outputs) in run_onnxruntime_levels(&out, expected) {
                assert_close(&format!("{what}, onnxruntime {level}"), &outputs, expected, ATOL);
            }
            assert_close(
                &format!("{what}, OpenVINO"),
                &run_openvino_file(&out, expected),
                expected,
                ATOL,
            );
        }
    }
}
