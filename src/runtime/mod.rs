//! Running emitted models: in tract (load, bind shapes, run, compare), and
//! in onnxruntime or OpenVINO through one interface ([`RuntimeModel`]).

mod backend;
mod compare;
mod external;
mod fit;
mod host;
mod inputs;
mod locate;
mod onnxruntime;
mod openvino;
mod session;
mod weights;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use backend::{BackendError, ModelSource, Runtime, RuntimeModel, RuntimeOptions};
pub use compare::{compare, cosine, worst_row_cosine, worst_token_cosine, OutputComparison};
pub use fit::{check_inputs_fit, check_references_fit, table_rows, InputFitError};
pub use host::{read_safetensors, write_safetensors, HostData, HostTensor, NamedTensors};
pub use inputs::realistic_inputs;
pub use session::{panic_message, PlanMode, TractSession};
pub use weights::{adopt_weights, SharedWeights};

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
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Sets how many threads tract's matrix products use (1 = single-threaded).
/// Applies process-wide; call before running models.
pub fn set_threads(n: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    let mut pool = TRACT_POOL.lock().unwrap_or_else(|e| e.into_inner());
    let executor = match n {
        0 | 1 => {
            *pool = None;
            Executor::SingleThread
        }
        n => match rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("tract-{i}"))
            .build()
        {
            Ok(p) => {
                let p = Arc::new(p);
                *pool = Some(p.clone());
                Executor::MultiThread(p)
            }
            // No threads to be had: tract's own fallback, one thread.
            Err(_) => {
                *pool = None;
                Executor::SingleThread
            }
        },
    };
    set_default_executor(executor);
}

/// The pool tract's matrix products run on, once [`set_threads`] made one.
static TRACT_POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);

/// Runs `f` — a whole model run — on one of tract's own pool threads.
///
/// Why: run from a thread outside the pool, every matrix product hands its
/// work to the pool and puts the caller to sleep until it is done, and every
/// element-wise op between two products runs while the pool's threads go
/// back to sleep: one wake-up on each side per product. An int8 BERT-base
/// has 72 short products, so those hand-offs were 10 % of its run. Inside
/// the pool, the calling thread is a worker that takes part in each product
/// and only the other workers are woken. Measured with `bertc bench
/// f32.onnx --compare int8.onnx` (BERT-base, B=1, S=128, 2 threads, six
/// alternated processes of 40 runs, AMD EPYC Zen 4): p50 fp32 168–173 →
/// 162–169 ms, int8 83.6–86.6 → 74.4–77.9 ms.
///
/// One run at a time: a worker waiting inside a product steals whatever
/// job is queued, and a second whole run stolen that way would evaluate its
/// products inside the first's — tract keeps each thread's product scratch
/// borrowed across the product (`OptMatMul::eval`), so that nesting panics.
/// A run that finds the pool taken runs on its own thread, as before, and
/// only its products' chunks reach the pool (they borrow nothing across a
/// wait).
pub fn on_tract_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = TRACT_POOL.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(pool) = pool else { return f() };
    if POOL_RUN
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return f();
    }
    /// Frees the pool for the next run, also when the run panics.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            POOL_RUN.store(false, Ordering::Release);
        }
    }
    let _release = Release;
    pool.install(f)
}

/// Whether a run is on tract's pool now (see [`on_tract_pool`]).
static POOL_RUN: AtomicBool = AtomicBool::new(false);

/// The number of cores, the default thread count.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
