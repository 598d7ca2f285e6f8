//! One handler per task route, in TEI's request and response shapes
//! (`/embed`, `/v1/embeddings` in OpenAI's, `/predict`, `/rerank`,
//! `/tokenize`) and, for what TEI lacks, bertc's own: the answers `bertc
//! run --json` gives under `outputs` (`/token-classification`,
//! `/question-answering`, `/fill-mask`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::requests::{self, Body};
use super::routes::{body, infer, needs, Asked, Shared};
use crate::run::{Aggregation, Outputs, Task, TaskOptions, TopK};
use crate::tokenize::TextInput;

/// A request body as read, or why it was not (too large).
type RawBody = Result<Bytes, BytesRejection>;
type Answer = Result<Response, ApiError>;

fn respond(answer: Answer) -> Response {
    match answer {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn ok(body: &impl Serialize) -> Answer {
    Ok(super::json_response(StatusCode::OK, body))
}

/// Texts alone, the inputs of most routes.
fn singles(texts: Vec<String>) -> Vec<(String, Option<String>)> {
    texts.into_iter().map(|t| (t, None)).collect()
}

/// Runs texts for embeddings: `(vectors, tokens)`.
async fn embeddings(
    s: &Shared,
    field: &'static str,
    texts: Vec<String>,
    truncate: bool,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let asked = Asked {
        inputs: singles(texts),
        options: TaskOptions::default(),
        truncate,
        windows: false,
        field,
    };
    let (answered, tokens) = infer(s, asked).await?;
    match answered.outputs {
        Outputs::Embeddings(v) => Ok((v, tokens)),
        _ => Err(unexpected()),
    }
}

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        super::errors::ErrorKind::Backend,
        "the model answered another task than its own",
    )
}

/// L2 normalization as TEI's `normalize` (the default) applies it.
fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// `POST /embed`: `{"inputs": string | [string], "normalize": true,
/// "truncate": false}` → `[[f32]]`.
pub async fn embed(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/embed", &[Task::SentenceSimilarity])?;
            let b = body(&s, bytes)?;
            let (texts, _) = requests::texts(&b, "inputs")?;
            let normalize = requests::flag(&b, "normalize", true)?;
            let truncate = requests::flag(&b, "truncate", false)?;
            let (vectors, _) = embeddings(&s, "inputs", texts, truncate).await?;
            let vectors: Vec<Vec<f32>> = match normalize {
                true => vectors.into_iter().map(normalized).collect(),
                false => vectors,
            };
            ok(&vectors)
        }
        .await,
    )
}

/// `POST /v1/embeddings`, OpenAI's shape: `{"input": string | [string],
/// "model", "encoding_format": "float" | "base64"}` (OpenAI's Python
/// client asks base64: little-endian f32 bytes).
pub async fn openai_embeddings(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/v1/embeddings", &[Task::SentenceSimilarity])?;
            let b = body(&s, bytes)?;
            let (texts, _) = requests::texts(&b, "input")?;
            let base64 = match requests::option_string(&b, "encoding_format")?.as_deref() {
                None | Some("float") => false,
                Some("base64") => true,
                Some(other) => {
                    return Err(ApiError::field(
                        "encoding_format",
                        format!("expected \"float\" or \"base64\", found \"{other}\""),
                    ))
                }
            };
            let (vectors, tokens) = embeddings(&s, "input", texts, false).await?;
            let data: Vec<Value> = vectors
                .iter()
                .enumerate()
                .map(|(index, v)| {
                    let embedding = match base64 {
                        true => {
                            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                        }
                        false => json!(v),
                    };
                    json!({"object": "embedding", "embedding": embedding, "index": index})
                })
                .collect();
            ok(&json!({
                "object": "list",
                "data": data,
                "model": s.options.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }))
        }
        .await,
    )
}

/// TEI's `raw_scores` asks for logits; the answers here are the
/// pipeline's scores, so it is refused rather than ignored.
fn no_raw_scores(b: &Body) -> Result<(), ApiError> {
    match requests::flag(b, "raw_scores", false)? {
        false => Ok(()),
        true => Err(ApiError::field(
            "raw_scores",
            "not supported: scores are the pipeline's (softmax, or sigmoid for one label)",
        )),
    }
}

