//! bertc's files load in tract the plain way (issue 13, "Plain tract
//! loading"): `model_for_path`, a concrete fact per input, `into_optimized`,
//! with no `with_ignore_value_info` — as PyTorch's exports load. Runs every
//! head at -O0 and -O2 and asserts both give the same numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

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
