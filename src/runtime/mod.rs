//! Running emitted models in tract: load, bind shapes, run, compare.

mod compare;
mod external;
mod fit;
mod host;
mod inputs;
mod session;
mod weights;

pub use compare::{compare, cosine, worst_row_cosine, worst_token_cosine, OutputComparison};
pub use fit::{check_inputs_fit, check_references_fit, table_rows, InputFitError};
pub use host::{read_safetensors, write_safetensors, HostData, HostTensor, NamedTensors};
pub use inputs::realistic_inputs;
pub use session::{panic_message, PlanMode, TractSession};
pub use weights::SharedWeights;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Io(String),
    #[error("tract could not {stage} the model: {message}")]
    Tract { stage: &'static str, message: String },
    #[error("tract panicked while it tried to {stage} the model: {message}")]
    Panic { stage: &'static str, message: String },
    #[error("model input `{0}` is missing from the provided tensors")]
    MissingInput(String),
    #[error("model input `{name}` expects {expected}, got {got}")]
    InputType {
        name: String,
        expected: String,
        got: String,
    },
    #[error(transparent)]
    InputFit(#[from] InputFitError),
}

/// Sets how many threads tract's matrix products use (1 = single-threaded).
/// Applies process-wide; call before running models.
pub fn set_threads(n: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    let executor = match n {
        0 | 1 => Executor::SingleThread,
        n => Executor::multithread(n),
    };
    set_default_executor(executor);
}

/// The number of cores, the default thread count.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
