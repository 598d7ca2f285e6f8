//! What a server is told: where it listens and the limits it keeps, with
//! TEI's defaults where TEI has the same limit.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};

use crate::runtime::Runtime;

/// TEI's default `--max-client-batch-size`: inputs per request.
pub const DEFAULT_MAX_CLIENT_BATCH_SIZE: usize = 32;
/// TEI's default `--max-concurrent-requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;
/// TEI's default payload limit (`--payload-limit`): 2 MB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2_000_000;
/// Seconds a client told 429 is asked to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// How a server runs (see `bertc serve --help` for each).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen; port 0 takes a free one (reported to `on_bound`).
    pub addr: SocketAddr,
    /// Inputs one request may hold.
    pub max_client_batch_size: usize,
    /// Requests answered or waiting at once; past it, 429.
    pub max_concurrent_requests: usize,
    /// Tokens an input may have, special tokens included (at most the
    /// model's limit): longer is a 413 unless truncation is asked.
    pub max_input_length: Option<usize>,
    /// Cut over-long inputs at the limit instead of refusing them.
    pub auto_truncate: bool,
    /// Every route but `/health` needs `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Request bodies larger than this are refused before they are read.
    pub max_body_bytes: usize,
    /// The name `/info` and OpenAI's `model` field give.
    pub model_name: String,
    /// The runtime the model was loaded in, as `/info` names it.
    pub runtime: Runtime,
    /// Whether the model was compiled at start (a model folder), not
    /// loaded compiled: `/info` says so.
    pub compiled_at_start: bool,
    /// Holds the inference worker before each run while closed: tests make
    /// the worker busy on purpose, to see the limits at work.
    #[doc(hidden)]
    pub gate: Option<Gate>,
}

impl ServeOptions {
    /// TEI's defaults, listening at `addr`.
    pub fn new(addr: SocketAddr, model_name: impl Into<String>) -> ServeOptions {
        ServeOptions {
            addr,
            max_client_batch_size: DEFAULT_MAX_CLIENT_BATCH_SIZE,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_input_length: None,
            auto_truncate: false,
            api_key: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            model_name: model_name.into(),
            runtime: Runtime::default(),
            compiled_at_start: false,
            gate: None,
        }
    }
}

/// A door the worker passes before each run: open, or closed until
/// opened (see [`ServeOptions::gate`]).
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// A closed gate.
    pub fn closed() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        changed.notify_all();
    }

    /// Waits until the gate is open.
    pub fn pass(&self) {
        let (open, changed) = &*self.0;
        let mut is_open = open.lock().unwrap_or_else(|p| p.into_inner());
        while !*is_open {
            is_open = changed.wait(is_open).unwrap_or_else(|p| p.into_inner());
        }
    }
}
