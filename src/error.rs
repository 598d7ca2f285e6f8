//! The library's error type: one variant per stage, each carrying the
//! stage's own typed error with its context.
//!
//! Every type imported here is defined in a module that does not use this
//! one (the pipeline's option and check stages return their own errors),
//! so the error type sits above the stages without an import cycle.

use crate::builder::BuildError;
use crate::config::ConfigError;
use crate::cost::CostError;
use crate::ir::IrError;
use crate::onnx::OnnxError;
use crate::passes::PassError;
use crate::pipeline::check::CheckError;
use crate::pipeline::options::OptionError;
use crate::runtime::{CompareError, RuntimeError};
use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Architecture(#[from] crate::builder::UnknownArchitecture),
    #[error("building the graph: {0}")]
    Build(#[from] BuildError),
    #[error("invalid graph: {0}")]
    Ir(#[from] IrError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Cost(#[from] CostError),
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Options(#[from] OptionError),
    #[error(
        "`{name}` is neither a preset, a config.json nor a model folder, nor a hub id org/name{}; presets: {}",
        .suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        crate::presets::PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    )]
    UnknownModel {
        name: String,
        suggestion: Option<&'static str>,
    },
    /// Boxed: its variants carry the id, revision, endpoint and cache
    /// folder, and would double the size of every `Result<_, Error>`.
    #[error(transparent)]
    Hub(Box<crate::hub::HubError>),
    #[error("--revision {revision} names a revision of a hub id, and `{model}` is a local path or a preset")]
    RevisionWithoutHubId { model: String, revision: String },
    #[error("`{model}` names its revision after `@`, and --revision {revision} names another: give one")]
    TwoRevisions { model: String, revision: String },
    #[error("{}: not a model folder: it has no config.json", .0.display())]
    NotAModelFolder(std::path::PathBuf),
    #[error("{}: expected {expected}, found {found}", .path.display())]
    WrongKind {
        path: std::path::PathBuf,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "{}: no weights beside the config (looked for model.safetensors, model.safetensors.index.json, \
         pytorch_model.bin, pytorch_model.bin.index.json); give --weights FILE, or --random-weights for a \
         seeded random init",
        .0.display()
    )]
    NoWeights(std::path::PathBuf),
    #[error("--seed draws random weights, but {} are loaded: drop --seed, or add --random-weights", .0.display())]
    SeedWithWeights(std::path::PathBuf),
    #[error(transparent)]
    Sentence(#[from] crate::sentence_transformers::SentenceError),
}

impl From<crate::hub::HubError> for Error {
    fn from(e: crate::hub::HubError) -> Self {
        Error::Hub(Box::new(e))
    }
}
