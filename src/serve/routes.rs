//! The router: every route, the guard in front of them (API key,
//! per-route metrics), the open ones (`/health`, `/info`, `/metrics`),
//! the answers for a path or method that does not exist, and [`infer`],
//! the way every task route reaches the model: limits checked before any
//! work, then the queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use super::errors::{ApiError, ErrorKind};
use super::metrics::Metrics;
use super::options::ServeOptions;
use super::requests::{self, Body};
use super::worker::{Inputs, Job};
use super::{auth, tasks};
use crate::run::{Answered, Task, TaskOptions};
use crate::tokenize::{TextInput, TextTokenizer};

/// What every handler shares.
pub struct Shared {
    pub task: Task,
    /// A copy of the model's tokenizer: the HTTP side measures inputs
    /// with it while the worker's copy runs.
    pub tokenizer: Mutex<TextTokenizer>,
    pub queue: mpsc::Sender<Job>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub options: ServeOptions,
    /// Tokens an input may have (the model's limit, or lower if asked).
    pub max_input_length: usize,
    /// `/info`'s document.
    pub info: serde_json::Value,
}

/// The routes that answer, as metrics name them.
const ROUTES: [&str; 11] = [
    "/embed",
    "/v1/embeddings",
    "/predict",
    "/rerank",
    "/tokenize",
    "/token-classification",
    "/question-answering",
    "/fill-mask",
    "/health",
    "/info",
    "/metrics",
];

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/embed", post(tasks::embed))
        .route("/v1/embeddings", post(tasks::openai_embeddings))
        .route("/predict", post(tasks::predict))
        .route("/rerank", post(tasks::rerank))
        .route("/tokenize", post(tasks::tokenize))
        .route("/token-classification", post(tasks::token_classification))
        .route("/question-answering", post(tasks::question_answering))
        .route("/fill-mask", post(tasks::fill_mask))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .layer(DefaultBodyLimit::max(shared.options.max_body_bytes))
        .with_state(shared)
}

/// In front of every route: the API key (all but `/health`), and the
/// request counted with its route, status and latency.
async fn guard(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let route = ROUTES.iter().copied().find(|&r| r == path).unwrap_or("other");
    let started = Instant::now();
    let response = match &s.options.api_key {
        Some(key) if route != "/health" => match auth::check(request.headers(), key) {
            Ok(()) => next.run(request).await,
            Err(e) => e.into_response(),
        },
        _ => next.run(request).await,
    };
    s.metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

/// 200 once the model has answered its warm-up input, 503 before.
async fn health(State(s): State<Arc<Shared>>) -> Response {
    match s.ready.load(Ordering::SeqCst) {
        true => StatusCode::OK.into_response(),
        false => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Unhealthy,
            "the model has not answered its warm-up input yet",
        )
        .into_response(),
    }
}

async fn info(State(s): State<Arc<Shared>>) -> Response {
    super::json_response(StatusCode::OK, &s.info)
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let text = s.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!(
            "no route {} (routes: {})",
            request.uri().path(),
            ROUTES.join(", ")
        ),
    )
}

async fn not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::NotFound,
        format!("{} does not take {}", request.uri().path(), request.method()),
    )
}

/// The request body as a JSON object; a body over the limit was refused
/// before it was read whole.
pub fn body(s: &Shared, bytes: Result<Bytes, BytesRejection>) -> Result<Body, ApiError> {
    match bytes {
        Ok(bytes) => requests::object(&bytes),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Validation,
            format!(
                "the request body is larger than {} bytes",
                s.options.max_body_bytes
            ),
        )),
        Err(e) => Err(ApiError::field("body", e.body_text())),
    }
}

/// Refuses a route the model's task cannot answer, naming the task.
pub fn needs(s: &Shared, route: &str, tasks: &[Task]) -> Result<(), ApiError> {
    if tasks.contains(&s.task) {
        return Ok(());
    }
    let names: Vec<&str> = tasks.iter().map(|t| t.name()).collect();
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorKind::Validation,
        format!(
            "{route} answers {}; this model answers {} ({})",
            names.join(" or "),
            s.task.name(),
            routes_of(s.task)
        ),
    ))
}

