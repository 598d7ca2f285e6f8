//! `bertc run`'s length-aware batches give every input the answer it gets
//! alone, in input order, for every task; `--jsonl` writes one line per
//! input across windows; `--similarity` is refused before any work past
//! its limit.
//!
//! Texts: lines of the text mix (tests/fixtures/text-mix), whose lengths
//! vary from a few tokens to the model's limit, in an order that is not
//! sorted; small batch limits force many batches of mixed rows.

mod common;

use std::path::{Path, PathBuf};

use bertc::run::{load, BatchLimits, LoadedModel, Outputs, RunOptions, TaskOptions, TopK};
use bertc::runtime::Runtime;
use bertc::tokenize::TextInput;
use common::{assert_json_close, bertc_run, minilm_dir, stderr_of};
use serde_json::Value;

/// Batched against alone: the same graph on other shapes, float noise only.
const ATOL: f64 = 1e-6;

fn pipelines() -> PathBuf {
    common::fixture("pipelines")
}

fn mix_lines() -> Vec<String> {
    let text = std::fs::read_to_string(common::fixture("text-mix/lines-2000.txt")).unwrap();
    text.lines().map(str::to_string).collect()
}

/// 18 lines of the mix, short and long interleaved (not sorted by length).
fn texts() -> Vec<String> {
    let lines = mix_lines();
    let texts: Vec<String> = lines.iter().take(18).cloned().collect();
    let lengths: Vec<usize> = texts.iter().map(|t| t.split_whitespace().count()).collect();
    assert!(
        lengths.windows(2).any(|w| w[0] > w[1]) && lengths.windows(2).any(|w| w[0] < w[1]),
        "the texts must not come sorted: {lengths:?}"
    );
    assert!(lengths.iter().max().unwrap() > &(4 * lengths.iter().min().unwrap()));
    texts
}

fn load_model(dir: &Path, limits: BatchLimits) -> LoadedModel {
    let opts = RunOptions {
        batch: limits,
        ..Default::default()
    };
    load(common::test_session(), dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Few rows and tokens per batch: many batches, each mixing lengths.
const SMALL: BatchLimits = BatchLimits {
    max_tokens: 192,
    max_rows: 5,
};

/// The answers of `inputs` run together, and each run alone, as `--json`
/// documents.
fn together_and_alone(
    model: &mut LoadedModel,
    inputs: &[TextInput],
    options: &TaskOptions,
) -> (Value, Value) {
    let mut batches = 0;
    let together = model
        .run_texts(inputs, options, &mut |p| {
            batches += 1;
            assert!(p.rows_done <= p.rows);
        })
        .unwrap()
        .outputs;
    assert!(batches > 1, "one batch only: the test would not mix rows");
    let mut alone: Option<Outputs> = None;
    for input in inputs {
        let one = model
            .run_texts(std::slice::from_ref(input), options, &mut |_| {})
            .unwrap()
            .outputs;
        match &mut alone {
            Some(all) => all.append(one),
            None => alone = Some(one),
        }
    }
    let alone = alone.unwrap();
    assert_eq!(together.len(), inputs.len());
    assert_eq!(alone.len(), inputs.len());
    (together.to_json(model.task), alone.to_json(model.task))
}

fn singles(texts: &[String]) -> Vec<TextInput<'_>> {
    texts.iter().map(|t| TextInput::Single(t)).collect()
}

#[test]
fn minilm_embeddings_batched_are_each_texts_own() {
    let texts = texts();
    let mut model = load_model(&minilm_dir(), SMALL);
    let (together, alone) = together_and_alone(&mut model, &singles(&texts), &TaskOptions::default());
    let d = assert_json_close(&together["embeddings"], &alone["embeddings"], ATOL, "minilm");
    eprintln!("minilm: max |batched − alone| {d:e}");
    // And with the default limits (the whole set in one or two batches).
    let mut model = load_model(&minilm_dir(), BatchLimits::default());
    let together = model
        .run_texts(&singles(&texts), &TaskOptions::default(), &mut |_| {})
        .unwrap()
        .outputs;
    assert_json_close(
        &together.to_json(model.task)["embeddings"],
        &alone["embeddings"],
        ATOL,
        "minilm default",
    );
}

#[test]
fn classification_of_texts_and_pairs_batched_is_each_inputs_own() {
    let texts = texts();
    let mut model = load_model(&pipelines().join("seq-cls"), SMALL);
    // Every label, not the pipeline's default best one: more to compare.
    let every_label = TaskOptions {
        top_k: Some(TopK::All),
        ..TaskOptions::default()
    };
    let (together, alone) = together_and_alone(&mut model, &singles(&texts), &every_label);
    assert_json_close(&together, &alone, ATOL, "seq-cls");
    let pairs: Vec<TextInput> = texts
        .iter()
        .zip(texts.iter().rev())
        .map(|(a, b)| TextInput::Pair(a, b))
        .collect();
    let (together, alone) = together_and_alone(&mut model, &pairs, &every_label);
    assert_json_close(&together, &alone, ATOL, "seq-cls pairs");
}

#[test]
fn entities_batched_are_each_texts_own() {
    let texts = texts();
    let mut model = load_model(&pipelines().join("token-cls"), SMALL);
    let (together, alone) = together_and_alone(&mut model, &singles(&texts), &TaskOptions::default());
    // Words, offsets and labels equal; scores within float noise.
    assert_json_close(&together, &alone, ATOL, "token-cls");
    let groups: usize = together["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_array().unwrap().len())
        .sum();
    assert!(groups > texts.len(), "{groups} entity groups: too few to compare");
}

#[test]
fn fill_mask_batched_is_each_texts_own() {
    // A mask in the middle of each text; two in every third.
    let texts: Vec<String> = texts()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut words: Vec<&str> = t.split_whitespace().collect();
            let mid = words.len() / 2;
            words[mid] = "[MASK]";
            if i % 3 == 0 && words.len() > 3 {
                words[1] = "[MASK]";
            }
            words.join(" ")
        })
        .collect();
    let mut model = load_model(&pipelines().join("fill-mask"), SMALL);
    let three = TaskOptions {
        top_k: Some(TopK::Best(3)),
        ..TaskOptions::default()
    };
    let (together, alone) = together_and_alone(&mut model, &singles(&texts), &three);
    assert_json_close(&together, &alone, ATOL, "fill-mask");
}

