//! Bad input through the `bertc` binary: every failure must be a non-zero
//! exit with a clear message naming what was wrong and what was expected,
//! never a panic, and must leave no output (nor temporary) file behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use safetensors::{Dtype, SafeTensors};

const QUERY: &str = "encoder.layer.0.attention.self.query.weight";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-base")
        .join(name)
}

fn bertc(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    common::bertc_run(args)
}

fn stderr(out: &Output) -> String {
    common::stderr_of(out)
}

/// Asserts a clean failure: non-zero exit, no panic, an `error:` message,
/// `output` not created and no `.bertc-*.tmp` left in its folder. Returns stderr.
fn assert_clean_failure(out: &Output, output: &Path) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "bertc should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "bertc panicked: {err}");
    assert!(
        err.starts_with("error: "),
        "expected an error message, got: {err}"
    );
    assert!(
        !output.exists(),
        "{} must not be written; stderr: {err}",
        output.display()
    );
    assert_no_temp_files(output.parent().unwrap());
    err
}

fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !(name.starts_with(".bertc-") && name.ends_with(".tmp")),
            "temporary file {name} left in {}",
            dir.display()
        );
    }
}

/// The fixture checkpoint's tensors, owned, in file order.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn fixture_tensors() -> Tensors {
    let bytes = std::fs::read(fixture("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = st
        .tensors()
        .into_iter()
        .map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(tensors.iter().any(|t| t.0 == QUERY), "the fixture holds {QUERY}");
    tensors
}

/// Writes the fixture checkpoint, edited, to `path`.
fn write_edited_checkpoint(path: &Path, edit: impl FnOnce(&mut Tensors)) {
    let mut tensors = fixture_tensors();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Replaces one tensor of the list.
fn replace(tensors: &mut Tensors, name: &str, dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) {
    let t = tensors.iter_mut().find(|t| t.0 == name).expect("tensor present");
    *t = (name.to_string(), dtype, shape, data);
}

/// `bertc compile` of the fixture config with these weights into `dir/m.onnx`.
fn compile_with(dir: &Path, weights: &Path) -> (Output, PathBuf) {
    let output = dir.join("m.onnx");
    let out = bertc(&[
        &"compile",
        &fixture("config.json"),
        &"--weights",
        &weights,
        &"-o",
        &output,
    ]);
    (out, output)
}

/// Compiles the fixture checkpoint for real (must succeed).
fn compile_fixture(dir: &Path) -> PathBuf {
    let (out, output) = compile_with(dir, &fixture("model.safetensors"));
    assert!(out.status.success(), "fixture compile failed: {}", stderr(&out));
    assert!(output.is_file());
    output
}

#[test]
fn missing_tensor_is_named_with_its_expected_shape() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| t.retain(|t| t.0 != QUERY));
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(err.contains("missing tensor"), "{err}");
    assert!(err.contains(QUERY), "{err}");
    assert!(err.contains("expected shape [32, 32]"), "{err}");
    assert!(err.contains(&weights.display().to_string()), "{err}");
    // Only that tensor is reported.
    assert_eq!(err.matches("missing tensor").count(), 1, "{err}");
}

#[test]
fn wrong_shape_names_the_tensor_its_shape_and_the_expected_one() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| {
        replace(t, QUERY, Dtype::F32, vec![32, 16], vec![0u8; 32 * 16 * 4]);
    });
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(
        err.contains(&format!("tensor `{QUERY}` has shape [32, 16], expected [32, 32]")),
        "{err}"
    );
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| {
        t.push(("foo.bar".into(), Dtype::F32, vec![3], vec![0u8; 12]));
    });
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(
        err.contains("unexpected tensor `foo.bar` with shape [3]"),
        "{err}"
    );
    assert!(!err.contains("missing tensor"), "{err}");
}

#[test]
fn several_problems_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| {
        t.retain(|t| t.0 != "pooler.dense.bias");
        t.push(("foo.bar".into(), Dtype::F32, vec![1], vec![0u8; 4]));
    });
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(
        err.contains("pooler.dense.bias") && err.contains("expected shape [32]"),
        "{err}"
    );
    assert!(err.contains("foo.bar"), "{err}");
}

#[test]
fn truncated_checkpoint_is_not_a_valid_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("model.safetensors")).unwrap();
    let weights = dir.path().join("half.safetensors");
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(err.contains("not a valid safetensors file"), "{err}");
    assert!(err.contains(&weights.display().to_string()), "{err}");
}

/// A truncated `model.safetensors.index.json` is a parse error with its
/// line and column, not "not a checkpoint index" (issue 25).
#[test]
fn truncated_weights_index_is_a_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"metadata": {"total_size": 100}, "weight_map": {"embeddings.word_embeddings.weight": "model-0"#,
    )
    .unwrap();
    let (out, output) = compile_with(dir.path(), &index);
    let err = assert_clean_failure(&out, &output);
    assert!(
        err.contains("weights index") && err.contains("EOF while parsing"),
        "{err}"
    );
    assert!(!err.contains("not a checkpoint index"), "{err}");
}

#[test]
fn wrong_dtype_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| {
        replace(t, QUERY, Dtype::I64, vec![32, 32], vec![0u8; 32 * 32 * 8]);
    });
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(err.contains(&format!("tensor `{QUERY}` has dtype I64")), "{err}");
    assert!(err.contains("expected F32, F16 or BF16"), "{err}");
}

