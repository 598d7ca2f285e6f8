//! `bertc run` on texts longer than the model, against transformers
//! 4.46.3's pipelines (tests/fixtures/pipelines/long-inputs.json, copied
//! from the shared golden set; the folders' word tables keep every row
//! these texts read, see zero_unused_rows.py there): question answering
//! across windows (`top_k`, `doc_stride`, `max_seq_len`), token
//! classification with `stride` and every aggregation strategy, text
//! classification with `top_k`, fill-mask past the model's length. Labels,
//! spans, words and offsets equal; scores within 1e-5.

mod common;

use bertc::run::{load, Aggregation, LoadedModel, RunOptions, TaskOptions, TopK};
use bertc::tokenize::TextInput;
use common::assert_json_close;
use serde_json::Value;

const ATOL: f64 = 1e-5;

fn cases(task: &str) -> Vec<Value> {
    let path = common::fixture("pipelines").join("long-inputs.json");
    let all: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(all["transformers"], "4.46.3");
    all[task].as_array().unwrap().clone()
}

fn model(folder: &str) -> LoadedModel {
    let dir = common::fixture("pipelines").join(folder);
    load(common::test_session(), &dir, &RunOptions::default()).unwrap()
}

/// The pipeline's answer for one input, as `--json` prints it.
fn answer(model: &mut LoadedModel, input: TextInput, options: &TaskOptions) -> Value {
    let answered = model.run_texts(&[input], options, &mut |_| {}).unwrap();
    answered.outputs.to_json(model.task)["outputs"][0].clone()
}

fn text(case: &Value, key: &str) -> String {
    case[key].as_str().unwrap().to_string()
}

#[test]
fn question_answering_ranks_every_window_as_the_pipeline() {
    let mut qa = model("qa");
    let mut windows_seen = 0;
    for (i, case) in cases("question-answering").iter().enumerate() {
        let kwargs = &case["kwargs"];
        let number = |k: &str| kwargs[k].as_u64().map(|n| n as usize);
        let options = TaskOptions {
            top_k: number("top_k").map(TopK::Best),
            doc_stride: number("doc_stride"),
            max_seq_len: number("max_seq_len"),
            ..TaskOptions::default()
        };
        let (question, context) = (text(case, "question"), text(case, "context"));
        let got = answer(&mut qa, TextInput::Pair(&question, &context), &options);
        let what = format!("case {i} ({} chars, {kwargs})", context.len());
        let d = assert_json_close(&got, &case["answer"], ATOL, &what);
        eprintln!("{what}: max |score diff| {d:e}");
        windows_seen += usize::from(context.len() > 2000);
    }
    // Contexts of 454 and 1,113 words: two and six 384-token windows.
    assert!(windows_seen >= 12, "the long contexts are in the golden");

    // Any --max-answer-len a user types (no overflow), and `all` refused.
    let case = &cases("question-answering")[0];
    let (question, context) = (text(case, "question"), text(case, "context"));
    let pair = [TextInput::Pair(&question, &context)];
    let longest = TaskOptions {
        max_answer_len: Some(usize::MAX),
        ..TaskOptions::default()
    };
    let answered = qa.run_texts(&pair, &longest, &mut |_| {}).unwrap();
    let bertc::run::Outputs::Answers(a) = answered.outputs else {
        panic!()
    };
    assert_eq!(a[0].len(), 1);
    let all = TaskOptions {
        top_k: Some(TopK::All),
        ..TaskOptions::default()
    };
    let err = qa.run_texts(&pair, &all, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("not `all`"), "{err}");
}

#[test]
fn token_classification_strides_with_every_aggregation_strategy() {
    let mut ner = model("token-cls");
    let mut strategies = std::collections::BTreeSet::new();
    for (i, case) in cases("token-classification").iter().enumerate() {
        let strategy = case["aggregation_strategy"].as_str().unwrap();
        strategies.insert(strategy.to_string());
        let options = TaskOptions {
            aggregation_strategy: strategy.parse::<Aggregation>().unwrap(),
            stride: case["stride"].as_u64().map(|n| n as usize),
            ..TaskOptions::default()
        };
        let t = text(case, "text");
        let got = answer(&mut ner, TextInput::Single(&t), &options);
        let what = format!("case {i} ({} chars, {strategy})", t.len());
        let d = assert_json_close(&got, &case["entities"], ATOL, &what);
        eprintln!(
            "{what}: {} entities, max |score diff| {d:e}",
            got.as_array().unwrap().len()
        );
    }
    assert_eq!(strategies.len(), 5, "none, simple, first, average, max");
}

#[test]
fn text_classification_keeps_the_top_k_labels() {
    let mut cls = model("seq-cls");
    for (i, case) in cases("text-classification").iter().enumerate() {
        let top_k = match case["top_k"].as_u64() {
            Some(k) => TopK::Best(k as usize),
            None => TopK::All,
        };
        let options = TaskOptions {
            top_k: Some(top_k),
            ..TaskOptions::default()
        };
        let t = text(case, "text");
        let answered = cls
            .run_texts(&[TextInput::Single(&t)], &options, &mut |_| {})
            .unwrap();
        let got = answered.outputs.to_json(cls.task)["outputs"][0].clone();
        assert_json_close(&got, &case["answer"], ATOL, &format!("case {i} top_k {top_k:?}"));
        // Texts past 512 tokens are cut as the pipeline cuts them, and said so.
        let long = t.len() > 2000;
        assert_eq!(
            answered.cut.len(),
            usize::from(long),
            "case {i}: {:?}",
            answered.cut
        );
        if let Some(cut) = answered.cut.first() {
            assert_eq!(cut.tokens, 512);
            let (read, all) = cut.chars.unwrap();
            assert!(read < all && all == t.chars().count(), "{read} of {all}");
        }
    }
    // The pipeline's default is the best label alone.
    let t = text(&cases("text-classification")[0], "text");
    let got = answer(&mut cls, TextInput::Single(&t), &TaskOptions::default());
    assert_eq!(got.as_array().unwrap().len(), 1);
}

#[test]
fn fill_mask_past_the_models_length_is_cut_as_the_pipeline_cuts_it() {
    let mut fill = model("fill-mask");
    for (i, case) in cases("fill-mask").iter().enumerate() {
        let options = TaskOptions {
            top_k: Some(TopK::Best(case["top_k"].as_u64().unwrap() as usize)),
            ..TaskOptions::default()
        };
        let t = text(case, "text");
        let got = answer(&mut fill, TextInput::Single(&t), &options);
        assert_json_close(&got, &case["answer"], ATOL, &format!("case {i}"));
    }
    // A mask the cut leaves out is named as such, not "no mask token".
    let late = format!("{} the end is [MASK].", "word ".repeat(600));
    let err = fill
        .run_texts(&[TextInput::Single(&late)], &TaskOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("past the 512 tokens"), "{err}");
}
