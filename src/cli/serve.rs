//! `bertc serve`: parses the flags, loads the model as `bertc run` does,
//! and hands it to the library's server ([`bertc::serve`]), stopped by
//! SIGTERM or SIGINT.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bertc::run::batch::{DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_TOKENS};
use bertc::run::{load, RunOptions};
use bertc::serve::options::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CLIENT_BATCH_SIZE, DEFAULT_MAX_CONCURRENT_REQUESTS,
};
use bertc::serve::ServeOptions;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// An export folder or an .onnx file (with --tokenizer), loaded as compiled; a model folder is
    /// compiled in memory at start (`/info` says so); a hub id org/name as `bertc run` takes it.
    model: PathBuf,
    /// The revision of a hub id: a branch, a tag or a commit hash [default: main].
    #[arg(long)]
    revision: Option<String>,
    /// tokenizer.json, spm.model, vocab.txt or their folder (required for an .onnx file).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The address to listen on (127.0.0.1: this machine only; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The port to listen on; 0 takes a free one. The address is printed on stderr.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where the model runs: tract (built in), onnxruntime or openvino.
    #[arg(long, default_value = "tract", value_parser = super::parse_runtime)]
    runtime: bertc::runtime::Runtime,
    /// Threads for the runtime (default: all cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// An export folder with several forms: the precision of the form to load.
    #[arg(long, value_enum)]
    precision: Option<super::precision::PrecisionArg>,
    /// The model file of the export folder to load instead of the one chosen for the runtime.
    #[arg(long, value_name = "NAME", conflicts_with = "precision")]
    model_file: Option<String>,
    /// Padded tokens per batch: queued inputs are sorted by length and cut into batches under
    /// this budget.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_TOKENS, value_parser = super::run::at_least_one)]
    max_batch_tokens: usize,
    /// Rows per batch at most.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_ROWS, value_parser = super::run::at_least_one)]
    max_batch_rows: usize,
    /// Inputs one request may hold (more: 422).
    #[arg(long, default_value_t = DEFAULT_MAX_CLIENT_BATCH_SIZE, value_parser = super::run::at_least_one)]
    max_client_batch_size: usize,
    /// Requests answered or waiting at once (more: 429 with Retry-After).
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS, value_parser = super::run::at_least_one)]
    max_concurrent_requests: usize,
    /// Tokens an input may have, special tokens included [default: the model's limit]; longer is
    /// a 413 unless the request asks `truncate` (or --auto-truncate).
    #[arg(long, value_name = "N")]
    max_input_length: Option<usize>,
    /// Cut inputs longer than the limit instead of refusing them.
    #[arg(long)]
    auto_truncate: bool,
    /// Request bodies larger than this many bytes are refused (413) before they are read.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES, value_parser = super::run::at_least_one)]
    payload_limit: usize,
    /// Every route but /health needs `Authorization: Bearer KEY` (401 otherwise).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
}

pub fn run(args: ServeArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let opts = RunOptions {
        // Requests arrive in ever new shapes: one tract plan for all.
        one_plan: true,
        ..super::run::run_options(
            &args.tokenizer,
            args.runtime,
            (args.max_batch_tokens, args.max_batch_rows),
            &args.model_file,
            args.precision,
        )
    };
    let located = bertc::locate::locate_path(&args.model, args.revision.as_deref())?;
    let model =
        load(session, &located, &opts).with_context(|| format!("cannot serve {}", args.model.display()))?;
    if let Some(note) = model.file.as_ref().and_then(|f| f.note(args.runtime)) {
        eprintln!("{note}");
    }
    let mut options = ServeOptions::new(
        SocketAddr::new(args.host, args.port),
        args.model.display().to_string(),
    );
    options.max_client_batch_size = args.max_client_batch_size;
    options.max_concurrent_requests = args.max_concurrent_requests;
    options.max_input_length = args.max_input_length;
    options.auto_truncate = args.auto_truncate;
    options.api_key = args.api_key;
    options.max_body_bytes = args.payload_limit;
    options.runtime = args.runtime;
    options.compiled_at_start = located.is_dir() && model.file.is_none();
    let task = model.task.name();
    bertc::serve::serve(
        session,
        model,
        options,
        // On stderr, the line tests and scripts read the port from.
        |addr| eprintln!("bertc serve: {task} on http://{addr}"),
        bertc::serve::terminate_signal(),
    )?;
    eprintln!("bertc serve: stopped");
    Ok(ExitCode::SUCCESS)
}
