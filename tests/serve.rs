//! `bertc serve` over loopback: every route's answer equals `bertc run`'s
//! for the same inputs (embeddings within 1e-6, labels and spans
//! identical), input order kept across requests batched together, each
//! bad request's status and TEI error body, 429 with Retry-After past the
//! concurrency limit, TEI's documented curl examples, OpenAI's Python
//! client, and SIGTERM under load: every accepted request answered, exit 0.
//!
//! Servers run in this process (the library, with a stop channel) except
//! where the binary itself is the subject (SIGTERM). Every wait is a
//! bounded poll; nothing asserts on time.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use bertc::run::{load, RunOptions};
use bertc::serve::{serve, Gate, ServeOptions};
use common::{assert_json_close, fixture, minilm_dir, run_json, strings, test_session};
use serde_json::{json, Value};

/// Embeddings: the brief's bound.
const EMBED_ATOL: f64 = 1e-6;
/// Scores: as tests/run_pipelines.rs compares the pipelines'.
const SCORE_ATOL: f64 = 1e-6;

/// A server of this process; stopped (and every request it accepted
/// answered) when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), bertc::serve::ServeError>>>,
}

impl Server {
    fn start(model: &Path, configure: impl FnOnce(&mut ServeOptions)) -> Server {
        let loaded = load(test_session(), model, &RunOptions::default()).expect("the model loads");
        let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap(), "test-model");
        configure(&mut options);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            serve(
                test_session(),
                loaded,
                options,
                move |a| bound.send(a).unwrap(),
                async move {
                    let _ = stopped.await;
                },
            )
        });
        let addr = addr.recv().expect("the server binds");
        let server = Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        };
        wait_ready(addr);
        server
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post(self.addr, path, &body.to_string(), &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let result = t.join().expect("the server thread ends");
            if !std::thread::panicking() {
                result.expect("the server stops cleanly");
            }
        }
    }
}

/// Polls `/health` until 200 (the model answered its warm-up input).
fn wait_ready(addr: SocketAddr) {
    for _ in 0..3000 {
        if get(addr, "/health").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{addr} never became ready");
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build()
}

/// A response's status, body (JSON, or a string when it is not) and
/// `Retry-After`.
fn read(result: Result<ureq::Response, ureq::Error>) -> (u16, Value, Option<String>) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no response: {e}"),
    };
    let status = response.status();
    let retry = response.header("Retry-After").map(str::to_string);
    let text = response.into_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, retry)
}

fn post(addr: SocketAddr, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, body, _) = post_full(addr, path, body, headers);
    (status, body)
}

fn post_full(
    addr: SocketAddr,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let mut request = agent()
        .post(&format!("http://{addr}{path}"))
        .set("Content-Type", "application/json");
    for (k, v) in headers {
        request = request.set(k, v);
    }
    read(request.send_string(body))
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    match agent().get(&format!("http://{addr}{path}")).call() {
        Err(ureq::Error::Transport(_)) => (0, Value::Null),
        r => {
            let (status, body, _) = read(r);
            (status, body)
        }
    }
}

/// A TEI error body: its type, and its message containing `names`.
fn assert_error(answer: &(u16, Value), status: u16, error_type: &str, names: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error_type"], error_type, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains(names), "`{names}` not in: {message}");
}

fn pipelines(folder: &str) -> PathBuf {
    fixture("pipelines").join(folder)
}

fn golden_texts(folder: &str) -> Vec<String> {
    let path = pipelines(folder).join("pipeline-golden.json");
    let g: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    strings(&g["texts"])
}

/// Sentences of many lengths: the text mix's first lines.
fn mix_lines(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(fixture("text-mix/lines-2000.txt")).unwrap();
    text.lines().take(n).map(str::to_string).collect()
}

