//! Export folders with several forms (`compile --target a,b --precision
//! p,q -o DIR/`): one model file per form, `model.onnx` byte-identical to
//! a single-target compile, the bertc_export.json manifest listing them;
//! `bertc run --runtime R` picking the form that fits R (answers as tract
//! on model.onnx), `--precision` and `--model-file` choosing, re-compiles
//! replacing the folder, hostile manifests refused with the field named.
//! onnxruntime and OpenVINO come from the wheels scripts/setup-test-env.sh
//! installs (as in tests/runtimes.rs): missing, these tests fail.

mod common;

use std::path::{Path, PathBuf};

use bertc::export_manifest::{Manifest, MANIFEST_FILE};
use bertc::passes::Target;
use bertc::runtime::Runtime;
use common::{assert_json_close, bertc_run, fixture, stderr_of};
use serde_json::Value;

/// The brief's bar for another runtime against tract on model.onnx.
const ATOL: f64 = 1e-4;

const TEXTS: [&str; 3] = [
    "I love this film.",
    "The weather today is grey and cold, and the train was late again.",
    "ok",
];

fn seq_cls() -> PathBuf {
    fixture("pipelines/seq-cls")
}

fn bertc(args: &[&str]) -> std::process::Output {
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
    bertc_run(&args)
}

/// `bertc compile MODEL ARGS… -o OUT/`, which must succeed.
fn compile(model: &Path, args: &[&str], out: &Path) -> String {
    let folder = format!("{}/", out.display());
    let mut all = vec!["compile", model.to_str().unwrap()];
    all.extend(args);
    all.extend(["-o", &folder]);
    let done = bertc(&all);
    assert!(done.status.success(), "compile {args:?}: {}", stderr_of(&done));
    String::from_utf8(done.stdout).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `bertc run DIR TEXTS… --json --threads 1 ARGS…`: the document and the
/// stderr lines.
fn run_json(dir: &Path, args: &[&str]) -> (Value, String) {
    let mut all = vec!["run", dir.to_str().unwrap()];
    all.extend(TEXTS);
    all.extend(["--json", "--threads", "1"]);
    all.extend(args);
    let out = bertc(&all);
    assert!(out.status.success(), "run {args:?}: {}", stderr_of(&out));
    let doc = serde_json::from_slice(&out.stdout).expect("stdout is the JSON document alone");
    (doc, stderr_of(&out))
}

#[test]
fn one_compile_writes_every_form_and_model_onnx_is_the_single_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let (forms, single, ort_int8) = (
        dir.path().join("forms"),
        dir.path().join("single"),
        dir.path().join("ort"),
    );
    let base = ["--random-weights", "--no-check"];
    let stdout = compile(
        Path::new("bert-tiny"),
        &[
            &base[..],
            &["--target", "tract,onnxruntime", "--precision", "fp32,int8"],
        ]
        .concat(),
        &forms,
    );
    compile(
        Path::new("bert-tiny"),
        &[&base[..], &["--target", "tract"]].concat(),
        &single,
    );
    compile(
        Path::new("bert-tiny"),
        &[&base[..], &["--target", "onnxruntime", "--precision", "int8"]].concat(),
        &ort_int8,
    );
    assert_eq!(
        names(&forms),
        [
            "bertc_export.json",
            "config.json",
            "model.onnx",
            "model_onnxruntime.onnx",
            "model_onnxruntime_int8.onnx",
            "model_tract_int8.onnx",
        ]
    );
    // Optimum, sentence-transformers and older bertc read model.onnx: it
    // is what `--target tract` alone writes, byte for byte; so is each
    // other form.
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(read(forms.join("model.onnx")) == read(single.join("model.onnx")));
    assert!(read(forms.join("model_onnxruntime_int8.onnx")) == read(ort_int8.join("model.onnx")));
    assert!(read(forms.join("model_tract_int8.onnx")) != read(forms.join("model.onnx")));
    // A single form writes no manifest: the folder is as before.
    assert_eq!(names(&single), ["config.json", "model.onnx"]);

    let manifest = Manifest::read(&forms).unwrap().expect("a manifest");
    let listed: Vec<(&str, Target, &str, bool, Vec<Runtime>)> = manifest
        .forms
        .iter()
        .map(|f| {
            (
                f.file.as_str(),
                f.target,
                f.precision,
                f.packed,
                f.runtimes.clone(),
            )
        })
        .collect();
    let everywhere = Runtime::ALL.to_vec();
    assert_eq!(
        listed,
        [
            ("model.onnx", Target::Tract, "fp32", false, everywhere.clone()),
            (
                "model_tract_int8.onnx",
                Target::Tract,
                "int8-dynamic",
                false,
                everywhere
            ),
            (
                "model_onnxruntime.onnx",
                Target::Onnxruntime,
                "fp32",
                false,
                vec![Runtime::Onnxruntime]
            ),
            (
                "model_onnxruntime_int8.onnx",
                Target::Onnxruntime,
                "int8-dynamic",
                false,
                vec![Runtime::Onnxruntime]
            ),
        ]
    );
    let doc: Value = serde_json::from_slice(&read(forms.join(MANIFEST_FILE))).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["format"], "bertc-export");
    assert!(
        stdout.contains("form        target onnxruntime, int8-dynamic (runs in onnxruntime)"),
        "{stdout}"
    );
}

