//! Models with external data (issue 13, item 3 and row 10/row 2): a small
//! model forced to `--external-data` is written as `m.onnx` + `m.onnx_data`
//! together, and every command and every runtime reads it — bertc's
//! validate, bench, inspect, dump and optimize, tract the plain way,
//! onnxruntime at every optimization level and OpenVINO — with PyTorch's
//! numbers within 1e-4. A data file that a symlink points outside the
//! model's folder is refused by every command, by name.

mod common;

use std::path::{Path, PathBuf};

use bertc::onnx::{ALIGNMENT, ALIGN_ABOVE, INLINE_BELOW};
use common::{
    assert_close, bertc_run, fixture, golden, run_onnxruntime_levels, run_openvino_file, stderr_of,
    temporaries,
};

/// PyTorch's outputs hold within this (README: fp32 files match within 1e-4).
const ATOL: f64 = 1e-4;

fn compile_external(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compile", &"--external-data", &"-o", &out];
    let case = fixture("tiny-base");
    args.push(&case);
    let run = bertc_run(&args);
    assert!(run.status.success(), "{}", stderr_of(&run));
    out
}

/// An initializer's name, inline byte length and external (offset, length).
type Initializer = (String, usize, Option<(u64, u64)>);

/// Every initializer, read by tract's own protobuf parser.
fn initializers(model: &Path) -> Vec<Initializer> {
    use tract_onnx::prelude::Framework;
    let proto = tract_onnx::onnx().proto_model_for_path(model).unwrap();
    proto
        .graph
        .unwrap()
        .initializer
        .iter()
        .map(|t| {
            let field = |k: &str| {
                t.external_data
                    .iter()
                    .find(|e| e.key == k)
                    .map(|e| e.value.parse::<u64>().unwrap())
            };
            let ext = field("length").map(|len| (field("offset").unwrap(), len));
            if ext.is_some() {
                let location = t.external_data.iter().find(|e| e.key == "location").unwrap();
                assert_eq!(
                    location.value,
                    format!("{}_data", model.file_name().unwrap().to_str().unwrap())
                );
                assert_eq!(t.data_location, Some(1), "`{}` is marked EXTERNAL", t.name);
            }
            (t.name.clone(), t.raw_data.len(), ext)
        })
        .collect()
}

#[test]
fn forced_external_data_compiles_validates_benches_and_loads_in_every_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let model = compile_external(dir.path(), "m.onnx");
    let data = dir.path().join("m.onnx_data");
    let data_len = std::fs::metadata(&data).unwrap().len();

    // Layout: initializers of 1 KiB and more in the data file, in order,
    // without overlap; smaller ones inline; large ones 64 KiB-aligned.
    let inits = initializers(&model);
    let mut end = 0;
    let mut external = 0;
    for (name, inline, ext) in &inits {
        match ext {
            Some((offset, len)) => {
                assert!(
                    *len as usize >= INLINE_BELOW,
                    "`{name}` ({len} bytes) should be inline"
                );
                assert_eq!(*inline, 0, "`{name}` is external and inline");
                assert!(*offset >= end, "`{name}` overlaps the previous tensor");
                if *len as usize > ALIGN_ABOVE {
                    assert_eq!(offset % ALIGNMENT, 0, "`{name}` is not aligned");
                }
                end = offset + len;
                external += 1;
            }
            None => assert!(*inline < INLINE_BELOW, "`{name}` ({inline} bytes) stayed inline"),
        }
    }
    assert!(external >= 10, "only {external} initializers went external");
    assert_eq!(end, data_len, "the data file ends with the last tensor");

    // bertc's own commands.
    let case = fixture("tiny-base");
    let gold = case.join("golden.safetensors");
    let run = bertc_run(&[&"validate", &model, &"--golden", &gold]);
    assert!(run.status.success(), "validate: {}", stderr_of(&run));
    let run = bertc_run(&[
        &"bench",
        &model,
        &"--seq",
        &"16",
        &"--runs",
        &"2",
        &"--warmup",
        &"0",
        &"--no-peak",
    ]);
    assert!(run.status.success(), "bench: {}", stderr_of(&run));
    for cmd in [&["inspect", "--seq", "16"][..], &["dump"]] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&cmd[0], &model];
        args.extend(cmd[1..].iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let run = bertc_run(&args);
        assert!(run.status.success(), "{}: {}", cmd[0], stderr_of(&run));
    }
    let optimized = dir.path().join("o.onnx");
    let run = bertc_run(&[&"optimize", &model, &"-o", &optimized, &"--external-data"]);
    assert!(run.status.success(), "optimize: {}", stderr_of(&run));
    assert!(dir.path().join("o.onnx_data").is_file());
    let run = bertc_run(&[&"validate", &optimized, &"--golden", &gold]);
    assert!(
        run.status.success(),
        "validate after optimize: {}",
        stderr_of(&run)
    );

    // Other runtimes, from the files as they lie on disk.
    let expected = golden(&case);
    for (level, outputs) in run_onnxruntime_levels(&model, &expected) {
        assert_close(&format!("onnxruntime {level}"), &outputs, &expected, ATOL);
    }
    assert_close("OpenVINO", &run_openvino_file(&model, &expected), &expected, ATOL);
}