fn args(texts: &[String], more: &[&str]) -> Vec<String> {
    texts
        .iter()
        .cloned()
        .chain(more.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn minilm_embeddings_equal_bertc_runs_and_keep_order_across_concurrent_requests() {
    let model = minilm_dir();
    let lines = mix_lines(48);
    let expected = run_json(&model, &lines)["embeddings"].clone();
    let server = Server::start(&model, |o| o.max_client_batch_size = 64);
    // One request for all: raw (the model's Normalize module already
    // normalizes), and TEI's default normalize.
    let (status, raw) = server.post("/embed", &json!({"inputs": lines, "normalize": false}));
    assert_eq!(status, 200, "{raw}");
    let d = assert_json_close(&raw, &expected, EMBED_ATOL, "/embed");
    eprintln!("/embed: max |serve − run| {d:e}");
    let (_, normalized) = server.post("/embed", &json!({"inputs": lines}));
    assert_json_close(&normalized, &expected, EMBED_ATOL, "/embed normalized");
    // A single string answers a list of one.
    let (_, one) = server.post("/embed", &json!({"inputs": lines[3]}));
    assert_json_close(&one, &json!([expected[3]]), EMBED_ATOL, "/embed one");
    // OpenAI's shape, floats and base64.
    let (status, openai) = server.post("/v1/embeddings", &json!({"input": lines[..4], "model": "x"}));
    assert_eq!(status, 200, "{openai}");
    assert_eq!(openai["object"], "list");
    for i in 0..4 {
        assert_eq!(openai["data"][i]["index"], i);
        assert_json_close(
            &openai["data"][i]["embedding"],
            &expected[i],
            EMBED_ATOL,
            "/v1/embeddings",
        );
    }
    assert!(openai["usage"]["prompt_tokens"].as_u64().unwrap() > 4 * 2);
    let (_, b64) = server.post(
        "/v1/embeddings",
        &json!({"input": lines[0], "encoding_format": "base64"}),
    );
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        b64["data"][0]["embedding"].as_str().unwrap(),
    )
    .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_json_close(&json!(decoded), &expected[0], EMBED_ATOL, "base64");
    // Eight clients at once, each its own slice in its own order (the
    // worker runs what is queued together, sorted by length).
    let addr = server.addr;
    let clients: Vec<JoinHandle<(usize, Value)>> = (0..8)
        .map(|c| {
            let mine: Vec<String> = lines.iter().skip(c).step_by(8).cloned().collect();
            std::thread::spawn(move || {
                let (status, body) = post(
                    addr,
                    "/embed",
                    &json!({"inputs": mine, "normalize": false}).to_string(),
                    &[],
                );
                assert_eq!(status, 200, "{body}");
                (c, body)
            })
        })
        .collect();
    for client in clients {
        let (c, body) = client.join().unwrap();
        let mine: Vec<Value> = (c..lines.len()).step_by(8).map(|i| expected[i].clone()).collect();
        assert_json_close(&body, &json!(mine), EMBED_ATOL, &format!("client {c}"));
    }
    // The batches were counted, the requests too.
    let (_, metrics) = get(addr, "/metrics");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("bertc_request_duration_seconds_count{route=\"/embed\",status=\"200\"} 11"),
        "{metrics}"
    );
    assert!(metrics.contains("bertc_batch_inputs_count"), "{metrics}");
    let (status, info) = get(addr, "/info");
    assert_eq!(status, 200);
    assert_eq!(info["task"], "sentence-similarity");
    assert_eq!(info["compiled_at_start"], false);
    assert_eq!(info["max_input_length"], 256, "{info}");
}