#[test]
fn packed_forms_are_named_packed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("packed");
    compile(
        Path::new("bert-tiny"),
        &[
            "--random-weights",
            "--no-check",
            "--packed",
            "--target",
            "portable,onnxruntime",
        ],
        &out,
    );
    let manifest = Manifest::read(&out).unwrap().unwrap();
    let files: Vec<(&str, bool)> = manifest
        .forms
        .iter()
        .map(|f| (f.file.as_str(), f.packed))
        .collect();
    assert_eq!(
        files,
        [("model.onnx", true), ("model_onnxruntime_packed.onnx", true)]
    );
}

/// Each runtime takes its own target's form, else the portable one, says
/// which on stderr (stdout stays the JSON), and answers as tract does on
/// model.onnx.
#[test]
fn run_picks_the_form_that_fits_each_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forms");
    compile(&seq_cls(), &["--target", "portable,onnxruntime,openvino"], &out);
    let (reference, quiet) = run_json(&out, &["--runtime", "tract", "--model-file", "model.onnx"]);
    assert_eq!(
        quiet.trim(),
        "using model.onnx (target portable, fp32) for tract",
        "a named file is said too"
    );
    for (runtime, file, target) in [
        ("tract", "model.onnx", "portable"),
        ("onnxruntime", "model_onnxruntime.onnx", "onnxruntime"),
        ("openvino", "model_openvino.onnx", "openvino"),
    ] {
        let (doc, stderr) = run_json(&out, &["--runtime", runtime]);
        let expected = format!("using {file} (target {target}, fp32) for {runtime}");
        assert_eq!(
            stderr.lines().collect::<Vec<_>>(),
            [expected.as_str()],
            "{runtime}"
        );
        let worst = assert_json_close(&doc, &reference, ATOL, runtime);
        eprintln!("{runtime} on {file}: max |difference| to tract on model.onnx {worst:e}");
    }
    // JSON Lines: the line still goes to stderr only.
    let mut all = vec![
        "run",
        out.to_str().unwrap(),
        "ok",
        "--jsonl",
        "--runtime",
        "onnxruntime",
    ];
    all.push("--threads");
    all.push("1");
    let lines = bertc(&all);
    assert!(lines.status.success(), "{}", stderr_of(&lines));
    let stdout = String::from_utf8(lines.stdout.clone()).unwrap();
    assert!(stdout.starts_with("{\"output\""), "{stdout}");
    assert!(stderr_of(&lines).starts_with("using model_onnxruntime.onnx"));
}

