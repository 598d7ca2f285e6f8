//! The library's error type: one variant per stage, each carrying the
//! stage's own typed error with its context.

use crate::builder::BuildError;
use crate::config::ConfigError;
use crate::cost::CostError;
use crate::ir::IrError;
use crate::onnx::OnnxError;
use crate::passes::PassError;
use crate::runtime::RuntimeError;
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
    #[error(
        "the optimized model's `{output}` moved by {max_abs:e} from the unoptimized one (tolerance {atol:e}); \
         nothing was written (--no-check writes it anyway)"
    )]
    CheckFailed { output: String, max_abs: f64, atol: f64 },
    #[error(
        "the reduced-precision model's `{output}` has cosine {cosine:.7} against the f32 model, \
         below --min-cosine {min_cosine}; nothing was written"
    )]
    AccuracyBelow {
        output: String,
        cosine: f64,
        min_cosine: f64,
    },
    #[error(
        "the checked model lacks the output `{output}` of the reference (it has: {}); \
         a pass dropped or renamed it",
        .found.join(", ")
    )]
    MissingOutput { output: String, found: Vec<String> },
    #[error("the check compared nothing: the reference model has no outputs")]
    NothingCompared,
    #[error(transparent)]
    Options(#[from] crate::pipeline::OptionError),
    #[error(
        "`{name}` is neither a preset, a config.json nor a model folder{}; presets: {}",
        .suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        crate::presets::PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    )]
    UnknownModel {
        name: String,
        suggestion: Option<&'static str>,
    },
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
    #[error(transparent)]
    Sentence(#[from] crate::sentence_transformers::SentenceError),
    #[error(transparent)]
    ExportFolder(#[from] crate::export_folder::ExportFolderError),
}