/// Where a model of `task` is asked.
fn routes_of(task: Task) -> &'static str {
    match task {
        Task::SentenceSimilarity => "POST /embed, /v1/embeddings",
        Task::TextClassification | Task::ZeroShotClassification => "POST /predict, /rerank",
        Task::TokenClassification => "POST /token-classification",
        Task::QuestionAnswering => "POST /question-answering",
        Task::FillMask => "POST /fill-mask",
    }
}

/// What a task route asks the model.
pub struct Asked {
    pub inputs: Inputs,
    pub options: TaskOptions,
    /// Cut over-long inputs at the limit instead of refusing them.
    pub truncate: bool,
    /// The task reads a long input in windows (question-answering,
    /// token-classification's stride): no length limit applies.
    pub windows: bool,
    /// The field the inputs came in, for messages.
    pub field: &'static str,
}

/// A request being answered: counted in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Checks the limits, then has the worker answer; the answer and the
/// inputs' tokens.
pub async fn infer(s: &Shared, asked: Asked) -> Result<(Answered, usize), ApiError> {
    if asked.inputs.is_empty() {
        return Err(ApiError::empty(asked.field));
    }
    let most = s.options.max_client_batch_size;
    if asked.inputs.len() > most {
        return Err(ApiError::field(
            asked.field,
            format!(
                "{} inputs, more than the {most} a request may hold (--max-client-batch-size)",
                asked.inputs.len()
            ),
        ));
    }
    let before = s.metrics.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&s.metrics.in_flight);
    if before >= s.options.max_concurrent_requests {
        return Err(ApiError::overloaded(&format!(
            "{} requests are being answered, the most this server takes at once (--max-concurrent-requests)",
            s.options.max_concurrent_requests
        )));
    }
    let tokens = measure(s, &asked)?;
    let (reply, answer) = oneshot::channel();
    let job = Job {
        inputs: asked.inputs,
        options: asked.options,
        tokens,
        reply,
    };
    s.metrics.queued.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = s.queue.try_send(job) {
        s.metrics.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(match e {
            mpsc::error::TrySendError::Full(_) => ApiError::overloaded("the queue is full"),
            mpsc::error::TrySendError::Closed(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Unhealthy,
                "the model is not running",
            ),
        });
    }
    match answer.await {
        Ok(Ok(answered)) => Ok((answered, tokens)),
        Ok(Err(e)) => Err(ApiError::from_run(&e)),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Backend,
            "the inference worker stopped before answering",
        )),
    }
}

/// The inputs' tokens as the model will read them; an input over the
/// limit is refused (413) unless truncation is asked.
fn measure(s: &Shared, asked: &Asked) -> Result<usize, ApiError> {
    let limit = s.max_input_length;
    let truncate = asked.truncate || s.options.auto_truncate;
    let mut tokenizer = s.tokenizer.lock().unwrap_or_else(|p| p.into_inner());
    let mut total = 0;
    for (i, (text, pair)) in asked.inputs.iter().enumerate() {
        let input = match pair {
            Some(p) => TextInput::Pair(text, p),
            None => TextInput::Single(text),
        };
        let n = tokenizer
            .encode_whole(input, true)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorKind::Tokenizer,
                    format!("`{}[{i}]`: {e}", asked.field),
                )
            })?
            .len();
        if n > limit && !truncate && !asked.windows {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Validation,
                format!(
                    "`{}[{i}]` is {n} tokens, longer than the {limit} this server reads: send \
                     `\"truncate\": true` to cut it (or start the server with --auto-truncate)",
                    asked.field
                ),
            ));
        }
        total += if asked.windows { n } else { n.min(limit) };
    }
    Ok(total)
}