#[test]
fn tokenize_gives_the_models_tokens_with_their_spans() {
    let server = Server::start(&pipelines("st-cls"), |_| {});
    let (status, body) = server.post("/tokenize", &json!({"inputs": "Hello there"}));
    assert_eq!(status, 200, "{body}");
    let tokens = body[0].as_array().unwrap();
    let mut tokenizer = bertc::tokenize::TextTokenizer::from_folder(&pipelines("st-cls"), 512).unwrap();
    let e = tokenizer
        .encode_whole(bertc::tokenize::TextInput::Single("Hello there"), true)
        .unwrap();
    let ids: Vec<u64> = tokens.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, e.get_ids().iter().map(|&i| i as u64).collect::<Vec<_>>());
    assert_eq!(tokens[0]["special"], true);
    assert_eq!(tokens[0]["start"], Value::Null);
    assert_eq!(tokens.last().unwrap()["special"], true);
    assert_eq!(tokens[1]["special"], false);
    assert_eq!(tokens[1]["start"], 0);
    let (_, bare) = server.post(
        "/tokenize",
        &json!({"inputs": ["Hello there"], "add_special_tokens": false}),
    );
    assert_eq!(bare[0].as_array().unwrap().len(), tokens.len() - 2);
}

#[test]
fn predict_answers_texts_pairs_and_batches_as_bertc_run() {
    let model = pipelines("seq-cls");
    let texts = golden_texts("seq-cls");
    let expected = run_json(&model, &args(&texts, &["--top-k", "all"]))["outputs"].clone();
    let pair = run_json(
        &model,
        &args(&texts[..1], &["--pair", &texts[1], "--top-k", "all"]),
    )["outputs"][0]
        .clone();
    let server = Server::start(&model, |_| {});
    let (status, one) = server.post("/predict", &json!({"inputs": texts[2]}));
    assert_eq!(status, 200, "{one}");
    assert_json_close(&one, &expected[2], SCORE_ATOL, "/predict one");
    let batch: Vec<Value> = texts.iter().map(|t| json!([t])).collect();
    let (_, all) = server.post("/predict", &json!({"inputs": batch}));
    assert_json_close(&all, &expected, SCORE_ATOL, "/predict batch");
    let (_, p) = server.post("/predict", &json!({"inputs": [texts[0], texts[1]]}));
    assert_json_close(&p, &pair, SCORE_ATOL, "/predict pair");
    // Three labels: not a re-ranker, and the answer says where to ask.
    let r = server.post("/rerank", &json!({"query": "q", "texts": ["a"]}));
    assert_error(&r, 400, "Validation", "/predict");
}

/// tests/fixtures/pipelines/seq-cls with its classifier cut to its first
/// label: a cross-encoder's single score, for `/rerank`.
fn one_label_cross_encoder() -> tempfile::TempDir {
    let source = pipelines("seq-cls");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ] {
        std::fs::copy(source.join(f), dir.path().join(f)).unwrap();
    }
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(source.join("config.json")).unwrap()).unwrap();
    config["id2label"] = json!({"0": "LABEL_0"});
    config["label2id"] = json!({"LABEL_0": 0});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let mut tensors = bertc::runtime::read_safetensors(&source.join("model.safetensors")).unwrap();
    for (name, t) in tensors.iter_mut() {
        if name.starts_with("classifier.") {
            let per_label: usize = t.shape[1..].iter().product();
            if let bertc::runtime::HostData::F32(v) = &mut t.data {
                v.truncate(per_label);
            }
            t.shape[0] = 1;
        }
    }
    bertc::runtime::write_safetensors(&dir.path().join("model.safetensors"), &tensors).unwrap();
    dir
}

#[test]
fn rerank_scores_every_text_against_the_query_best_first() {
    let dir = one_label_cross_encoder();
    let texts = golden_texts("seq-cls");
    let query = "Was the evening good?";
    let pairs: Vec<String> = texts
        .iter()
        .flat_map(|t| ["--pair".to_string(), t.clone()])
        .collect();
    let queries: Vec<String> = texts.iter().map(|_| query.to_string()).collect();
    let expected = run_json(dir.path(), &[queries, pairs].concat())["outputs"].clone();
    let server = Server::start(dir.path(), |_| {});
    let (status, ranks) = server.post(
        "/rerank",
        &json!({"query": query, "texts": texts, "return_text": true}),
    );
    assert_eq!(status, 200, "{ranks}");
    let ranks = ranks.as_array().unwrap();
    assert_eq!(ranks.len(), texts.len());
    for w in ranks.windows(2) {
        assert!(w[0]["score"].as_f64() >= w[1]["score"].as_f64(), "{ranks:?}");
    }
    for r in ranks {
        let i = r["index"].as_u64().unwrap() as usize;
        assert_eq!(r["text"], texts[i]);
        assert_json_close(&r["score"], &expected[i][0]["score"], SCORE_ATOL, "/rerank");
    }
    let (_, plain) = server.post("/rerank", &json!({"query": query, "texts": texts}));
    assert!(plain[0].get("text").is_none(), "{plain}");
}

