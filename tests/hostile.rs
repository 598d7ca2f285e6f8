//! Hostile inputs and environments through the `bertc` binary (issue 13):
//! outputs that are devices, links or inputs, signals during a write, a
//! closed stdout. Each failure is a non-zero exit, one `error:` line that
//! names the path and what was expected, no panic, and no file left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::temporaries;

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

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bertc-") && n.ends_with(".tmp"))
        .collect()
}

/// Non-zero exit, no panic, one `error:` message containing every `needle`,
/// no temporary file in `dir`. Returns stderr.
fn assert_refused(out: &Output, dir: &Path, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "bertc should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "bertc panicked: {err}");
    assert!(
        err.starts_with("error: "),
        "expected an error message, got: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "the message should mention `{n}`: {err}");
    }
    assert_eq!(temp_files(dir), Vec::<String>::new(), "temporary files left");
    err
}

/// A copy of the tiny-base fixture folder (config, weights, golden) in a temp dir.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "golden.safetensors"] {
        std::fs::copy(fixture(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[cfg(unix)]
#[test]
fn dev_null_is_refused_and_stays_a_device() {
    use std::os::unix::fs::FileTypeExt;
    let is_device = |p: &str| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device());
    // The machine is shared: should an older binary have replaced
    // /dev/null by a file, prove the rule on /dev/full instead.
    let device = ["/dev/null", "/dev/full"]
        .into_iter()
        .find(|d| is_device(d))
        .expect("a character device to test with");
    let out = bertc(&[&"compile", &"bert-tiny", &"-O0", &"--no-check", &"-o", &device]);
    let err = stderr(&out);
    assert!(!out.status.success(), "compile -o {device} must fail: {err}");
    assert!(
        err.starts_with(&format!("error: {device}: is a character device")),
        "{err}"
    );
    assert!(is_device(device), "{device} was replaced");

    let dir = fixture_copy();
    let out = bertc(&[
        &"validate",
        &dir.path().join("no-model-needed.onnx"),
        &"--golden",
        &dir.path().join("golden.safetensors"),
        &"--save-outputs",
        &device,
    ]);
    // The refusal comes before the model is read.
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{device}: is a character device")), "{err}");
    assert!(is_device(device), "{device} was replaced");
}

#[cfg(unix)]
#[test]
fn symlinks_fifos_and_folders_are_not_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = bertc(&[&"compile", &"bert-tiny", &"-O0", &"--no-check", &"-o", &link]);
    assert_refused(
        &out,
        dir.path(),
        &["link.onnx", "symbolic link", "regular files or new paths"],
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    let fifo = dir.path().join("fifo.onnx");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let out = bertc(&[&"compile", &"bert-tiny", &"-O0", &"--no-check", &"-o", &fifo]);
    assert_refused(&out, dir.path(), &["fifo.onnx", "FIFO"]);

    let out = bertc(&[
        &"compile",
        &"bert-tiny",
        &"-O0",
        &"--no-check",
        &"-o",
        &dir.path(),
    ]);
    assert_refused(&out, dir.path(), &["folder"]);
}

#[test]
fn an_input_is_never_the_output() {
    let dir = fixture_copy();
    let d = dir.path();
    let config = d.join("config.json");
    let weights = d.join("model.safetensors");
    let golden = d.join("golden.safetensors");
    let before = |p: &Path| std::fs::read(p).unwrap();
    let (config_bytes, weights_bytes, golden_bytes) = (before(&config), before(&weights), before(&golden));

    let out = bertc(&[&"compile", &config, &"-O0", &"--no-check", &"-o", &config]);
    assert_refused(&out, d, &["config.json", "is also the config of this command"]);
    let out = bertc(&[&"compile", &d, &"-O0", &"--no-check", &"-o", &config]);
    assert_refused(&out, d, &["is also the config"]);
    let out = bertc(&[
        &"compile",
        &config,
        &"--weights",
        &weights,
        &"-O0",
        &"--no-check",
        &"-o",
        &weights,
    ]);
    assert_refused(
        &out,
        d,
        &["model.safetensors", "is also the weights of this command"],
    );
    // A different spelling of the same file is the same file.
    let out = bertc(&[
        &"compile",
        &config,
        &"-O0",
        &"--no-check",
        &"-o",
        &d.join(".").join("model.safetensors"),
    ]);
    assert_refused(&out, d, &["is also the weights"]);

    // optimize and validate: compile a model first.
    let model = d.join("m.onnx");
    let out = bertc(&[&"compile", &config, &"-O0", &"--no-check", &"-o", &model]);
    assert!(out.status.success(), "{}", stderr(&out));
    let model_bytes = before(&model);
    let out = bertc(&[&"optimize", &model, &"-o", &model]);
    assert_refused(&out, d, &["m.onnx", "is also the input model"]);
    let out = bertc(&[
        &"validate",
        &model,
        &"--golden",
        &golden,
        &"--save-outputs",
        &golden,
    ]);
    assert_refused(&out, d, &["is also the golden file"]);
    let out = bertc(&[
        &"validate",
        &model,
        &"--golden",
        &golden,
        &"--save-outputs",
        &model,
    ]);
    assert_refused(&out, d, &["is also the model"]);
    // The calibration inputs are an input too, static or dynamic, compile
    // or optimize.
    for quantize in [
        &["--quantize", "static"][..],
        &["--target", "onnxruntime", "--quantize", "dynamic"],
    ] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compile", &config];
        args.extend(quantize.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        args.extend([
            &"--calibrate" as &dyn AsRef<std::ffi::OsStr>,
            &golden,
            &"-o",
            &golden,
        ]);
        assert_refused(&bertc(&args), d, &["is also the calibration inputs"]);
    }
    let out = bertc(&[
        &"optimize",
        &model,
        &"--quantize",
        &"static",
        &"--calibrate",
        &golden,
        &"-o",
        &golden,
    ]);
    assert_refused(&out, d, &["golden.safetensors", "is also the calibration inputs"]);

    // sweep -o STEM writes STEM.md/.json/.svg: `-o config` would overwrite config.json.
    let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .current_dir(d)
        .args(["sweep", "config.json", "--no-peak", "--runs", "1", "-o", "config"])
        .output()
        .unwrap();
    assert_refused(&out, d, &["config.json", "is also the model"]);

    assert_eq!(before(&config), config_bytes);
    assert_eq!(before(&weights), weights_bytes);
    assert_eq!(before(&golden), golden_bytes);
    assert_eq!(before(&model), model_bytes);
}

/// Whether the model's temporary file is being written: beside `output`,
/// or inside the hidden staging folder of an export folder.
#[cfg(unix)]
fn writing_model(dir: &Path) -> bool {
    temporaries(dir).iter().any(|n| {
        let path = dir.join(n);
        (n.ends_with(".tmp") && path.is_file()) || (path.is_dir() && !temp_files(&path).is_empty())
    })
}

/// Starts a compile big enough (BERT-base, 438 MB) that its write takes a
/// while, into `output_name` (a file, or `DIR/` for an export folder),
/// sends `signal` once the model's temporary file appears, and returns
/// whether it was caught mid-write.
#[cfg(unix)]
fn interrupt_during_write(signal: &str, output_name: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join(output_name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_bertc"));
    command
        .args([
            "compile",
            "bert-base-uncased",
            "-O0",
            "--no-check",
            "--threads",
            "1",
            "-o",
        ])
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The child starts with the signals at their defaults whatever this test
    // inherited: a suite started as `cmd &` has SIGINT ignored, and bertc
    // rightly leaves an ignored signal ignored.
    // SAFETY: sigaction is async-signal-safe, as pre_exec requires.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let start = std::time::Instant::now();
    let caught = loop {
        if writing_model(dir.path()) {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            break true;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed().as_secs() > 120 {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let out = child.wait_with_output().unwrap();
    if caught && output.exists() {
        // The signal landed after the rename: nothing to clean.
        return false;
    }
    if caught {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.signal().is_some(),
            "bertc should die by the signal: {:?}",
            out.status
        );
        assert!(!stderr(&out).contains("panicked"));
        assert_eq!(
            temporaries(dir.path()),
            Vec::<String>::new(),
            "{signal} left a temporary file or folder writing {output_name}"
        );
    }
    caught
}

#[cfg(unix)]
#[test]
fn signals_during_a_write_remove_the_temporary_file() {
    for signal in ["TERM", "INT", "HUP"] {
        // The write lasts a fraction of a second; retry if the poll missed it.
        let caught = (0..3).any(|_| interrupt_during_write(signal, "big.onnx"));
        assert!(
            caught,
            "never caught the write of bert-base in progress for {signal}"
        );
    }
}

#[cfg(unix)]
#[test]
fn signals_during_an_export_folder_write_remove_the_staging_folder() {
    for signal in ["TERM", "INT"] {
        let caught = (0..3).any(|_| interrupt_during_write(signal, "big/"));
        assert!(
            caught,
            "never caught the export folder of bert-base in progress for {signal}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("m.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["compile", "bert-tiny", "--report", "-o"])
        .arg(&output)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -0`: the reader goes away before bertc prints.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        !err.contains("panicked"),
        "bertc panicked on a closed pipe: {err}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "expected success or SIGPIPE, got {:?}: {err}",
        out.status
    );
    // The model was written before printing: a closed stdout loses no work.
    assert!(output.is_file());
}

/// A config.json of tiny-base with `fields` replaced, in a fresh folder.
fn config_with(fields: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let extra: serde_json::Value = serde_json::from_str(&format!("{{{fields}}}")).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    (dir, path)
}

#[test]
fn sizes_are_bounded_before_allocating_and_name_their_field() {
    const P62: &str = "4611686018427387904";
    let cases = [
        (
            format!("\"hidden_size\": {P62}"),
            "hidden_size",
            "more than 2^64 parameters",
        ),
        (
            format!("\"intermediate_size\": {P62}"),
            "intermediate_size",
            "more than 2^64",
        ),
        (
            format!("\"type_vocab_size\": {P62}"),
            "type_vocab_size",
            "more than 2^64",
        ),
        (
            format!("\"max_position_embeddings\": {P62}"),
            "max_position_embeddings",
            "more than 2^64",
        ),
        (format!("\"num_labels\": {P62}"), "num_labels", "at most 1048576"),
        (
            "\"hidden_size\": 1000000000, \"num_attention_heads\": 1".to_string(),
            "hidden_size` = 1000000000",
            "17.3 EiB as f32",
        ),
        (
            "\"vocab_size\": 1099511627776".to_string(),
            "vocab_size",
            "132.0 TiB as f32",
        ),
        (
            "\"num_hidden_layers\": 100000".to_string(),
            "num_hidden_layers` = 100000",
            "at most 1024",
        ),
        (
            "\"num_hidden_layers\": 1000, \"hidden_size\": 4096, \"num_attention_heads\": 1".to_string(),
            "num_hidden_layers` = 1000",
            "bound of 2^34",
        ),
    ];
    for (fields, field, needle) in &cases {
        let (dir, config) = config_with(fields);
        let output = dir.path().join("m.onnx");
        for args in [
            vec![
                "compile",
                config.to_str().unwrap(),
                "--random-weights",
                "-o",
                output.to_str().unwrap(),
            ],
            vec!["inspect", config.to_str().unwrap()],
            vec!["dump", config.to_str().unwrap()],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
                .args(&args)
                .output()
                .unwrap();
            let err = assert_refused(&out, dir.path(), &[field, needle]);
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(!output.exists());
        }
    }
}

#[cfg(unix)]
#[test]
fn a_device_is_not_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("m.onnx");
    let out = bertc(&[&"compile", &"/dev/zero", &"-o", &output]);
    assert_refused(&out, dir.path(), &["/dev/zero", "not a regular file"]);
    assert!(!output.exists());
    // Through the library too, and a config over the size bound.
    let err = bertc::config::BertConfig::from_path(Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let big = dir.path().join("config.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(bertc::config::MAX_CONFIG_BYTES + 1).unwrap();
    let err = bertc::config::BertConfig::from_path(&big).unwrap_err();
    assert!(err.to_string().contains("more than the 16777216 bytes"), "{err}");
}

#[test]
fn inspect_counts_a_huge_batch_without_wrapping() {
    let run = |batch: &str| {
        let out = bertc(&[&"inspect", &"bert-base-uncased", &"--batch", &batch]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find(|l| l.contains("multiply-adds"))
            .unwrap()
            .to_string()
    };
    // Per-sequence multiply-adds do not depend on the batch.
    assert_eq!(run("1000000000"), run("1"));
    // A batch whose counts exceed 2^64 is an error, not a wrapped number.
    let out = bertc(&[
        &"inspect",
        &"bert-base-uncased",
        &"--batch",
        &"18446744073709551615",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("exceed 2^64") || err.contains("--batch"), "{err}");
}

/// The tiny-base checkpoint with `value` written at element `index` of `tensor`.
fn poisoned_checkpoint(path: &Path, tensor: &str, index: usize, value: f32) {
    let bytes = std::fs::read(fixture("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let t = owned.iter_mut().find(|t| t.0 == tensor).expect("tensor present");
    assert_eq!(t.1, safetensors::Dtype::F32);
    t.3[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
    let views: Vec<_> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn nonfinite_weights_are_named_unless_allowed() {
    let query = "encoder.layer.0.attention.self.query.weight";
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("w.safetensors");
        // The fixture may store names with or without `bert.`.
        let bytes = std::fs::read(fixture("model.safetensors")).unwrap();
        let names = safetensors::SafeTensors::deserialize(&bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        let name = names.iter().find(|n| n.ends_with(query)).unwrap().clone();
        poisoned_checkpoint(&weights, &name, 17, value);
        let output = dir.path().join("m.onnx");
        let args = |extra: &[&str]| {
            let mut v: Vec<String> = vec![
                "compile".into(),
                fixture("config.json").display().to_string(),
                "--weights".into(),
                weights.display().to_string(),
                "-O0".into(),
                "-o".into(),
                output.display().to_string(),
            ];
            v.extend(extra.iter().map(|s| s.to_string()));
            Command::new(env!("CARGO_BIN_EXE_bertc"))
                .args(v)
                .output()
                .unwrap()
        };
        let out = args(&[]);
        assert_refused(
            &out,
            dir.path(),
            &[
                &name,
                &format!("holds {shown} at element 17"),
                "1 of its",
                "--allow-nonfinite",
            ],
        );
        assert!(!output.exists());
        let out = args(&["--allow-nonfinite", "--no-check"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(output.is_file());
    }
}

/// The tiny-base checkpoint with tensors renamed/dropped/duplicated by `edit`.
fn edited_checkpoint(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(fixture("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut owned);
    let views: Vec<_> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn a_half_or_doubled_pooler_is_an_error_not_a_choice() {
    let unprefixed = |n: &str| n.strip_prefix("bert.").unwrap_or(n).to_string();
    let compile = |weights: &Path, dir: &Path| {
        let output = dir.join("m.onnx");
        let out = bertc(&[
            &"compile",
            &fixture("config.json"),
            &"--weights",
            &weights,
            &"-O0",
            &"-o",
            &output,
        ]);
        (out, output)
    };
    // Bias without weight, and weight without bias.
    for dropped in ["pooler.dense.weight", "pooler.dense.bias"] {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.safetensors");
        edited_checkpoint(&w, |t| t.retain(|t| unprefixed(&t.0) != dropped));
        let (out, output) = compile(&w, dir.path());
        assert_refused(&out, dir.path(), &["missing tensor", dropped]);
        assert!(!output.exists());
    }
    // Both `bert.pooler…` and `pooler…`.
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.safetensors");
    edited_checkpoint(&w, |t| {
        let copies: Vec<_> = t
            .iter()
            .filter(|t| unprefixed(&t.0).starts_with("pooler."))
            .map(|t| {
                let other = match t.0.strip_prefix("bert.") {
                    Some(rest) => rest.to_string(),
                    None => format!("bert.{}", t.0),
                };
                (other, t.1, t.2.clone(), t.3.clone())
            })
            .collect();
        assert_eq!(copies.len(), 2);
        t.extend(copies);
    });
    let (out, output) = compile(&w, dir.path());
    assert_refused(
        &out,
        dir.path(),
        &[
            "bert.pooler.dense.weight",
            "` and `pooler.dense.weight` are present",
            "two copies",
        ],
    );
    assert!(!output.exists());
}

/// Runs bertc, killing it after `seconds`: an input that blocks (a FIFO)
/// or never ends (/dev/zero) must fail the test, not hang it.
fn bertc_within(seconds: u64, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertc"));
    for a in args {
        cmd.arg(a);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= seconds {
            child.kill().unwrap();
            panic!(
                "bertc {:?} still running after {seconds} s",
                args.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn fifos_and_devices_are_refused_as_inputs_without_blocking() {
    let dir = fixture_copy();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = dir.path().join("m.onnx");
    let model = dir.path().join("model.onnx");
    let made = bertc(&[&"compile", &"bert-tiny", &"-O0", &"-o", &model]);
    assert!(made.status.success(), "{}", stderr(&made));
    for input in [fifo.as_path(), Path::new("/dev/zero")] {
        let cases: [Vec<&dyn AsRef<std::ffi::OsStr>>; 5] = [
            vec![&"compile", &"bert-tiny", &"--weights", &input, &"-o", &out],
            vec![&"compile", &input, &"-o", &out],
            vec![
                &"compile",
                &"bert-tiny",
                &"--quantize",
                &"static",
                &"--calibrate",
                &input,
                &"-o",
                &out,
            ],
            vec![&"optimize", &input, &"-o", &out],
            vec![&"validate", &model, &"--golden", &input],
        ];
        for args in cases {
            let result = bertc_within(60, &args);
            assert_refused(&result, dir.path(), &["not a regular file"]);
            assert!(!out.exists());
        }
    }
}

/// tiny-base compiled (checked, -O2) into `dir`, with its golden beside it.
fn compiled_tiny(dir: &Path) -> PathBuf {
    let model = dir.join("tiny.onnx");
    let out = bertc(&[&"compile", &fixture("config.json"), &"-o", &model]);
    assert!(out.status.success(), "{}", stderr(&out));
    model
}

/// The tiny-base golden with `edit` applied, written to `dir/name`.
fn edited_golden(dir: &Path, name: &str, edit: impl FnOnce(&mut bertc::runtime::NamedTensors)) -> PathBuf {
    let mut golden = bertc::runtime::read_safetensors(&fixture("golden.safetensors")).unwrap();
    edit(&mut golden);
    let path = dir.join(name);
    bertc::runtime::write_safetensors(&path, &golden).unwrap();
    path
}

fn set_i64(golden: &mut bertc::runtime::NamedTensors, input: &str, at: usize, value: i64) {
    match &mut golden.get_mut(input).unwrap().data {
        bertc::runtime::HostData::I64(v) => v[at] = value,
        _ => panic!("{input} is i64"),
    }
}

/// Refused like [`assert_refused`], and with nothing of tract's panic on
/// the terminal.
fn assert_refused_quietly(out: &Output, dir: &Path, needles: &[&str]) {
    let err = assert_refused(out, dir, needles);
    for noise in ["stack backtrace", "tract-core", "RUST_BACKTRACE"] {
        assert!(!err.contains(noise), "tract's panic reached the terminal: {err}");
    }
}

#[test]
fn inputs_that_do_not_fit_the_model_are_named_before_tract_runs() {
    let dir = tempfile::tempdir().unwrap();
    let model = compiled_tiny(dir.path());
    // Row 1 (of 3), position 3 (of 10): flat index 13.
    let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
        (
            "token id = vocab",
            edited_golden(dir.path(), "ids300.st", |g| set_i64(g, "input_ids", 13, 300)),
            vec![
                "`input_ids`",
                "batch row 1, position 3 is 300",
                "0 to 299",
                "word-embedding",
            ],
        ),
        (
            "negative token id",
            edited_golden(dir.path(), "ids-1.st", |g| set_i64(g, "input_ids", 13, -1)),
            vec!["`input_ids`", "batch row 1, position 3 is -1", "0 to 299"],
        ),
        (
            "token type 7",
            edited_golden(dir.path(), "type7.st", |g| set_i64(g, "token_type_ids", 13, 7)),
            vec![
                "`token_type_ids`",
                "batch row 1, position 3 is 7",
                "0 to 1",
                "token-type",
            ],
        ),
        (
            "1-D ids",
            edited_golden(dir.path(), "ids1d.st", |g| {
                let t = g.get_mut("input_ids").unwrap();
                let bertc::runtime::HostData::I64(v) = &t.data else {
                    panic!()
                };
                *t = bertc::runtime::HostTensor::i64(vec![10], v[..10].to_vec());
            }),
            vec!["`input_ids`", "shape [10]", "rank-2"],
        ),
        (
            "sequence longer than the position table (40)",
            edited_golden(dir.path(), "long.st", |g| {
                for name in ["input_ids", "attention_mask", "token_type_ids"] {
                    let t = g.get_mut(name).unwrap();
                    let bertc::runtime::HostData::I64(v) = &t.data else {
                        panic!()
                    };
                    let rows: Vec<i64> = v.chunks(10).flat_map(|r| r.repeat(5)).collect();
                    *t = bertc::runtime::HostTensor::i64(vec![3, 50], rows);
                }
            }),
            vec!["`input_ids`", "50 positions", "covers 40"],
        ),
        (
            "float token ids",
            edited_golden(dir.path(), "f32ids.st", |g| {
                let t = g.get_mut("input_ids").unwrap();
                *t = bertc::runtime::HostTensor::f32(t.shape.clone(), t.to_f32());
            }),
            vec!["`input_ids`", "holds f32 values", "expects i64"],
        ),
    ];
    for (what, golden, needles) in &cases {
        let out = bertc(&[&"validate", &model, &"--golden", golden]);
        let mut needles = needles.clone();
        let shown = golden.file_name().unwrap().to_str().unwrap();
        needles.push(shown);
        eprintln!("validate, {what}");
        assert_refused_quietly(&out, dir.path(), &needles);
    }
    // The same rule for a calibration file (one of the cases suffices: one function checks both).
    let out = bertc(&[
        &"compile",
        &fixture("config.json"),
        &"--quantize",
        &"static",
        &"--calibrate",
        &cases[0].1,
        &"-o",
        &dir.path().join("q.onnx"),
    ]);
    assert_refused_quietly(
        &out,
        dir.path(),
        &["ids300.st", "`input_ids`", "is 300", "0 to 299"],
    );
    assert!(!dir.path().join("q.onnx").exists());
}

#[test]
fn a_golden_output_stored_as_integers_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = compiled_tiny(dir.path());
    // pooler_output stored as I32, everything else as it is.
    let golden = bertc::runtime::read_safetensors(&fixture("golden.safetensors")).unwrap();
    let mut owned: Vec<(String, Vec<u8>, safetensors::Dtype, Vec<usize>)> = vec![];
    for (name, t) in &golden {
        let (bytes, dtype) = match (&t.data, name.as_str()) {
            (bertc::runtime::HostData::F32(v), "pooler_output") => (
                v.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect(),
                safetensors::Dtype::I32,
            ),
            (bertc::runtime::HostData::F32(v), _) => (
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                safetensors::Dtype::F32,
            ),
            (bertc::runtime::HostData::I64(v), _) => (
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                safetensors::Dtype::I64,
            ),
        };
        owned.push((name.clone(), bytes, dtype, t.shape.clone()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, b, d, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let path = dir.path().join("int32-output.st");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let out = bertc(&[&"validate", &model, &"--golden", &path]);
    assert_refused_quietly(
        &out,
        dir.path(),
        &["int32-output.st", "`pooler_output`", "integers", "f32"],
    );
}

/// A 1 MB tmpfs mounted on a fresh folder, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(SmallDisk { dir }),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[cfg(unix)]
#[test]
fn a_full_disk_is_an_error_and_leaves_no_temporary_file() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    // bert-tiny is 17 MB: it cannot fit a 1 MB disk. Where mounting is
    // not allowed (not root), the write error is injected instead: a file
    // size limit with SIGXFSZ ignored makes the write fail with EFBIG.
    let (dir, disk) = match SmallDisk::mount() {
        Ok(disk) => (disk.dir.path().to_path_buf(), Some(disk)),
        Err(why) => {
            eprintln!("cannot mount a tmpfs ({why}); injecting the write error with RLIMIT_FSIZE");
            (tempfile::tempdir().unwrap().keep(), None)
        }
    };
    let output = dir.join("model.onnx");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertc"));
    cmd.args(["compile", "bert-tiny", "-O0", "--no-check", "-o"])
        .arg(&output);
    if disk.is_none() {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: 1 << 20,
                    rlim_max: 1 << 20,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.signal(),
        None,
        "bertc died of a signal (SIGBUS on a sparse map?)"
    );
    let needle = if disk.is_some() {
        "No space left on device"
    } else {
        "too large"
    };
    assert_refused(&out, &dir, &["model.onnx", needle]);
    assert!(!output.exists());
    drop(disk);
}

#[test]
fn optimize_refuses_graphs_it_cannot_mean() {
    use bertc::onnx::proto::ModelProto;
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let model = compiled_tiny(dir.path());
    let original = ModelProto::decode(std::fs::read(&model).unwrap().as_slice()).unwrap();
    let default_opset = |m: &mut ModelProto, v: i64| {
        for o in &mut m.opset_import {
            if o.domain.is_empty() || o.domain == "ai.onnx" {
                o.version = v;
            }
        }
    };
    type Edit = Box<dyn Fn(&mut ModelProto)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "no outputs",
            Box::new(|m| m.graph.as_mut().unwrap().output.clear()),
            vec!["no outputs"],
        ),
        (
            "duplicate outputs",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                g.output.push(g.output[0].clone());
            }),
            vec!["`last_hidden_state` twice"],
        ),
        (
            "opset 1",
            Box::new(move |m| default_opset(m, 1)),
            vec!["opset is 1", "11 to 23"],
        ),
        (
            "opset 999",
            Box::new(move |m| default_opset(m, 999)),
            vec!["opset is 999", "11 to 23"],
        ),
        (
            "opset below the ops' minimum",
            Box::new(move |m| default_opset(m, 16)),
            vec![
                "LayerNormalization does not exist before opset 17",
                "imports opset 16",
            ],
        ),
        (
            "IR version 999",
            Box::new(|m| m.ir_version = 999),
            vec!["IR version is 999", "3 to 11"],
        ),
    ];
    for (what, edit, needles) in cases {
        let mut m = original.clone();
        edit(&mut m);
        let input = dir.path().join("edited.onnx");
        std::fs::write(&input, m.encode_to_vec()).unwrap();
        let output = dir.path().join("out.onnx");
        eprintln!("optimize, {what}");
        let out = bertc(&[&"optimize", &input, &"--no-check", &"-o", &output]);
        assert_refused(&out, dir.path(), &needles);
        assert!(!output.exists(), "{what}: an output was written");
    }
}

/// Calibration inputs of zero length ([N, 0]) are refused by name, static
/// or dynamic, before tract sees them (issue 25 N13: "tract panicked while
/// it tried to optimize the model"); nothing is written.
#[test]
fn empty_calibration_rows_are_refused_before_tract() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let calibration = d.join("empty.safetensors");
    let empty: [u8; 0] = [];
    let views: Vec<_> = ["input_ids", "attention_mask", "token_type_ids"]
        .into_iter()
        .map(|n| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![4, 0], &empty).unwrap();
            (n.to_string(), v)
        })
        .collect();
    std::fs::write(&calibration, safetensors::serialize(views, None).unwrap()).unwrap();
    let output = d.join("m.onnx");
    for quantize in [
        &["--quantize", "static"][..],
        &["--target", "onnxruntime", "--quantize", "dynamic"],
    ] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compile", &"bert-tiny"];
        args.extend(quantize.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        args.extend([
            &"--calibrate" as &dyn AsRef<std::ffi::OsStr>,
            &calibration,
            &"-o",
            &output,
        ]);
        let out = bertc(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_refused(&out, d, &["empty.safetensors", "[4, 0]", "S at least 1"]);
        assert!(!output.exists());
    }
}

/// `run` with a tokenizer that does not fit the model — ids past its
/// 300-row word table — names the input, the value and the table instead
/// of passing tract's panic text on (issue 25 N7).
#[test]
fn run_checks_the_tokenizer_output_against_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = common::fixture("pipelines/seq-cls/tokenizer.json");
    let out = bertc(&[
        &"run",
        &common::fixture("tiny-cls"),
        &"--tokenizer",
        &tokenizer,
        &"hello world, this is a test",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_refused_quietly(
        &out,
        dir.path(),
        &["the tokenizer's output", "`input_ids`", "300 rows"],
    );
}

/// A config inside the parameter bound whose one table is 34 GB as f32
/// aborted even `inspect` (issue 25, N16, rc 134). Placeholder weights for
/// counting cost no memory; seeded weights that cannot be had are a
/// refusal naming the parameter, not the allocator's abort. (A 1 TiB
/// table here: more than any machine the tests run on.)
#[test]
fn a_tensor_larger_than_memory_is_never_allocated_for_counting_and_refused_for_compiling() {
    use bertc::weights::{placeholder, seeded, Init, ParamSpec, WeightsError};
    let spec = ParamSpec {
        name: "embeddings.word_embeddings.weight".into(),
        shape: vec![1 << 32, 64],
        init: Init::Normal { std: 0.02 },
        transpose: false,
        under_bert_prefix: false,
        prefix: "bert",
    };
    // A terabyte the process could not hold: were it allocated or touched,
    // the test would abort here.
    let mut weights = placeholder(std::slice::from_ref(&spec)).unwrap();
    let tensor = weights.take("embeddings.word_embeddings.weight").unwrap();
    assert_eq!(tensor.dims(), [1 << 32, 64]);
    assert_eq!(tensor.raw().len(), 1 << 40);
    drop(tensor);
    match seeded(&[spec], 0) {
        Err(e @ WeightsError::Allocation { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.contains("`embeddings.word_embeddings.weight` [4294967296, 64]")
                    && shown.contains("1099.5 GB"),
                "{shown}"
            );
        }
        Err(other) => panic!("expected an allocation refusal, got {other}"),
        Ok(_) => panic!("64 GiB were drawn"),
    }
}