/// Long contexts span several 384-token windows, which run as rows of
/// their own and land in different batches, between short pairs: each
/// question still gets the best span over its own windows — the answer it
/// gets alone, its windows all in one batch as before batching.
#[test]
fn question_answering_maps_every_window_back_to_its_question() {
    let lines = mix_lines();
    // 100 lines of the mix each: more than one window.
    let contexts: Vec<String> = (0..4).map(|i| lines[i * 120..i * 120 + 100].join(" ")).collect();
    let questions = [
        "Who said this?",
        "What is the meaning of life?",
        "When did it happen?",
        "Why?",
    ];
    let short = [
        ("How old are you?", "I am 30 years old."),
        ("Where is Paris?", "The weather is nice."),
    ];
    let mut pairs: Vec<(&str, &str)> = vec![];
    for (i, c) in contexts.iter().enumerate() {
        pairs.push((questions[i], c));
        pairs.push(short[i % 2]);
    }
    let small = BatchLimits {
        max_tokens: 1024,
        max_rows: 3,
    };
    let mut model = load_model(&pipelines().join("qa"), small);
    let (mut rows, mut batches) = (0, 0);
    let together = model
        .answer(&pairs, &TaskOptions::default(), &mut |p| {
            rows = p.rows;
            batches += 1;
        })
        .unwrap();
    assert!(
        rows >= pairs.len() + 4,
        "{rows} windows: each long context must need more than one"
    );
    assert!(
        batches >= rows.div_ceil(3),
        "{batches} batches of at most 3 rows for {rows} windows"
    );
    let whole = BatchLimits {
        max_tokens: 1 << 20,
        max_rows: 1 << 10,
    };
    let mut alone_model = load_model(&pipelines().join("qa"), whole);
    let mut alone = vec![];
    for pair in &pairs {
        let mut one_batch = 0;
        alone.extend(
            alone_model
                .answer(std::slice::from_ref(pair), &TaskOptions::default(), &mut |_| {
                    one_batch += 1
                })
                .unwrap(),
        );
        // Unlimited: the full windows share one batch; the shorter last
        // one runs alone where it would pad them past a quarter of their
        // own lengths (run::batch::plan).
        assert!(
            (1..=2).contains(&one_batch),
            "alone, a question's windows run in at most two batches: {one_batch}"
        );
    }
    assert_json_close(
        &serde_json::json!(together),
        &serde_json::json!(alone),
        ATOL,
        "qa",
    );
    // The questions' answers differ, so a window's span credited to the
    // wrong question would show above.
    let spans: Vec<(usize, usize)> = together
        .iter()
        .step_by(2)
        .map(|a| (a[0].start, a[0].end))
        .collect();
    assert!(spans.iter().any(|s| s != &spans[0]), "{spans:?}");
}