#[test]
fn entities_answers_and_fills_equal_bertc_runs() {
    let model = pipelines("token-cls");
    let texts = golden_texts("token-cls");
    let expected = run_json(&model, &texts)["outputs"].clone();
    let server = Server::start(&model, |_| {});
    let (status, all) = server.post("/token-classification", &json!({"inputs": texts}));
    assert_eq!(status, 200, "{all}");
    assert_json_close(&all, &expected, SCORE_ATOL, "/token-classification");
    let none =
        run_json(&model, &args(&texts[..1], &["--aggregation-strategy", "none"]))["outputs"][0].clone();
    let (_, one) = server.post(
        "/token-classification",
        &json!({"inputs": texts[0], "aggregation_strategy": "none"}),
    );
    assert_json_close(&one, &none, SCORE_ATOL, "/token-classification none");
    // A route this model cannot answer names its task.
    let r = server.post("/embed", &json!({"inputs": "x"}));
    assert_error(&r, 400, "Validation", "token-classification");
    drop(server);

    let model = pipelines("qa");
    let expected = run_json(
        &model,
        &strings(&json!([
            "--question",
            "How old are you?",
            "--context",
            "I am 30 years old.",
            "--question",
            "Where is Paris?",
            "--context",
            "The weather is nice."
        ])),
    )["outputs"]
        .clone();
    let server = Server::start(&model, |_| {});
    let (status, answers) = server.post(
        "/question-answering",
        &json!({"inputs": [{"question": "How old are you?", "context": "I am 30 years old."}, {"question": "Where is Paris?", "context": "The weather is nice."}]}),
    );
    assert_eq!(status, 200, "{answers}");
    assert_json_close(&answers, &expected, SCORE_ATOL, "/question-answering");
    let (_, one) = server.post(
        "/question-answering",
        &json!({"question": "Where is Paris?", "context": "The weather is nice."}),
    );
    assert_json_close(&one, &expected[1], SCORE_ATOL, "/question-answering one");
    drop(server);

    let model = pipelines("fill-mask");
    let texts = golden_texts("fill-mask");
    let expected = run_json(&model, &args(&texts, &["--top-k", "3"]))["outputs"].clone();
    let server = Server::start(&model, |_| {});
    let (status, fills) = server.post("/fill-mask", &json!({"inputs": texts, "top_k": 3}));
    assert_eq!(status, 200, "{fills}");
    assert_json_close(&fills, &expected, SCORE_ATOL, "/fill-mask");
    // A text without a mask is the client's error, and names its input.
    let r = server.post("/fill-mask", &json!({"inputs": ["no mask here"]}));
    assert_eq!(r.0, 422, "{}", r.1);
}

