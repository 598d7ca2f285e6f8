//! `bertc serve`: a loaded model behind an HTTP API in TEI's request and
//! response shapes (so TEI's and OpenAI's clients work unchanged), plus
//! routes for the tasks TEI lacks.
//!
//! One OS thread owns the model ([`worker`]); the HTTP side (axum on a
//! small tokio runtime, [`routes`], [`tasks`]) checks every limit before
//! any work, sends jobs through a bounded queue and awaits each answer,
//! so it never blocks on inference. Errors have TEI's shape
//! ([`errors`]); [`metrics`] are Prometheus text. The library installs no
//! signal handler: the caller passes the future that stops the server
//! ([`terminate_signal`] is SIGTERM/SIGINT, for a caller that owns the
//! process, as the CLI does). Stopping stops accepting, answers every
//! request already accepted, then returns.

mod auth;
mod errors;
mod metrics;
pub mod options;
mod requests;
mod routes;
mod tasks;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use errors::{ApiError, ErrorKind};
pub use options::{Gate, ServeOptions};

use crate::run::{LoadedModel, RunError};
use crate::session::Session;

/// A server that could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
    #[error("cannot start the HTTP runtime: {0}")]
    Runtime(std::io::Error),
    #[error("--max-input-length {given} is longer than the model reads ({model} tokens)")]
    MaxInputLength { given: usize, model: usize },
    #[error("--max-input-length must be at least 1")]
    ZeroInputLength,
    #[error("the model failed its warm-up input: {0}")]
    WarmUp(RunError),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
    #[error("the inference worker panicked: {0}")]
    WorkerPanicked(String),
}

/// Serves `model` until `stop` completes (or the model fails its warm-up
/// input), then answers what was accepted and returns. `on_bound` hears
/// the address listened on (the port chosen when 0 was asked) before the
/// first request is taken.
pub fn serve(
    session: &Session,
    mut model: LoadedModel,
    options: ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let max_input_length = match options.max_input_length {
        Some(0) => return Err(ServeError::ZeroInputLength),
        Some(n) if n > model.tokenizer.max_length => {
            return Err(ServeError::MaxInputLength {
                given: n,
                model: model.tokenizer.max_length,
            })
        }
        // The model then cuts what it reads at the server's limit.
        Some(n) => n,
        None => model.tokenizer.max_length,
    };
    model.tokenizer.max_length = max_input_length;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // The HTTP side parses, measures and writes: two threads keep it
        // off the model's way on a small machine.
        .worker_threads(2)
        .thread_name("bertc-http")
        .enable_io()
        .enable_time()
        .build()
        .map_err(ServeError::Runtime)?;
    let listener = std::net::TcpListener::bind(options.addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|error| ServeError::Bind {
            addr: options.addr,
            error,
        })?;
    let bound = listener.local_addr().map_err(|error| ServeError::Bind {
        addr: options.addr,
        error,
    })?;
    let metrics = Arc::new(metrics::Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (queue, jobs) = mpsc::channel(options.max_concurrent_requests.max(1));
    let shared = Arc::new(routes::Shared {
        task: model.task,
        tokenizer: Mutex::new(model.tokenizer.clone()),
        queue,
        metrics: metrics.clone(),
        ready: ready.clone(),
        info: info(session, &model, &options, max_input_length),
        max_input_length,
        options,
    });
    let (warmed, warm_up) = oneshot::channel();
    let context = worker::WorkerContext {
        metrics,
        ready,
        gate: shared.options.gate.clone(),
    };
    let worker = std::thread::Builder::new()
        .name("bertc-inference".into())
        .spawn(move || worker::work(model, jobs, context, warmed))
        .map_err(ServeError::Runtime)?;
    let app = routes::router(shared);
    on_bound(bound);
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let warm_up_failed = async {
            if let Ok(true) = warm_up.await {
                std::future::pending::<()>().await
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(first_of(stop, warm_up_failed))
            .await
    });
    // Every handler is done and the router with the queue's sender is
    // gone: the worker ends once it has answered what it took.
    let worker = worker
        .join()
        .map_err(|p| ServeError::WorkerPanicked(crate::session::panic_message(p.as_ref())));
    drop(runtime);
    served.map_err(ServeError::Serve)?;
    worker?.map_err(ServeError::WarmUp)
}

/// Completes when either completes.
async fn first_of(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| match (a.as_mut().poll(cx), b.as_mut().poll(cx)) {
        (Poll::Pending, Poll::Pending) => Poll::Pending,
        _ => Poll::Ready(()),
    })
    .await
}

/// Completes on SIGTERM or SIGINT: the stop of a server whose caller owns
/// the process (the handlers are installed when this is first polled,
/// inside the server's runtime). A signal that cannot be listened to is
/// reported on stderr and never completes.
pub async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            first_of(
                async {
                    term.recv().await;
                },
                async {
                    int.recv().await;
                },
            )
            .await
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("warning: cannot listen for SIGTERM/SIGINT: {e}");
            std::future::pending().await
        }
    }
}

/// `/info`: the model, its task and precision, the runtime, the limits
/// and the CPU.
fn info(
    session: &Session,
    model: &LoadedModel,
    options: &ServeOptions,
    max_input_length: usize,
) -> serde_json::Value {
    let form = model.file.as_ref().and_then(|f| f.form.as_ref());
    serde_json::json!({
        "model_id": options.model_name,
        "model_file": model.file.as_ref().map(|f| f.path.display().to_string()),
        "task": model.task.name(),
        "precision": form.map(|f| f.precision),
        "compiled_at_start": options.compiled_at_start,
        "runtime": options.runtime.name(),
        "threads": session.threads(),
        "max_input_length": max_input_length,
        "max_batch_tokens": model.limits.max_tokens,
        "max_batch_rows": model.limits.max_rows,
        "max_client_batch_size": options.max_client_batch_size,
        "max_concurrent_requests": options.max_concurrent_requests,
        "max_body_bytes": options.max_body_bytes,
        "auto_truncate": options.auto_truncate,
        "auth": options.api_key.is_some(),
        "cpu": crate::quantize::kernel::cpu_model(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {e}"),
        )
            .into_response(),
    }
}