/// Runs a classifier on `inputs`, every label of each.
async fn classify(
    s: &Shared,
    field: &'static str,
    inputs: Vec<(String, Option<String>)>,
    truncate: bool,
) -> Result<Vec<Vec<crate::run::LabelScore>>, ApiError> {
    let asked = Asked {
        inputs,
        options: TaskOptions {
            top_k: Some(TopK::All),
            ..Default::default()
        },
        truncate,
        windows: false,
        field,
    };
    match infer(s, asked).await?.0.outputs {
        Outputs::Classes(c) => Ok(c),
        _ => Err(unexpected()),
    }
}

/// `POST /predict`: `{"inputs": text | [a, b] | [[text], [a, b], ...]}`
/// → every label with its score, best first (a list per input for a batch).
pub async fn predict(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/predict", &[Task::TextClassification])?;
            let b = body(&s, bytes)?;
            let (inputs, one) = requests::sequences(&b, "inputs")?;
            let truncate = requests::flag(&b, "truncate", false)?;
            no_raw_scores(&b)?;
            let classes = classify(&s, "inputs", inputs, truncate).await?;
            match one {
                true => ok(&classes[0]),
                false => ok(&classes),
            }
        }
        .await,
    )
}

/// `POST /rerank`: `{"query", "texts": [string], "return_text"}` → each
/// text's index and score (the cross-encoder's one label), best first.
pub async fn rerank(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/rerank", &[Task::TextClassification])?;
            let b = body(&s, bytes)?;
            let query = requests::string(&b, "query")?;
            let (texts, _) = requests::texts(&b, "texts")?;
            let truncate = requests::flag(&b, "truncate", false)?;
            let return_text = requests::flag(&b, "return_text", false)?;
            no_raw_scores(&b)?;
            let inputs = texts.iter().map(|t| (query.clone(), Some(t.clone()))).collect();
            let classes = classify(&s, "texts", inputs, truncate).await?;
            let mut ranks = Vec::with_capacity(classes.len());
            for (index, labels) in classes.iter().enumerate() {
                let [one] = labels.as_slice() else {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        super::errors::ErrorKind::Validation,
                        format!("/rerank needs a cross-encoder with one score; this model has {} labels (ask /predict)", labels.len()),
                    ));
                };
                let mut rank = json!({"index": index, "score": one.score});
                if return_text {
                    rank["text"] = json!(texts[index]);
                }
                ranks.push((one.score, rank));
            }
            // Stable: equal scores keep the texts' order.
            ranks.sort_by(|a, b| b.0.total_cmp(&a.0));
            ok(&ranks.into_iter().map(|(_, r)| r).collect::<Vec<_>>())
        }
        .await,
    )
}

/// `POST /tokenize`: `{"inputs": string | [string], "add_special_tokens":
/// true}` → per input its tokens: id, text, special, and the character
/// span (`start`, `stop`; null for special tokens).
pub async fn tokenize(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            let b = body(&s, bytes)?;
            let (texts, _) = requests::texts(&b, "inputs")?;
            let special = requests::flag(&b, "add_special_tokens", true)?;
            if texts.is_empty() {
                return Err(ApiError::empty("inputs"));
            }
            let mut tokenizer = s.tokenizer.lock().unwrap_or_else(|p| p.into_inner());
            let mut all = Vec::with_capacity(texts.len());
            for (i, text) in texts.iter().enumerate() {
                let e = tokenizer
                    .encode_whole(TextInput::Single(text), special)
                    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, super::errors::ErrorKind::Tokenizer, format!("`inputs[{i}]`: {e}")))?;
                let tokens: Vec<Value> = (0..e.len())
                    .map(|t| {
                        let is_special = e.get_special_tokens_mask()[t] == 1;
                        let (start, stop) = e.get_offsets()[t];
                        let piece = e.get_tokens()[t].clone();
                        match is_special {
                            true => json!({"id": e.get_ids()[t], "text": piece, "special": true, "start": null, "stop": null}),
                            false => json!({"id": e.get_ids()[t], "text": piece, "special": false, "start": start, "stop": stop}),
                        }
                    })
                    .collect();
                all.push(tokens);
            }
            ok(&all)
        }
        .await,
    )
}

