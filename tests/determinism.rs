//! Same inputs, same bytes: through the library and through the CLI.

mod common;

use bertc::pipeline::{compile, load_config, with_passes, BuildOptions};
use common::*;

fn compile_seeded(preset: &str, seed: u64) -> Vec<u8> {
    let config = load_config(preset).unwrap();
    let opts = BuildOptions {
        seed,
        ..Default::default()
    };
    compile(
        test_session(),
        &config,
        opts,
        &with_passes(&["dead_node_elimination"]),
    )
    .unwrap()
    .to_bytes()
    .unwrap()
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let a = compile_seeded("bert-mini", 7);
    let b = compile_seeded("bert-mini", 7);
    assert!(a == b, "two compiles of bert-mini with seed 7 differ");
    let c = compile_seeded("bert-mini", 8);
    assert!(a != c, "seeds 7 and 8 gave the same bytes");
    assert_eq!(a.len(), c.len(), "the seed changes values, not structure");
}

#[test]
fn checkpoint_compiles_are_identical() {
    let dir = fixture("tiny-base");
    let a = compile_checkpoint(&dir.join("config.json"), &dir.join("model.safetensors"));
    let b = compile_checkpoint(&dir.join("config.json"), &dir.join("model.safetensors"));
    assert!(a == b);
}

#[test]
fn cli_writes_byte_identical_files_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture("tiny-base");
    let run = |out: &str, cwd: &std::path::Path| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
            .current_dir(cwd)
            .args(["compile", fx.join("config.json").to_str().unwrap(), "--weights"])
            .arg(fx.join("model.safetensors"))
            .arg("-o")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        std::fs::read(dir.path().join(out)).unwrap()
    };
    let a = run("a.onnx", dir.path());
    let b = run("b.onnx", &root());
    assert!(
        a == b,
        "the same compile from two directories gave different bytes"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}