/// The batcher runs on whichever runtime loaded the model: batched in
/// onnxruntime and OpenVINO, each text gets what tract gives it alone
/// (within 1e-4, the bar of tests/runtimes.rs between runtimes).
#[test]
fn onnxruntime_and_openvino_batched_answer_as_tract_alone() {
    let texts = texts();
    let dir = pipelines().join("seq-cls");
    let one_a_batch = BatchLimits {
        max_tokens: 1 << 20,
        max_rows: 1,
    };
    let mut tract = load_model(&dir, one_a_batch);
    let alone = tract
        .run_texts(&singles(&texts), &TaskOptions::default(), &mut |_| {})
        .unwrap()
        .outputs;
    for runtime in [Runtime::Onnxruntime, Runtime::Openvino] {
        let opts = RunOptions {
            runtime,
            batch: SMALL,
            ..Default::default()
        };
        let mut model =
            load(common::test_session(), &dir, &opts).unwrap_or_else(|e| panic!("{runtime}: {e}"));
        let mut batches = 0;
        let together = model
            .run_texts(&singles(&texts), &TaskOptions::default(), &mut |_| batches += 1)
            .unwrap()
            .outputs;
        assert!(batches > 1, "{runtime}: one batch only");
        let d = assert_json_close(
            &together.to_json(model.task),
            &alone.to_json(tract.task),
            1e-4,
            runtime.name(),
        );
        eprintln!("{runtime}: max |batched − tract alone| {d:e}");
    }
}

/// `--jsonl` across windows (4,096 lines each): one line per input, in
/// input order, each the embedding the line gets alone; nothing on
/// stderr in a pipe (no progress bar).
#[test]
fn jsonl_writes_one_line_per_input_in_order_across_windows() {
    let lines = mix_lines();
    // 4,500 lines: the mix, then its lines again in another order.
    let mut texts = lines.clone();
    texts.extend((0..2500).map(|i| lines[(i * 7) % lines.len()].clone()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, texts.join("\n") + "\n").unwrap();
    let model = pipelines().join("st-cls");
    let out = bertc_run(&[&"run", &model, &"--file", &file, &"--jsonl", &"--threads", &"1"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // No progress bar in a pipe: stderr is the one line counting the
    // lines longer than the model's 64 tokens (cut, as sentence-transformers cuts them).
    let stderr = stderr_of(&out);
    assert!(
        stderr.starts_with("warning: ")
            && stderr.contains(" of 4500 inputs were longer than the model reads and were cut at 64 tokens")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let records: Vec<Vec<f32>> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 1, "{l}");
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(records.len(), texts.len());
    // Repeated lines, in either window, get the same vector (batched
    // with other rows: within float noise).
    let max_diff =
        |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) as f64;
    for i in (lines.len()..texts.len()).step_by(97) {
        let d = max_diff(&records[i], &records[(i - lines.len()) * 7 % lines.len()]);
        assert!(d <= ATOL, "line {}: |diff| {d:e}", i + 1);
    }
    // Lines on both sides of the window boundary, each run alone.
    let mut alone = load_model(&model, BatchLimits::default());
    for i in [0, 1, 1999, 4095, 4096, 4097, texts.len() - 1] {
        let one = alone
            .run_texts(
                &[TextInput::Single(&texts[i])],
                &TaskOptions::default(),
                &mut |_| {},
            )
            .unwrap()
            .outputs;
        let Outputs::Embeddings(v) = one else { panic!() };
        let d = max_diff(&v[0], &records[i]);
        assert!(d <= ATOL, "line {}: |diff| {d:e}", i + 1);
    }
}

/// `--jsonl` for a task with `outputs`: each line is `--json`'s entry.
#[test]
fn jsonl_lines_are_the_json_documents_outputs() {
    let g: Value =
        serde_json::from_slice(&std::fs::read(pipelines().join("fill-mask/pipeline-golden.json")).unwrap())
            .unwrap();
    let texts: Vec<&str> = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let model = pipelines().join("fill-mask");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &model];
    for t in &texts {
        args.push(t);
    }
    let json = bertc_run(&[args.as_slice(), &[&"--json"]].concat());
    let jsonl = bertc_run(&[args.as_slice(), &[&"--jsonl"]].concat());
    assert!(
        json.status.success() && jsonl.status.success(),
        "{}",
        stderr_of(&jsonl)
    );
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let lines: Vec<Value> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), texts.len());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["output"], doc["outputs"][i], "input {}", i + 1);
    }
}

/// Past 2,000 inputs `--similarity` is refused before the model is even
/// looked at (this one does not exist), with exit code 2.
#[test]
fn similarity_is_refused_past_its_limit_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.txt");
    let lines: Vec<String> = (0..2001).map(|i| format!("line {i}")).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let missing = dir.path().join("no-model");
    let out = bertc_run(&[&"run", &missing, &"--file", &file, &"--similarity"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("--similarity takes at most 2000 inputs"), "{err}");
    assert!(err.contains("--jsonl"), "{err}");
    assert!(out.stdout.is_empty());

    // At the limit, only the model is missing.
    std::fs::write(&file, lines[..2000].join("\n")).unwrap();
    let out = bertc_run(&[&"run", &missing, &"--file", &file, &"--similarity"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr_of(&out).contains("--similarity"), "{}", stderr_of(&out));

    // A model that answers another task.
    let out = bertc_run(&[&"run", &pipelines().join("seq-cls"), &"a", &"b", &"--similarity"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("this model answers text-classification"),
        "{}",
        stderr_of(&out)
    );
}