/// The task's pipeline answers, one per input, unwrapped for one input
/// given alone (as `bertc run --json` lists them under `outputs`).
fn pipeline_answer(outputs: &Outputs, one: bool) -> Answer {
    let items = outputs.pipeline_items();
    match (one, items.as_slice()) {
        (true, [item]) => ok(item),
        _ => ok(&items),
    }
}

/// `POST /token-classification`: `{"inputs": string | [string],
/// "aggregation_strategy", "stride", "truncate"}` → the entities of each.
pub async fn token_classification(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/token-classification", &[Task::TokenClassification])?;
            let b = body(&s, bytes)?;
            let (texts, one) = requests::texts(&b, "inputs")?;
            let aggregation_strategy = match requests::option_string(&b, "aggregation_strategy")? {
                Some(name) => name
                    .parse::<Aggregation>()
                    .map_err(|e| ApiError::field("aggregation_strategy", e))?,
                None => Aggregation::default(),
            };
            let stride = requests::count(&b, "stride")?;
            let asked = Asked {
                inputs: singles(texts),
                options: TaskOptions {
                    aggregation_strategy,
                    stride,
                    ..Default::default()
                },
                truncate: requests::flag(&b, "truncate", false)?,
                windows: stride.is_some(),
                field: "inputs",
            };
            pipeline_answer(&infer(&s, asked).await?.0.outputs, one)
        }
        .await,
    )
}

/// A `top_k` field as the pipelines take it (a whole number from 1).
fn top_k(b: &Body) -> Result<Option<TopK>, ApiError> {
    match requests::count(b, "top_k")? {
        None => Ok(None),
        Some(0) => Err(ApiError::field("top_k", "must be at least 1")),
        Some(k) => Ok(Some(TopK::Best(k))),
    }
}

/// `POST /question-answering`: `{"question", "context"}` or `{"inputs":
/// [{"question", "context"}, ...]}`, with the pipeline's `top_k`,
/// `max_answer_len`, `max_seq_len`, `doc_stride`,
/// `handle_impossible_answer` → the answer(s) of each.
pub async fn question_answering(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/question-answering", &[Task::QuestionAnswering])?;
            let b = body(&s, bytes)?;
            let (inputs, one) = requests::questions(&b)?;
            let at_least_one = |field: &str| -> Result<Option<usize>, ApiError> {
                match requests::count(&b, field)? {
                    Some(0) => Err(ApiError::field(field, "must be at least 1")),
                    n => Ok(n),
                }
            };
            let options = TaskOptions {
                top_k: top_k(&b)?,
                max_answer_len: at_least_one("max_answer_len")?,
                max_seq_len: at_least_one("max_seq_len")?,
                doc_stride: requests::count(&b, "doc_stride")?,
                handle_impossible_answer: requests::flag(&b, "handle_impossible_answer", false)?,
                ..Default::default()
            };
            let asked = Asked {
                inputs,
                options,
                truncate: false,
                windows: true,
                field: "inputs",
            };
            pipeline_answer(&infer(&s, asked).await?.0.outputs, one)
        }
        .await,
    )
}

/// `POST /fill-mask`: `{"inputs": string | [string], "top_k", "truncate"}`
/// → the fills of each mask.
pub async fn fill_mask(State(s): State<Arc<Shared>>, bytes: RawBody) -> Response {
    respond(
        async {
            needs(&s, "/fill-mask", &[Task::FillMask])?;
            let b = body(&s, bytes)?;
            let (texts, one) = requests::texts(&b, "inputs")?;
            let asked = Asked {
                inputs: singles(texts),
                options: TaskOptions {
                    top_k: top_k(&b)?,
                    ..Default::default()
                },
                truncate: requests::flag(&b, "truncate", false)?,
                windows: false,
                field: "inputs",
            };
            pipeline_answer(&infer(&s, asked).await?.0.outputs, one)
        }
        .await,
    )
}