/// An `--external-data` export folder (issue 25, N6): its summary lists
/// the data file, `run` loads it (tract aborted: "external data was
/// detected"), and compiling into it again replaces bertc's own files.
#[test]
fn an_external_data_export_folder_runs_and_is_replaced_by_the_next_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("{}/export/", dir.path().display());
    let case = fixture("pipelines").join("seq-cls");
    for replaced in [false, true] {
        let run = bertc_run(&[&"compile", &case, &"--external-data", &"-o", &out]);
        assert!(run.status.success(), "{}", stderr_of(&run));
        let printed = String::from_utf8_lossy(&run.stdout);
        let folder_line = printed
            .lines()
            .find(|l| l.trim_start().starts_with("folder"))
            .unwrap();
        assert!(
            folder_line.contains("model.onnx, model.onnx_data,"),
            "{folder_line}"
        );
        assert_eq!(
            folder_line.contains("replaced a previous export"),
            replaced,
            "{folder_line}"
        );
    }
    assert!(Path::new(&out).join("model.onnx_data").is_file());
    let run = bertc_run(&[&"run", &out, &"a fine film", &"--json"]);
    let err = stderr_of(&run);
    assert!(run.status.success(), "{err}");
    assert!(!err.contains("external data was detected"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(doc.to_string().contains("\"label\""), "{doc}");
}

#[test]
fn without_the_flag_small_models_stay_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inline.onnx");
    let case = fixture("tiny-base");
    let run = bertc_run(&[&"compile", &case, &"-o", &out]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert!(!dir.path().join("inline.onnx_data").exists());
    assert!(initializers(&out).iter().all(|(_, _, ext)| ext.is_none()));
}

#[cfg(unix)]
#[test]
fn a_data_file_linked_from_outside_the_folder_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let built = compile_external(dir.path(), "m.onnx");
    // The crafted model: its data file is a symlink to a file (of the right
    // size, so only the path rule can refuse it) outside the model's folder.
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    let model = folder.join("m.onnx");
    std::fs::copy(&built, &model).unwrap();
    let outside = dir.path().join("secret");
    std::fs::rename(dir.path().join("m.onnx_data"), &outside).unwrap();
    std::os::unix::fs::symlink("../secret", folder.join("m.onnx_data")).unwrap();

    let gold = fixture("tiny-base").join("golden.safetensors");
    let out = dir.path().join("copy.onnx");
    let commands: [Vec<&dyn AsRef<std::ffi::OsStr>>; 5] = [
        vec![&"validate", &model, &"--golden", &gold],
        vec![&"bench", &model, &"--seq", &"16", &"--runs", &"1", &"--no-peak"],
        vec![&"inspect", &model, &"--seq", &"16"],
        vec![&"dump", &model],
        vec![&"optimize", &model, &"-o", &out],
    ];
    for args in &commands {
        let run = bertc_run(args);
        let err = stderr_of(&run);
        let what = args[0].as_ref().to_string_lossy();
        assert!(!run.status.success(), "{what} accepted the outside file");
        assert!(
            err.contains("external data `m.onnx_data` resolves to")
                && err.contains("secret")
                && err.contains("outside the model's folder"),
            "{what}: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    assert!(!out.exists() && !dir.path().join("copy.onnx_data").exists());
}

#[cfg(unix)]
#[test]
fn model_and_data_are_written_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    // A data path that is not a regular file: nothing is written, not even
    // the model.
    std::os::unix::fs::symlink("/dev/null", dir.path().join("m.onnx_data")).unwrap();
    let out = dir.path().join("m.onnx");
    let case = fixture("tiny-base");
    let run = bertc_run(&[&"compile", &case, &"--external-data", &"-o", &out]);
    assert!(!run.status.success());
    assert!(
        stderr_of(&run).contains("m.onnx_data: is a symbolic link"),
        "{}",
        stderr_of(&run)
    );
    assert!(!out.exists());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "only the symlink is there: {names:?}");

    // A data path that is an input of the command is refused too.
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.onnx_data");
    std::fs::copy(case.join("model.safetensors"), &weights).unwrap();
    let out = dir.path().join("w.onnx");
    let run = bertc_run(&[
        &"compile",
        &case.join("config.json"),
        &"--weights",
        &weights,
        &"--external-data",
        &"-o",
        &out,
    ]);
    assert!(!run.status.success());
    assert!(stderr_of(&run).contains("is also the"), "{}", stderr_of(&run));
    assert!(!out.exists());
}