#[test]
fn each_bad_request_gets_its_status_and_teis_error_body() {
    let server = Server::start(&pipelines("st-cls"), |o| {
        o.max_client_batch_size = 2;
        o.max_input_length = Some(8);
        o.max_body_bytes = 4096;
        o.api_key = Some("sesame".into());
    });
    let addr = server.addr;
    let key = [("Authorization", "Bearer sesame")];
    let ask = |path: &str, body: &str| post(addr, path, body, &key);
    assert_error(
        &ask("/embed", "{\"inputs\": "),
        422,
        "Validation",
        "malformed JSON",
    );
    assert_error(&ask("/embed", "[\"a\"]"), 422, "Validation", "`body`");
    assert_error(&ask("/embed", "{\"inputs\": 3}"), 422, "Validation", "`inputs`");
    assert_error(
        &ask("/embed", "{\"inputs\": [\"a\", false]}"),
        422,
        "Validation",
        "`inputs[1]`",
    );
    assert_error(
        &ask("/embed", "{\"inputs\": \"a\", \"normalize\": 1}"),
        422,
        "Validation",
        "`normalize`",
    );
    assert_error(
        &ask("/embed", "{\"text\": \"a\"}"),
        422,
        "Validation",
        "`inputs`: missing",
    );
    assert_error(&ask("/embed", "{\"inputs\": []}"), 422, "Empty", "`inputs`");
    assert_error(
        &ask("/embed", "{\"inputs\": [\"a\", \"b\", \"c\"]}"),
        422,
        "Validation",
        "--max-client-batch-size",
    );
    let long = json!({"inputs": ["short", "one two three four five six seven eight nine"]}).to_string();
    assert_error(&ask("/embed", &long), 413, "Validation", "`inputs[1]` is");
    // Cut at the limit when asked: the answer is the one of the cut text.
    let cut =
        json!({"inputs": ["one two three four five six seven eight nine"], "truncate": true}).to_string();
    let (status, vectors) = ask("/embed", &cut);
    assert_eq!(status, 200, "{vectors}");
    let first_six = json!({"inputs": ["one two three four five six"]}).to_string();
    assert_json_close(&vectors, &ask("/embed", &first_six).1, EMBED_ATOL, "cut");
    let huge = json!({"inputs": "x".repeat(5000)}).to_string();
    assert_error(&ask("/embed", &huge), 413, "Validation", "4096 bytes");
    assert_error(&ask("/nowhere", "{}"), 404, "NotFound", "/nowhere");
    assert_error(&(get_with(addr, "/embed", &key)), 405, "NotFound", "GET");
    assert_error(
        &ask("/predict", "{\"inputs\": \"a\"}"),
        400,
        "Validation",
        "sentence-similarity",
    );
    // The key: missing or wrong is 401; /health stays open.
    assert_error(
        &post(addr, "/embed", "{\"inputs\": \"a\"}", &[]),
        401,
        "Unauthorized",
        "Bearer",
    );
    let wrong = [("Authorization", "Bearer sesamE")];
    assert_error(
        &post(addr, "/embed", "{\"inputs\": \"a\"}", &wrong),
        401,
        "Unauthorized",
        "API key",
    );
    assert_eq!(get(addr, "/info").0, 401);
    assert_eq!(get(addr, "/health").0, 200);
    assert_eq!(get_with(addr, "/info", &key).0, 200);
    // Nothing above broke the server.
    assert_eq!(ask("/embed", "{\"inputs\": \"still here\"}").0, 200);
}

fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = agent().get(&format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let (status, body, _) = read(request.call());
    (status, body)
}

#[test]
fn past_the_concurrency_limit_the_answer_is_429_with_retry_after_never_a_hang() {
    let gate = Gate::closed();
    let held = gate.clone();
    let server = Server::start(&pipelines("st-cls"), move |o| {
        o.max_concurrent_requests = 1;
        o.gate = Some(held);
    });
    let addr = server.addr;
    // The first request is accepted and waits at the closed gate.
    let first = std::thread::spawn(move || post(addr, "/embed", "{\"inputs\": \"first\"}", &[]));
    wait_for_metric(addr, "bertc_requests_in_flight 1");
    let (status, body, retry) = post_full(addr, "/embed", "{\"inputs\": \"second\"}", &[]);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error_type"], "Overloaded");
    assert_eq!(retry.as_deref(), Some("1"));
    // Open: the first is answered, and the server takes requests again.
    gate.open();
    assert_eq!(first.join().unwrap().0, 200);
    assert_eq!(server.post("/embed", &json!({"inputs": "third"})).0, 200);
}

