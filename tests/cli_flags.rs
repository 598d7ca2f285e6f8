//! The command line's optimizing and reduced-precision flags, judged by the
//! file each one writes — op counts, initializer dtypes and shapes, numbers
//! in tract or onnxruntime — not by the exit code alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bertc::ir::{DType, Graph, Op};
use bertc::onnx::read_model;
use bertc::runtime::inputs_for;
use common::*;

/// Runs bertc; returns whether it succeeded and its stdout + stderr.
fn bertc(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `bertc compile bert-tiny <extra> -o dir/name`, which must succeed; the
/// written model and the command's output.
fn compile_tiny(dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, Graph, String) {
    let out = dir.join(name);
    let mut args = vec!["compile", "bert-tiny", "-o", out.to_str().unwrap()];
    args.extend(extra);
    let (ok, text) = bertc(&args);
    assert!(ok, "bertc {args:?} failed:\n{text}");
    let g = read_model(&out).unwrap();
    (out, g, text)
}

fn count(g: &Graph, kind: &str) -> usize {
    g.op_histogram().get(kind).copied().unwrap_or(0)
}

/// dtype and dims of the initializer `name`.
fn initializer(g: &Graph, name: &str) -> (DType, Vec<usize>) {
    let id = g
        .find(name)
        .unwrap_or_else(|| panic!("no initializer `{name}` in the written model"));
    match &g.node(id).op {
        Op::Constant(t) => (t.dtype(), t.dims().to_vec()),
        op => panic!("`{name}` is a {}, not an initializer", op.kind()),
    }
}

/// bert-tiny: 2 layers of 6 linear layers (Q, K, V, attention output, FFN
/// in, FFN out) and the pooler.
const TINY_LINEARS: usize = 2 * 6 + 1;

#[test]
fn optimize_fuses_an_o0_file_and_keeps_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (o0_path, o0, _) = compile_tiny(dir.path(), "o0.onnx", &["-O0"]);
    assert_eq!(
        count(&o0, "LayerNormalization") + count(&o0, "Attention") + count(&o0, "Gelu"),
        0
    );

    let o2_path = dir.path().join("o2.onnx");
    let (ok, text) = bertc(&[
        "optimize",
        o0_path.to_str().unwrap(),
        "-O2",
        "--report",
        "-o",
        o2_path.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let o2 = read_model(&o2_path).unwrap();
    assert_eq!(count(&o2, "LayerNormalization"), 5, "{:?}", o2.op_histogram());
    assert_eq!(count(&o2, "Gelu"), 2);
    // Attention is recognized in every layer and written decomposed, the
    // portable target's measured-fastest form (passes::Target).
    assert_eq!(count(&o2, "Attention"), 0);
    assert_eq!(count(&o2, "Softmax"), 2);
    for gone in ["Erf", "ReduceMean", "Div"] {
        assert_eq!(count(&o2, gone), 0, "{gone} left");
    }
    // The report and the check name what they did.
    for (pass, matches) in [
        ("fuse_layer_norm", 5),
        ("fuse_gelu", 2),
        ("fuse_attention", 2),
        ("decompose_attention", 2),
    ] {
        assert!(
            text.lines().any(|l| l
                .split_whitespace()
                .take(3)
                .eq(["pass", pass, &matches.to_string()])),
            "no report line `{pass} {matches} matches`:\n{text}"
        );
    }
    for output in ["last_hidden_state", "pooler_output"] {
        assert!(
            text.lines().any(|l| l.contains("check") && l.contains(output)),
            "no check line for {output}:\n{text}"
        );
    }
    let inputs = inputs_for(&o0, 3, 16);
    let reference = run_tract(&std::fs::read(&o0_path).unwrap(), &inputs);
    let optimized = run_tract(&std::fs::read(&o2_path).unwrap(), &inputs);
    assert_eq!(reference.len(), 2);
    assert_close("optimize -O2", &optimized, &reference, 1e-4);

    // An explicit pass list runs exactly those passes.
    let gelu_path = dir.path().join("gelu.onnx");
    let (ok, text) = bertc(&[
        "optimize",
        o0_path.to_str().unwrap(),
        "--passes",
        "fuse_gelu,dead_node_elimination",
        "-o",
        gelu_path.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let gelu = read_model(&gelu_path).unwrap();
    assert_eq!(count(&gelu, "Gelu"), 2);
    assert_eq!(count(&gelu, "LayerNormalization") + count(&gelu, "Attention"), 0);
    assert_eq!(count(&gelu, "Erf"), 0);
}

/// Node counts by `domain:op_type`, read by the onnx package (bertc's own
/// importer does not read com.microsoft ops).
fn onnx_op_counts(path: &Path) -> std::collections::BTreeMap<String, usize> {
    let script = "import collections, json, sys, onnx\n\
                  m = onnx.load(sys.argv[1])\n\
                  print(json.dumps(collections.Counter((n.domain or 'ai.onnx') + ':' + n.op_type for n in m.graph.node)))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onnx could not read {} (run scripts/setup-test-env.sh):\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn target_onnxruntime_writes_contrib_ops_that_onnxruntime_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (o0_path, o0, _) = compile_tiny(dir.path(), "o0.onnx", &["-O0"]);
    let ort_path = dir.path().join("ort.onnx");
    let (ok, text) = bertc(&[
        "compile",
        "bert-tiny",
        "--target",
        "onnxruntime",
        "-o",
        ort_path.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let ops = onnx_op_counts(&ort_path);
    let n = |k: &str| ops.get(k).copied().unwrap_or(0);
    assert_eq!(n("com.microsoft:EmbedLayerNormalization"), 1, "{ops:?}");
    // The residual layer norms stay LayerNormalization, with the bias added
    // after the residual (onnxruntime's SkipLayerNormalization is slower).
    assert_eq!(n("com.microsoft:SkipLayerNormalization"), 0, "{ops:?}");
    assert_eq!(n("ai.onnx:LayerNormalization"), 4, "{ops:?}");
    assert_eq!(n("com.microsoft:BiasGelu"), 2, "{ops:?}");
    assert_eq!(n("com.microsoft:Attention"), 2, "{ops:?}");
    for gone in ["Gelu", "Attention", "Softmax"] {
        assert_eq!(n(&format!("ai.onnx:{gone}")), 0, "{gone} left: {ops:?}");
    }
    // tract cannot run these ops: onnxruntime runs the file, against the
    // -O0 file in tract (right- and left-padded rows).
    let inputs = inputs_for(&o0, 3, 16);
    let reference = run_tract(&std::fs::read(&o0_path).unwrap(), &inputs);
    let actual = run_onnxruntime(&std::fs::read(&ort_path).unwrap(), &inputs);
    assert_eq!(actual.len(), 2);
    let worst = assert_close("--target onnxruntime", &actual, &reference, 1e-4);
    eprintln!("--target onnxruntime in onnxruntime vs -O0 in tract: max-abs {worst:e}");
}

#[test]
fn per_tensor_gives_one_weight_scale_per_linear() {
    let dir = tempfile::tempdir().unwrap();
    let (_, channel, _) = compile_tiny(dir.path(), "channel.onnx", &["--quantize", "dynamic"]);
    let (_, tensor, text) = compile_tiny(
        dir.path(),
        "tensor.onnx",
        &["--quantize", "dynamic", "--per-tensor"],
    );
    assert!(text.contains("accuracy"), "{text}");
    assert_eq!(count(&tensor, "MatMulInteger"), TINY_LINEARS);
    // One scale per output column either way ([512] for the 128 x 512 FFN
    // input); per tensor, all of a layer's scales are the same number.
    let distinct_scales = |g: &Graph| -> Vec<(String, usize)> {
        g.node_ids()
            .filter_map(|id| {
                let n = g.node(id);
                match &n.op {
                    Op::Constant(t) if n.name.ends_with(".weight_scale") => {
                        let mut v = t.to_f32_vec().unwrap();
                        v.sort_by(f32::total_cmp);
                        v.dedup();
                        Some((n.name.clone(), v.len()))
                    }
                    _ => None,
                }
            })
            .collect()
    };
    let scale = "encoder.layer.0.intermediate.dense.add.weight_scale";
    assert_eq!(initializer(&channel, scale), (DType::F32, vec![512]));
    assert_eq!(initializer(&tensor, scale), (DType::F32, vec![512]));
    let per_tensor = distinct_scales(&tensor);
    assert_eq!(per_tensor.len(), TINY_LINEARS);
    assert!(per_tensor.iter().all(|(_, n)| *n == 1), "{per_tensor:?}");
    let per_channel = distinct_scales(&channel);
    assert_eq!(per_channel.len(), TINY_LINEARS);
    assert!(per_channel.iter().all(|(_, n)| *n > 1), "{per_channel:?}");
}

/// A `--quantize-skip` pattern that names no linear layer is refused,
/// naming it (issue 25: `nomatch` was silently ignored, the bytes those of
/// no skip at all); nothing is written.
#[test]
fn a_quantize_skip_pattern_matching_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.onnx");
    for skip in ["nomatch", "pooler,nomatch"] {
        let args = [
            "compile",
            "bert-tiny",
            "--quantize",
            "dynamic",
            "--quantize-skip",
            skip,
            "-o",
            out.to_str().unwrap(),
        ];
        let (ok, text) = bertc(&args);
        assert!(!ok, "{skip}: {text}");
        assert!(
            text.contains("`nomatch` matches none of the model's 13 linear layers"),
            "{text}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn quantize_skip_keeps_the_named_layers_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let (_, all, _) = compile_tiny(dir.path(), "all.onnx", &["--quantize", "dynamic"]);
    let (_, skipped, _) = compile_tiny(
        dir.path(),
        "skip.onnx",
        &[
            "--quantize",
            "dynamic",
            "--quantize-skip",
            "pooler,layer.1.output",
        ],
    );
    assert_eq!(count(&all, "MatMulInteger"), TINY_LINEARS);
    assert_eq!(count(&skipped, "MatMulInteger"), TINY_LINEARS - 2);
    // The two skipped linears are f32 MatMuls beside attention's products.
    assert_eq!(count(&skipped, "MatMul") - count(&all, "MatMul"), 2);
    assert_eq!(
        initializer(&skipped, "pooler.dense.weight"),
        (DType::F32, vec![128, 128])
    );
    assert_eq!(
        initializer(&skipped, "encoder.layer.1.output.dense.weight"),
        (DType::F32, vec![512, 128])
    );
    assert!(
        all.find("pooler.dense.weight").is_none(),
        "the pooler's f32 weight is still there"
    );
    assert_eq!(
        initializer(&all, "pooler.dense.add.weight_int8"),
        (DType::I8, vec![128, 128])
    );
    // Only the named layers: layer 0's FFN output is still int8.
    assert_eq!(
        initializer(&skipped, "encoder.layer.0.output.dense.add.weight_int8"),
        (DType::I8, vec![512, 128])
    );
}

#[test]
fn no_quantize_embeddings_keeps_the_word_embeddings_f32() {
    let dir = tempfile::tempdir().unwrap();
    let (_, default, _) = compile_tiny(dir.path(), "default.onnx", &["--quantize", "dynamic"]);
    let (_, kept, _) = compile_tiny(
        dir.path(),
        "kept.onnx",
        &["--quantize", "dynamic", "--no-quantize-embeddings"],
    );
    assert_eq!(
        initializer(&default, "embeddings.word_embeddings.weight.int8"),
        (DType::I8, vec![30522, 128])
    );
    assert!(default.find("embeddings.word_embeddings.weight").is_none());
    assert_eq!(
        initializer(&kept, "embeddings.word_embeddings.weight"),
        (DType::F32, vec![30522, 128])
    );
    assert!(kept.find("embeddings.word_embeddings.weight.int8").is_none());
    // The linear layers are int8 either way.
    assert_eq!(count(&kept, "MatMulInteger"), TINY_LINEARS);
    // The f32 table costs 30522 x 128 x 3 bytes more than int8 + row scales.
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    assert!(
        size("kept.onnx") > size("default.onnx") + 30522 * 128 * 2,
        "{} vs {}",
        size("kept.onnx"),
        size("default.onnx")
    );
}

/// `--precision` names the same three precisions in compile, optimize and
/// sweep: `int8` is dynamic int8, byte for byte what `--quantize dynamic`
/// writes; contradicting or int8-only flags on another precision are refused.
#[test]
fn precision_int8_is_quantize_dynamic_and_contradictions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _, _) = compile_tiny(dir.path(), "q.onnx", &["--quantize", "dynamic"]);
    let (b, g, text) = compile_tiny(dir.path(), "p.onnx", &["--precision", "int8"]);
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(count(&g, "MatMulInteger"), TINY_LINEARS, "{text}");
    let (_, static_g, _) = compile_tiny(
        dir.path(),
        "s.onnx",
        &["--precision", "int8", "--quantize", "static"],
    );
    assert_eq!(count(&static_g, "MatMulInteger"), TINY_LINEARS);

    let out = dir.path().join("refused.onnx");
    let o = out.to_str().unwrap();
    for (extra, needle) in [
        (
            &["--precision", "fp16", "--quantize", "dynamic"][..],
            "--quantize dynamic asks for int8, but --precision is fp16",
        ),
        (
            &["--precision", "fp32", "--quantize", "static"][..],
            "--precision is fp32",
        ),
        (
            &["--precision", "fp16", "--per-tensor"][..],
            "--per-tensor applies only to int8",
        ),
        (
            &["--quantize-skip", "pooler"][..],
            "--quantize-skip applies only to int8",
        ),
        (
            &["--no-quantize-embeddings"][..],
            "--no-quantize-embeddings applies only to int8",
        ),
    ] {
        let mut args = vec!["compile", "bert-tiny", "-o", o];
        args.extend(extra);
        let (ok, text) = bertc(&args);
        assert!(!ok, "bertc {args:?} should fail");
        assert!(text.contains(needle), "bertc {args:?} said: {text}");
        assert!(!out.exists(), "a refused compile wrote {o}");
    }
}
