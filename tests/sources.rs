//! Model sources: a folder or a config.json finds its checkpoint itself;
//! random weights only for presets or when asked; the summary names the
//! weights; wrong kinds of files and near-miss preset names are explained.

mod common;

use std::process::Output;

use common::*;

fn bertc(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    bertc_run(args)
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_folder_and_its_config_find_the_checkpoint_and_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = fixture("tiny-base");
    let explicit = dir.path().join("explicit.onnx");
    let out = bertc(&[
        &"compile",
        &folder.join("config.json"),
        &"--weights",
        &folder.join("model.safetensors"),
        &"-o",
        &explicit,
    ]);
    assert!(out.status.success(), "{}", both(&out));
    let sha = bertc::source::sha256_file(&folder.join("model.safetensors")).unwrap();
    for (arg, name) in [
        (folder.clone(), "folder.onnx"),
        (folder.join("config.json"), "config.onnx"),
    ] {
        let written = dir.path().join(name);
        let out = bertc(&[&"compile", &arg, &"-o", &written]);
        let text = both(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&format!("model.safetensors (sha256 {})", &sha[..12])),
            "{text}"
        );
        assert_eq!(
            std::fs::read(&written).unwrap(),
            std::fs::read(&explicit).unwrap(),
            "{name}: found weights give the --weights file"
        );
    }
}

#[test]
fn a_config_without_weights_is_refused_unless_random_weights_are_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("tiny-base").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let output = dir.path().join("m.onnx");
    let out = bertc(&[&"compile", &dir.path(), &"-o", &output]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        both(&out).contains("no weights beside the config"),
        "{}",
        both(&out)
    );
    assert!(both(&out).contains("--random-weights"), "{}", both(&out));
    assert!(!output.exists());
    let out = bertc(&[
        &"compile",
        &dir.path(),
        &"--random-weights",
        &"--seed",
        &"4",
        &"-o",
        &output,
    ]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("weights     RANDOM (seed 4)"),
        "{}",
        both(&out)
    );
}

#[test]
fn a_file_of_the_wrong_kind_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("m.onnx");
    let st = fixture("tiny-base").join("model.safetensors");
    let out = bertc(&[&"compile", &st, &"-o", &output]);
    assert!(
        both(&out).contains("expected a config.json, a model folder or a preset name, found a safetensors"),
        "{}",
        both(&out)
    );
    let out = bertc(&[&"compile", &"bert-bsae-uncased", &"-o", &output]);
    assert!(
        both(&out).contains("did you mean `bert-base-uncased`?"),
        "{}",
        both(&out)
    );
    let out = bertc(&[
        &"compile",
        &"bert-tiny",
        &"--weights",
        &st,
        &"--seed",
        &"3",
        &"-o",
        &output,
    ]);
    assert!(
        both(&out).contains("--seed draws random weights"),
        "{}",
        both(&out)
    );
    assert!(!output.exists());
}