/// The precision is model.onnx's unless named: a runtime is never moved to
/// another precision; `--precision` and `--model-file` choose; a file the
/// runtime cannot load is refused with what it runs in.
#[test]
fn the_precision_is_named_never_switched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forms");
    compile(
        &seq_cls(),
        &[
            "--target",
            "portable,onnxruntime",
            "--precision",
            "fp32,int8",
            "--no-check",
        ],
        &out,
    );
    let chosen = |args: &[&str]| run_json(&out, args).1.trim().to_string();
    assert_eq!(
        chosen(&["--runtime", "onnxruntime"]),
        "using model_onnxruntime.onnx (target onnxruntime, fp32) for onnxruntime"
    );
    assert_eq!(
        chosen(&["--runtime", "onnxruntime", "--precision", "int8"]),
        "using model_onnxruntime_int8.onnx (target onnxruntime, int8-dynamic) for onnxruntime"
    );
    assert_eq!(
        chosen(&["--runtime", "tract", "--precision", "int8"]),
        "using model_portable_int8.onnx (target portable, int8-dynamic) for tract"
    );
    let refused = bertc(&[
        "run",
        out.to_str().unwrap(),
        "hi",
        "--model-file",
        "model_onnxruntime_int8.onnx",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let text = stderr_of(&refused);
    assert!(
        text.contains("--model-file model_onnxruntime_int8.onnx: tract cannot load it")
            && text.contains("runs in: onnxruntime"),
        "{text}"
    );
    let none = bertc(&["run", out.to_str().unwrap(), "hi", "--precision", "fp16"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr_of(&none).contains("no form at fp16 runs in tract"),
        "{}",
        stderr_of(&none)
    );
}

/// Re-compiling replaces a folder of forms (and one form replaces
/// several); a model file bertc did not write, or a data file without its
/// model, keeps the folder from being replaced.
#[test]
fn recompiling_replaces_the_folder_and_nothing_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forms");
    let tiny = Path::new("bert-tiny");
    let args = [
        "--random-weights",
        "--no-check",
        "--target",
        "portable,onnxruntime",
    ];
    compile(tiny, &args, &out);
    let again = compile(tiny, &args, &out);
    assert!(again.contains("(replaced a previous export)"), "{again}");
    compile(tiny, &["--random-weights", "--no-check"], &out);
    assert_eq!(names(&out), ["config.json", "model.onnx"]);
    compile(tiny, &args, &out);
    assert!(out.join(MANIFEST_FILE).is_file());

    let folder = format!("{}/", out.display());
    for (name, bytes, reason) in [
        (
            "model_mine.onnx",
            b"not an onnx file".as_slice(),
            "its model_mine.onnx cannot be read",
        ),
        (
            "model_extra.onnx_data",
            b"\0\0\0\0".as_slice(),
            "it holds `model_extra.onnx_data` without `model_extra.onnx`",
        ),
        ("model notes.onnx", b"x".as_slice(), "it holds `model notes.onnx`"),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).unwrap();
        let refused = bertc(&[
            "compile",
            "bert-tiny",
            "--random-weights",
            "--no-check",
            "-o",
            &folder,
        ]);
        assert_eq!(refused.status.code(), Some(2), "{name}");
        let text = stderr_of(&refused);
        assert!(
            text.contains("is not a previous bertc export") && text.contains(reason),
            "{name}: {text}"
        );
        assert!(path.is_file(), "{name} was deleted");
        std::fs::remove_file(&path).unwrap();
    }
}