/// SIGTERM while bert-base's model and data (440 MB) are being written:
/// both temporary files are removed, and the folder holds both files or
/// neither. Returns whether the signal landed while the write was on.
#[cfg(unix)]
fn terminate_pair_write() -> bool {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("big.onnx");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args([
            "compile",
            "bert-base-uncased",
            "-O0",
            "--no-check",
            "--external-data",
            "-o",
        ])
        .arg(&model)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while temporaries(dir.path()).is_empty() && child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the compile never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let data = dir.path().join("big.onnx_data");
    assert_eq!(model.exists(), data.exists(), "one file without the other");
    assert_eq!(
        temporaries(dir.path()),
        Vec::<String>::new(),
        "temporary files left"
    );
    status.signal() == Some(libc::SIGTERM) && !model.exists()
}

#[cfg(unix)]
#[test]
fn a_signal_during_the_write_leaves_both_files_or_neither_and_no_temporary() {
    // The write lasts a fraction of a second; retry should the signal come late.
    assert!(
        (0..3).any(|_| terminate_pair_write()),
        "never caught the write of bert-base in progress"
    );
}

/// optimize's output may not replace the data file its input is read
/// from: `a.onnx` reads `b.onnx_data`, so `-o b.onnx` (whose data file is
/// `b.onnx_data`) is refused, and nothing is touched.
#[test]
fn optimize_refuses_to_write_over_its_inputs_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = compile_external(dir.path(), "b.onnx");
    let a = dir.path().join("a.onnx");
    std::fs::copy(&b, &a).unwrap();
    let data = dir.path().join("b.onnx_data");
    let before = std::fs::read(&data).unwrap();
    let run = bertc_run(&[&"optimize", &a, &"-o", &b]);
    assert!(!run.status.success());
    let err = stderr_of(&run);
    assert!(
        err.contains("b.onnx_data: is also the input model's external data"),
        "{err}"
    );
    assert!(
        std::fs::read(&data).unwrap() == before,
        "the input's data file changed"
    );
    assert_eq!(bertc::onnx::external_data_files(&a).unwrap(), vec![data]);
}

/// A model written inline over one that had external data: the old data
/// file is left (bertc deletes nothing it did not just write), the user is
/// told, and the new model loads without it.
#[test]
fn an_inline_rewrite_says_the_old_data_file_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let model = compile_external(dir.path(), "m.onnx");
    let data = dir.path().join("m.onnx_data");
    let old = std::fs::read(&data).unwrap();

    let case = fixture("tiny-base");
    let run = bertc_run(&[&"compile", &case, &"-o", &model]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    let err = stderr_of(&run);
    assert!(
        err.contains(&format!("note: {} is left from an earlier write", data.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        old,
        "the old data file is untouched"
    );
    assert!(initializers(&model).iter().all(|(_, _, ext)| ext.is_none()));

    // Without it, the model loads and matches PyTorch; a fresh inline
    // write says nothing.
    std::fs::remove_file(&data).unwrap();
    let run = bertc_run(&[&"validate", &model, &"--golden", &case.join("golden.safetensors")]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    let run = bertc_run(&[&"compile", &case, &"-o", &model]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert!(!stderr_of(&run).contains("note:"), "{}", stderr_of(&run));
}