#[test]
fn f16_checkpoint_is_accepted() {
    // The counterpart of the dtype check: a half-precision source is widened.
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| {
        let data: Vec<u8> = (0..32 * 32)
            .flat_map(|i| half::f16::from_f32(i as f32 / 1024.0).to_le_bytes())
            .collect();
        replace(t, QUERY, Dtype::F16, vec![32, 32], data);
    });
    let (out, output) = compile_with(dir.path(), &weights);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(output.is_file());
}

#[test]
fn missing_weights_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("does-not-exist.safetensors");
    let (out, output) = compile_with(dir.path(), &weights);
    let err = assert_clean_failure(&out, &output);
    assert!(err.contains("cannot read weights"), "{err}");
    assert!(err.contains(&weights.display().to_string()), "{err}");
}

#[test]
fn unknown_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("m.onnx");
    for model in ["bert-humongous-cased", "no/such/config.json"] {
        let out = bertc(&[&"compile", &model, &"-o", &output]);
        let err = assert_clean_failure(&out, &output);
        assert!(
            err.contains(&format!(
                "`{model}` is neither a preset, a config.json nor a model folder"
            )),
            "{err}"
        );
        assert!(
            err.contains("presets: albert-base-v2, albert-large-v2, all-MiniLM-L6-v2, all-mpnet-base-v2, bert-base-cased"),
            "{err}"
        );
    }
}

#[test]
fn malformed_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{\"hidden_size\": 32,").unwrap();
    let output = dir.path().join("m.onnx");
    let out = bertc(&[&"compile", &config, &"-o", &output]);
    let err = assert_clean_failure(&out, &output);
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(err.contains("not a valid BERT config.json"), "{err}");
}

#[test]
fn dump_of_random_bytes_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("random.onnx");
    // A fixed xorshift stream: deterministic "random" bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&model, bytes).unwrap();
    let out = bertc(&[&"dump", &model]);
    let err = assert_clean_failure(&out, &dir.path().join("never-written"));
    assert!(err.contains("not a valid ONNX model"), "{err}");
    assert!(err.contains(&model.display().to_string()), "{err}");
    assert!(out.stdout.is_empty(), "nothing is dumped from a bad file");
}

#[test]
fn dump_of_truncated_model_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(compile_fixture(dir.path())).unwrap();
    // The real model dumps; every cut of it is refused.
    let ok = bertc(&[&"dump", &dir.path().join("m.onnx")]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let model = dir.path().join("cut.onnx");
    for cut in [full.len() / 2, full.len() / 4, full.len() * 3 / 4, full.len() - 1] {
        std::fs::write(&model, &full[..cut]).unwrap();
        let out = bertc(&[&"dump", &model]);
        let err = assert_clean_failure(&out, &dir.path().join("never-written"));
        assert!(err.contains("not a valid ONNX model"), "cut at {cut}: {err}");
        assert!(err.contains(&model.display().to_string()), "cut at {cut}: {err}");
    }
}

/// Writes the fixture golden file without the tensor `drop`.
fn golden_without(path: &Path, drop: &str) {
    let bytes = std::fs::read(fixture("golden.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st.tensors().into_iter().filter(|(n, _)| n != drop).collect();
    assert_eq!(kept.len() + 1, st.len(), "the golden file holds {drop}");
    std::fs::write(path, safetensors::serialize(kept, None).unwrap()).unwrap();
}

#[test]
fn validate_names_an_input_missing_from_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = compile_fixture(dir.path());
    let golden = dir.path().join("golden.safetensors");
    golden_without(&golden, "token_type_ids");
    let saved = dir.path().join("outputs.safetensors");
    let out = bertc(&[
        &"validate",
        &model,
        &"--golden",
        &golden,
        &"--save-outputs",
        &saved,
    ]);
    let err = assert_clean_failure(&out, &saved);
    assert!(err.contains("model input `token_type_ids` is missing"), "{err}");
}

#[test]
fn validate_exit_code_follows_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let model = compile_fixture(dir.path());
    let golden = fixture("golden.safetensors");

    let ok = bertc(&[&"validate", &model, &"--golden", &golden]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "stdout: {text}\nstderr: {}",
        stderr(&ok)
    );
    for name in ["last_hidden_state", "pooler_output"] {
        assert!(
            text.lines().any(|l| l.starts_with(name) && l.ends_with("ok")),
            "{text}"
        );
    }

    let strict = bertc(&[&"validate", &model, &"--golden", &golden, &"--atol", &"1e-12"]);
    let text = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(
        strict.status.code(),
        Some(1),
        "stdout: {text}\nstderr: {}",
        stderr(&strict)
    );
    assert!(!stderr(&strict).contains("panicked"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("last_hidden_state") && l.ends_with("FAIL: max-abs above 0.000000000001")),
        "{text}"
    );
}

#[test]
fn failed_compile_leaves_an_existing_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("m.onnx");
    let previous = b"previous model bytes".to_vec();
    std::fs::write(&output, &previous).unwrap();
    let weights = dir.path().join("w.safetensors");
    write_edited_checkpoint(&weights, |t| t.retain(|t| t.0 != QUERY));

    let out = bertc(&[
        &"compile",
        &fixture("config.json"),
        &"--weights",
        &weights,
        &"-o",
        &output,
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(QUERY), "{err}");
    assert_eq!(
        std::fs::read(&output).unwrap(),
        previous,
        "the existing output was modified"
    );
    assert_no_temp_files(dir.path());
}