/// `--layout onnx-subfolder` puts every model file in `onnx/` (config and
/// tokenizer files stay at the top): `run` finds them with and without a
/// manifest, answers as from the flat folder, and a re-export replaces the
/// folder unless `onnx/` holds a file bertc did not write.
#[test]
fn the_onnx_subfolder_layout_reads_back_and_replaces_like_the_flat_one() {
    let dir = tempfile::tempdir().unwrap();
    let (flat, sub, single) = (
        dir.path().join("flat"),
        dir.path().join("sub"),
        dir.path().join("single"),
    );
    let targets = ["--target", "portable,onnxruntime"];
    compile(&seq_cls(), &targets, &flat);
    let layout = ["--layout", "onnx-subfolder"];
    compile(&seq_cls(), &[&targets[..], &layout[..]].concat(), &sub);
    assert_eq!(names(&sub.join("onnx")), ["model.onnx", "model_onnxruntime.onnx"]);
    assert!(
        names(&sub).iter().all(|n| !n.ends_with(".onnx")),
        "{:?}",
        names(&sub)
    );
    for runtime in ["tract", "onnxruntime"] {
        let (from_flat, _) = run_json(&flat, &["--runtime", runtime]);
        let (from_sub, said) = run_json(&sub, &["--runtime", runtime]);
        assert_eq!(from_flat, from_sub, "{runtime}");
        let file = match runtime {
            "tract" => "onnx/model.onnx (target portable",
            _ => "onnx/model_onnxruntime.onnx (target onnxruntime",
        };
        assert!(said.starts_with(&format!("using {file}")), "{said}");
    }
    // One form: no manifest, found at onnx/model.onnx.
    compile(&seq_cls(), &layout, &single);
    assert_eq!(names(&single.join("onnx")), ["model.onnx"]);
    assert_eq!(
        run_json(&single, &[]).0,
        run_json(&flat, &["--runtime", "tract"]).0
    );

    let again = compile(&seq_cls(), &[&targets[..], &layout[..]].concat(), &sub);
    assert!(again.contains("(replaced a previous export)"), "{again}");
    let mine = sub.join("onnx/notes.txt");
    std::fs::write(&mine, "mine").unwrap();
    let folder = format!("{}/", sub.display());
    let refused = bertc(&["compile", seq_cls().to_str().unwrap(), "-o", &folder]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr_of(&refused).contains("it holds `onnx/notes.txt`"),
        "{}",
        stderr_of(&refused)
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "mine");
    let file_out = dir.path().join("m.onnx");
    let refused = bertc(&[
        "compile",
        "bert-tiny",
        "--random-weights",
        "--layout",
        "onnx-subfolder",
        "-o",
        file_out.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr_of(&refused).contains("--layout places the model files of an export folder"));
    assert!(!file_out.exists());
}

/// A form that fails (here the int8 one, under an accuracy bar no int8
/// model meets) leaves nothing written: the previous folder stays as it was.
#[test]
fn a_failing_form_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forms");
    compile(Path::new("bert-tiny"), &["--random-weights", "--no-check"], &out);
    let before = std::fs::read(out.join("model.onnx")).unwrap();
    let folder = format!("{}/", out.display());
    let failed = bertc(&[
        "compile",
        "bert-tiny",
        "--random-weights",
        "--target",
        "portable,tract",
        "--precision",
        "fp32,int8",
        "--min-cosine",
        "1",
        "-o",
        &folder,
    ]);
    assert_eq!(failed.status.code(), Some(2), "{}", stderr_of(&failed));
    assert_eq!(names(&out), ["config.json", "model.onnx"]);
    assert!(std::fs::read(out.join("model.onnx")).unwrap() == before);
    let leftovers: Vec<String> = names(dir.path()).into_iter().filter(|n| n != "forms").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A manifest is untrusted: each hostile one is one line on stderr naming
/// the field and its value, exit code 2, no panic.
#[test]
fn hostile_manifests_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forms");
    compile(
        &seq_cls(),
        &["--target", "portable,onnxruntime", "--no-check"],
        &out,
    );
    let good: Value = serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap();
    let outside = dir.path().join("outside.onnx");
    std::fs::copy(out.join("model.onnx"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("model_link.onnx")).unwrap();
    let with = |pointer: &str, value: Value| {
        let mut doc = good.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        doc.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with("/forms/1/file", "../seq-cls/model.onnx".into()),
            "field `forms[1].file` is \"../seq-cls/model.onnx\"",
        ),
        (
            with("/forms/1/file", "/etc/passwd".into()),
            "field `forms[1].file` is \"/etc/passwd\"",
        ),
        (
            with("/forms/1/file", "model_gone.onnx".into()),
            "field `forms[1].file` is \"model_gone.onnx\": expected a model file in the folder",
        ),
        (with("/forms/1/file", "model_link.onnx".into()), "outside"),
        (
            with("/forms/1/file", "model.onnx".into()),
            "field `forms[1].file` is \"model.onnx\": expected a file no other form lists",
        ),
        (
            with("/forms/0/target", "gpu".into()),
            "field `forms[0].target` is \"gpu\": expected one of portable, tract, onnxruntime, openvino",
        ),
        (
            with("/forms/0/precision", "int4".into()),
            "field `forms[0].precision` is \"int4\"",
        ),
        (
            with("/forms/0/packed", "yes".into()),
            "field `forms[0].packed` is \"yes\": expected true or false",
        ),
        (
            with("/forms/0/runtimes", serde_json::json!(["cuda"])),
            "field `forms[0].runtimes` is \"cuda\"",
        ),
        (with("/version", 2.into()), "field `version` is 2: expected 1"),
        (with("/version", "1".into()), "field `version` is \"1\""),
        (with("/format", "other".into()), "field `format` is \"other\""),
        (with("/forms", serde_json::json!([])), "field `forms` is []"),
        ("{\"format\": \"bertc-export\", \"version\": 1".into(), "not JSON"),
        ("[1, 2]".into(), "field `(document)` is [1,2]: expected an object"),
        // Valid JSON, but past the size a manifest may have: refused unread.
        (
            format!("{}{}", good, " ".repeat(1 << 20)),
            "bytes; a manifest is at most 1048576",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(out.join(MANIFEST_FILE), &text).unwrap();
        for runtime in ["tract", "onnxruntime"] {
            let refused = bertc(&["run", out.to_str().unwrap(), "hi", "--runtime", runtime]);
            let stderr = stderr_of(&refused);
            assert_eq!(refused.status.code(), Some(2), "{text}: {stderr}");
            assert!(
                stderr.contains(needle),
                "{text}: `{needle}` missing from {stderr}"
            );
            assert!(stderr.contains(MANIFEST_FILE), "{stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
            assert!(refused.stdout.is_empty());
        }
    }
    // Without a manifest, the folder is read as before: model.onnx.
    std::fs::remove_file(out.join(MANIFEST_FILE)).unwrap();
    let (_, stderr) = run_json(&out, &[]);
    assert_eq!(stderr, "", "no manifest, nothing to say");
}