/// Polls `/metrics` until it has `line`.
fn wait_for_metric(addr: SocketAddr, line: &str) {
    for _ in 0..3000 {
        if get(addr, "/metrics")
            .1
            .as_str()
            .is_some_and(|m| m.lines().any(|l| l == line))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("/metrics never showed `{line}`");
}

/// TEI's README examples, byte for byte but the port, with curl.
#[test]
fn teis_documented_curl_examples_work_unchanged() {
    let curl = |addr: SocketAddr, route: &str, body: &str| -> Value {
        let out = Command::new("curl")
            .args(["-s", "-f"])
            .arg(format!("127.0.0.1:{}/{route}", addr.port()))
            .args(["-X", "POST", "-d", body, "-H", "Content-Type: application/json"])
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl /{route}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let server = Server::start(&pipelines("st-cls"), |_| {});
    let v = curl(server.addr, "embed", r#"{"inputs":"What is Deep Learning?"}"#);
    assert_eq!(v.as_array().unwrap().len(), 1);
    let v = curl(server.addr, "tokenize", r#"{"inputs":"test"}"#);
    assert!(v[0][0]["id"].is_u64(), "{v}");
    drop(server);
    let server = Server::start(&pipelines("seq-cls"), |_| {});
    let v = curl(server.addr, "predict", r#"{"inputs":"I like you."}"#);
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    drop(server);
    let dir = one_label_cross_encoder();
    let server = Server::start(dir.path(), |_| {});
    let v = curl(
        server.addr,
        "rerank",
        r#"{"query":"What is Deep Learning?", "texts": ["Deep Learning is not...", "Deep learning is..."]}"#,
    );
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
}

/// scripts/serve_openai_check.py: OpenAI's Python client, `base_url` at
/// the server, gets `bertc run`'s vectors.
#[test]
fn openais_python_client_gets_the_same_vectors() {
    let model = pipelines("st-cls");
    let texts = golden_texts("st-cls");
    let expected = run_json(&model, &texts)["embeddings"].clone();
    let server = Server::start(&model, |_| {});
    let out = Command::new("python3")
        .arg(common::root().join("scripts/serve_openai_check.py"))
        .arg(format!("http://{}/v1", server.addr))
        .args(&texts)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = assert_json_close(&got, &expected, EMBED_ATOL, "openai client");
    eprintln!("openai client: max |diff| {d:e}");
}

/// The binary under load: SIGTERM with requests accepted and unanswered;
/// each is answered 200, then the process exits 0.
#[test]
fn sigterm_during_load_answers_every_accepted_request_and_exits_0() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bertc"))
        .args(["serve", "--port", "0", "--threads", "2"])
        .arg(pipelines("st-cls"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("bertc serve starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in: {line}"));
    wait_ready(addr);
    let lines = mix_lines(256);
    const CLIENTS: usize = 8;
    let clients: Vec<JoinHandle<u16>> = (0..CLIENTS)
        .map(|c| {
            let mine: Vec<String> = lines.iter().skip(c * 32).take(32).cloned().collect();
            let body = json!({"inputs": mine, "truncate": true}).to_string();
            std::thread::spawn(move || post(addr, "/embed", &body, &[]).0)
        })
        .collect();
    // Every request accepted: in flight, or already answered.
    for _ in 0..3000 {
        let (_, m) = get(addr, "/metrics");
        let m = m.as_str().unwrap_or_default().to_string();
        let number = |prefix: &str| -> usize {
            m.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let done = number("bertc_request_duration_seconds_count{route=\"/embed\",status=\"200\"}");
        if number("bertc_requests_in_flight") + done == CLIENTS {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("stopped"), "{rest}");
    // And the port is closed.
    assert!(TcpStream::connect(addr).is_err());
    let _ = std::io::stdout().flush();
}
