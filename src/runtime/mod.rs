//! Running emitted models: in tract (load, bind shapes, run, compare), and
//! in onnxruntime or OpenVINO through one interface ([`RuntimeModel`]).
//! Every model runs on the threads of the caller's [`crate::Session`].

mod backend;
mod compare;
mod external;
mod fit;
mod host;
mod inputs;
mod locate;
mod onnxruntime;
mod openvino;
mod tract_session;
mod weights;

pub use crate::session::panic_message;
pub use backend::{BackendError, ModelSource, Runtime, RuntimeModel, RuntimeOptions};
pub use compare::{
    at_real_positions, compare, compare_outputs, cosine, worst_row_cosine, worst_token_cosine, CompareError,
    OutputComparison,
};
pub use fit::{check_inputs_fit, check_references_fit, table_rows, InputFitError, InputLimits};
pub use host::{read_safetensors, write_safetensors, HostData, HostTensor, NamedTensors};
pub use inputs::{inputs_for, inputs_for_seed, max_sequence, realistic_inputs, sequence_length};
pub use tract_session::{PlanMode, PlanShapes, TractSession};
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
    #[error(
        "{what}: the inputs and activations need about {needed_gb:.1} GB by the cost model, \
         more than this machine's {limit_gb:.1} GB of memory; use a smaller --batch or --seq"
    )]
    TooLarge {
        what: String,
        needed_gb: f64,
        limit_gb: f64,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
}
