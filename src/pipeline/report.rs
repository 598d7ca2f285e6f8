//! What the pipeline did, for the CLI to print, and what it made:
//! [`Compiled`], whose graph and bytes are kept by [`Artifact`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::builder::ModelSpec;
use crate::ir::Graph;
use crate::onnx::{ExportOptions, OnnxError, WrittenModel};
use crate::passes::PassRun;
use crate::quantize::AccuracyReport;
use crate::runtime::OutputComparison;

use super::artifact::Artifact;

/// How long each stage took.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub load: Duration,
    pub build: Duration,
    pub passes: Duration,
    pub check: Duration,
    pub precision: Duration,
    pub lowering: Duration,
}

/// Where the weights came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsReport {
    /// A checkpoint file, with its sha256.
    File { path: PathBuf, sha256: String },
    /// Seeded random init.
    Random { seed: u64 },
    /// Placeholder zeros: structure only.
    Placeholder,
    /// The graph's own (an ONNX source).
    Graph,
}

impl std::fmt::Display for WeightsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsReport::File { path, sha256 } => {
                write!(f, "{} (sha256 {})", path.display(), &sha256[..12])
            }
            WeightsReport::Random { seed } => write!(f, "RANDOM (seed {seed})"),
            WeightsReport::Placeholder => write!(f, "none (structure only)"),
            WeightsReport::Graph => write!(f, "the input model's"),
        }
    }
}

/// Everything the pipeline did, for the CLI to print.
#[derive(Debug, Clone)]
pub struct Report {
    pub weights: WeightsReport,
    /// The fp32 passes, in order.
    pub passes: Vec<PassRun>,
    /// The equivalence check, one entry per output; empty when not run.
    pub check: Vec<OutputComparison>,
    /// The reduced-precision rewrite's passes.
    pub precision: Vec<PassRun>,
    /// The accuracy report of the reduced-precision graph against f32.
    pub accuracy: Option<AccuracyReport>,
    /// For int8: the CPU and the int8 kernel tract picks on it, and a
    /// warning when int8 products are slower than f32 there.
    pub int8_kernel: Option<(String, Option<String>)>,
    /// For int8 and fp16: a note when the form written is slower than fp32
    /// in a runtime bertc targets ([`crate::quantize::kernel::int8_form_note`],
    /// [`crate::quantize::kernel::FP16_NOTE`]).
    pub form_note: Option<String>,
    /// Warnings about what the imported file itself computes (onnxruntime's
    /// 1-D mask index on left-padded rows).
    pub import_notes: Vec<String>,
    /// How an onnxruntime-quantized file was read and which precision it
    /// is written in (see `imported_precision`).
    pub import_precision: Option<String>,
    /// The lowering passes of the target.
    pub lowering: Vec<PassRun>,
    /// Graph size as the source gave it (nodes, of which constants).
    pub nodes_before: NodeCount,
    pub opset: i64,
    pub times: StageTimes,
}

/// Node counts, with and without constants (inputs are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCount {
    pub ops: usize,
    pub constants: usize,
}

impl NodeCount {
    pub fn of(g: &Graph) -> NodeCount {
        let histogram = g.op_histogram();
        NodeCount {
            ops: histogram.values().sum(),
            constants: g.constant_count(),
        }
    }
}

impl Report {
    /// Every pass run, in the order they ran.
    pub fn all_passes(&self) -> impl Iterator<Item = &PassRun> {
        self.passes.iter().chain(&self.precision).chain(&self.lowering)
    }
}

/// The result: the final graph (read-only: its bytes may be cached, or
/// being written already), what was built, and the report.
pub struct Compiled {
    pub(super) artifact: Artifact,
    /// The model built (for config sources).
    pub spec: Option<ModelSpec>,
    /// Checkpoint tensors of other heads (or the pooler) left unread.
    pub ignored: Vec<String>,
    pub report: Report,
}

impl Compiled {
    pub fn graph(&self) -> &Graph {
        self.artifact.graph()
    }

    /// The options the model is written with.
    pub fn export(&self) -> ExportOptions {
        self.artifact.export()
    }

    /// The final graph, for callers that go on changing it (its bytes,
    /// and any write under way, are dropped).
    pub fn into_graph(self) -> Graph {
        self.artifact.into_graph()
    }

    /// The ONNX bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, OnnxError> {
        self.artifact.to_bytes()
    }

    /// Serializes into `path` atomically; returns the file size.
    pub fn write(&self, path: &Path) -> Result<usize, OnnxError> {
        self.artifact.write(path)
    }

    /// Serializes into `path` atomically (with its external data file when
    /// there is one); says which files were written. The write the
    /// pipeline started to this path is finished instead.
    pub fn write_files(&mut self, path: &Path) -> Result<WrittenModel, OnnxError> {
        self.artifact.write_files(path)
    }
}
