//! The whole compile path as one library call, shared by every command:
//! source → build → fp32 passes → equivalence check → reduced precision →
//! accuracy gate → target lowering → opset. The CLI parses arguments into
//! [`PipelineOptions`] and prints the [`Report`]; it runs no stage itself.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::atomic_write::EarlyWrite;
use crate::builder::ModelSpec;
use crate::check::{
    alongside, check_inputs, check_loaded, require_within, CandidateForm, Loaded, CHECK_ATOL,
};
use crate::compile::{build, Built, CompileOptions};
use crate::config::BertConfig;
use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{
    export_bytes, resolve_opset, write_model, write_model_files, ExportOptions, OnnxError, Sink, WrittenModel,
};
use crate::passes::{
    pipeline as level_pipeline, target_passes, Level, PassManager, PassRun, Target, WeightGranularity,
};
use crate::quantize::{
    self, calibration_batches, compare_runs, run_all, validation_inputs, AccuracyReport, CalibrationMethod,
    Precision, PrecisionOptions,
};
use crate::runtime::{NamedTensors, OutputComparison, PlanMode};
use crate::session::Session;

/// Where the graph comes from.
// One value per compile, moved once into `run`: boxing the config would
// only add an allocation and noise at every call site.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A config (preset or config.json) built with these options.
    Config(BertConfig, CompileOptions),
    /// An existing graph (an imported ONNX file), taken as it is.
    Graph(Graph),
}

/// Which fp32 passes run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassSelection {
    /// A level's pipeline for the target, then the target's lowering.
    Level(Level),
    /// Exactly these passes (no target lowering).
    Explicit(Vec<String>),
}

/// Reduced precision: what to produce and the gate it must pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ReducedPrecision {
    pub kind: ReducedKind,
    pub weights: WeightGranularity,
    /// Linear layers whose name contains one of these stay f32.
    pub skip: Vec<String>,
    /// Store the word-embedding table as int8 (int8 kinds only).
    pub embeddings: bool,
    /// 8, or 7 for the u8 × s8 forms run where the CPU has no VNNI
    /// ([`crate::passes::weight_bits_for_cpu`]); the tract form takes 8 only.
    pub weight_bits: u8,
    /// Worst cosine of any output against the f32 graph that may be written.
    pub min_cosine: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReducedKind {
    /// Activations quantized at run time. `calibrate` (every model input
    /// as [N, S]) is read only by the onnxruntime form, which chooses its
    /// per-token scales and smoothing from calibration (generated realistic
    /// inputs without it); other targets refuse it.
    Int8Dynamic {
        calibrate: Option<PathBuf>,
    },
    /// Calibrated on `calibrate` (every model input as [N, S]) or, without
    /// it, on generated realistic inputs.
    Int8Static {
        calibrate: Option<PathBuf>,
        method: CalibrationMethod,
    },
    Fp16,
}

impl ReducedPrecision {
    /// int8 or fp16 with the defaults `compile` uses.
    pub fn new(kind: ReducedKind) -> ReducedPrecision {
        ReducedPrecision {
            kind,
            weights: WeightGranularity::PerChannel,
            skip: vec![],
            embeddings: true,
            weight_bits: 8,
            min_cosine: quantize::DEFAULT_MIN_COSINE,
        }
    }

    /// The name metadata and reports use: `int8-dynamic`, `int8-static`, `fp16`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ReducedKind::Int8Dynamic { .. } => "int8-dynamic",
            ReducedKind::Int8Static { .. } => "int8-static",
            ReducedKind::Fp16 => "fp16",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    pub passes: PassSelection,
    pub target: Target,
    /// Run the equivalence check and the accuracy gate.
    pub check: bool,
    pub precision: Option<ReducedPrecision>,
    /// The opset to emit; `None` for the lowest that covers the ops used.
    pub opset: Option<i64>,
    /// Write every intermediate's value_info ([`ExportOptions::value_info`]).
    pub value_info: bool,
    /// Write initializers to `OUT.onnx_data` beside the model
    /// ([`ExportOptions::external_data`]; automatic above protobuf's 2 GB).
    pub external_data: bool,
    /// Where the model will be written, when the caller knows: the bytes
    /// the check loads are then written to a temporary file beside it while
    /// the check runs, and [`Compiled::write_files`] to this path renames
    /// that file into place (a failed check removes it).
    pub output: Option<std::path::PathBuf>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            passes: PassSelection::Level(Level::O2),
            target: Target::Portable,
            check: true,
            precision: None,
            opset: None,
            value_info: false,
            external_data: false,
            output: None,
        }
    }
}

/// An option combination that cannot mean what it says.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionError {
    #[error("--min-cosine must be within 0 and 1, got {0}")]
    MinCosine(f64),
    #[error("--percentile must be within (0, 100], got {0}")]
    Percentile(f64),
    #[error("--quantize-skip: an empty pattern matches every layer and would quantize nothing; name a layer (e.g. pooler)")]
    EmptySkipPattern,
    #[error("--target openvino takes int8 as calibrated QuantizeLinear/DequantizeLinear pairs: use --quantize static")]
    OpenvinoNeedsStatic,
    #[error(
        "--calibrate with --quantize dynamic needs --target onnxruntime (its form picks per-token scales \
         and smoothing from calibration); the {0} form calibrates nothing — or use --quantize static"
    )]
    CalibrateNeedsOnnxruntime(&'static str),
    #[error("--weight-bits must be 7 or 8, got {0}")]
    WeightBits(u8),
    #[error(
        "--weight-bits 7 is for the u8 x s8 int8 forms of --target onnxruntime and --target openvino \
         --quantize static, not {0}"
    )]
    WeightBitsNeedUnsignedForm(String),
    #[error(
        "--target {target} lowers only after the -O2 pipeline; with {given} nothing would be lowered \
         (use -O2 without --passes, or --target portable)"
    )]
    TargetNeedsO2 { target: &'static str, given: String },
}

impl PipelineOptions {
    /// Refuses meaningless combinations before any work is done.
    pub fn validate(&self) -> Result<(), OptionError> {
        if let Some(p) = &self.precision {
            if !(0.0..=1.0).contains(&p.min_cosine) {
                return Err(OptionError::MinCosine(p.min_cosine));
            }
            if let ReducedKind::Int8Static {
                method: CalibrationMethod::Percentile(q),
                ..
            } = p.kind
            {
                if !(q > 0.0 && q <= 100.0) {
                    return Err(OptionError::Percentile(q));
                }
            }
            if p.skip.iter().any(|s| s.trim().is_empty()) {
                return Err(OptionError::EmptySkipPattern);
            }
            if !(7..=8).contains(&p.weight_bits) {
                return Err(OptionError::WeightBits(p.weight_bits));
            }
            let unsigned_form = match self.target {
                _ if p.kind == ReducedKind::Fp16 => false,
                Target::Onnxruntime => true,
                Target::Openvino => matches!(p.kind, ReducedKind::Int8Static { .. }),
                Target::Portable | Target::Tract => false,
            };
            if p.weight_bits == 7 && !unsigned_form {
                let form = match p.kind {
                    ReducedKind::Fp16 => "fp16 (no int8 weights)".to_string(),
                    _ => format!(
                        "the {} form (i8 x i8, which does not saturate)",
                        self.target.name()
                    ),
                };
                return Err(OptionError::WeightBitsNeedUnsignedForm(form));
            }
        }
        if self.target == Target::Openvino
            && matches!(
                self.precision.as_ref().map(|p| &p.kind),
                Some(ReducedKind::Int8Dynamic { .. })
            )
        {
            return Err(OptionError::OpenvinoNeedsStatic);
        }
        if self.target != Target::Onnxruntime
            && matches!(
                self.precision.as_ref().map(|p| &p.kind),
                Some(ReducedKind::Int8Dynamic { calibrate: Some(_) })
            )
        {
            return Err(OptionError::CalibrateNeedsOnnxruntime(self.target.name()));
        }
        if self.target == Target::Onnxruntime {
            let given = match &self.passes {
                PassSelection::Level(Level::O2) => None,
                PassSelection::Level(l) => Some(format!("-O{}", l.number())),
                PassSelection::Explicit(_) => Some("--passes".to_string()),
            };
            if let Some(given) = given {
                return Err(OptionError::TargetNeedsO2 {
                    target: "onnxruntime",
                    given,
                });
            }
        }
        Ok(())
    }

    /// The fp32 passes, checked against the graph before them.
    pub fn pass_manager(&self) -> Result<PassManager, Error> {
        Ok(match &self.passes {
            PassSelection::Level(level) => PassManager::from_names(level_pipeline(*level, self.target))?,
            PassSelection::Explicit(names) => PassManager::from_names(names.iter().map(String::as_str))?,
        })
    }

    /// The target's lowering to runtime-specific ops, after the checks
    /// (tract cannot run onnxruntime's contrib ops; the lowering is
    /// structural and tested against onnxruntime itself).
    pub fn lowering(&self) -> Result<PassManager, Error> {
        Ok(match &self.passes {
            PassSelection::Level(level) => PassManager::from_names(target_passes(self.target, *level))?,
            PassSelection::Explicit(_) => PassManager::new(),
        })
    }
}

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
    /// in a runtime bertc targets ([`quantize::kernel::int8_form_note`],
    /// [`quantize::kernel::FP16_NOTE`]).
    pub form_note: Option<String>,
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

/// The result: the final graph, what was built, and the report.
pub struct Compiled {
    pub graph: Graph,
    /// The model built (for config sources).
    pub spec: Option<ModelSpec>,
    /// Checkpoint tensors of other heads (or the pooler) left unread.
    pub ignored: Vec<String>,
    pub export: ExportOptions,
    /// `graph` serialized with `export`, when a check loaded exactly these
    /// bytes and nothing changed the graph since: written as they are.
    bytes: Option<bytes::Bytes>,
    /// Those bytes being written to `PipelineOptions::output` already.
    early: Option<EarlyWrite>,
    pub report: Report,
}

impl Compiled {
    /// The ONNX bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        match &self.bytes {
            Some(b) => Ok(b.to_vec()),
            None => Ok(export_bytes(&self.graph, self.export)?),
        }
    }

    /// Serializes into `path` atomically; returns the file size.
    pub fn write(&self, path: &std::path::Path) -> Result<usize, Error> {
        match &self.bytes {
            Some(b) => {
                crate::atomic_write::write_atomic(path, b).map_err(|error| OnnxError::Io {
                    path: path.display().to_string(),
                    error,
                })?;
                Ok(b.len())
            }
            None => Ok(write_model(&self.graph, self.export, path)?),
        }
    }

    /// Serializes into `path` atomically (with its external data file when
    /// there is one); says which files were written. The write the
    /// pipeline started to this path is finished instead.
    pub fn write_files(&mut self, path: &std::path::Path) -> Result<WrittenModel, Error> {
        if let Some(early) = self.early.take_if(|e| e.path() == path) {
            let model_bytes = early.finish().map_err(|error| OnnxError::Io {
                path: path.display().to_string(),
                error,
            })?;
            return Ok(WrittenModel {
                model_bytes,
                external_data: None,
            });
        }
        match &self.bytes {
            Some(_) => Ok(WrittenModel {
                model_bytes: self.write(path)?,
                external_data: None,
            }),
            None => Ok(write_model_files(&self.graph, self.export, path)?),
        }
    }
}

/// [`run`] on a config: the library's `compile`.
pub fn compile(
    session: &Session,
    config: &BertConfig,
    compile: CompileOptions,
    opts: &PipelineOptions,
) -> Result<Compiled, Error> {
    run(session, Source::Config(config.clone(), compile), opts)
}

/// The options of a level's pipeline, checked, portable target.
pub fn at_level(level: Level) -> PipelineOptions {
    PipelineOptions {
        passes: PassSelection::Level(level),
        ..Default::default()
    }
}

/// The options of an explicit pass list, checked.
pub fn with_passes(names: &[&str]) -> PipelineOptions {
    PipelineOptions {
        passes: PassSelection::Explicit(names.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// Runs every stage on `source`; tract runs on `session`'s threads.
pub fn run(session: &Session, source: Source, opts: &PipelineOptions) -> Result<Compiled, Error> {
    opts.validate()?;
    let passes = opts.pass_manager()?;
    let lowering = opts.lowering()?;
    let mut times = StageTimes::default();
    // Hashed after the build, so that a bad checkpoint gets the loader's
    // own message (the build has validated it by then).
    let weights_file = match &source {
        Source::Config(_, c) => c.weights.clone(),
        Source::Graph(_) => None,
    };
    let weights = match &source {
        Source::Config(_, c) if c.weights.is_none() && c.shapes_only => WeightsReport::Placeholder,
        Source::Config(_, c) => WeightsReport::Random { seed: c.seed },
        Source::Graph(_) => WeightsReport::Graph,
    };
    let (mut graph, spec, ignored) = match source {
        Source::Config(config, compile) => {
            let Built {
                graph,
                spec,
                ignored,
                load_time,
                build_time,
            } = build(&config, &compile)?;
            times.load = load_time;
            times.build = build_time;
            (graph, Some(spec), ignored)
        }
        Source::Graph(g) => (g, None, vec![]),
    };
    let weights = match weights_file {
        Some(path) => WeightsReport::File {
            sha256: crate::source::sha256_file(&path).map_err(|error| crate::weights::WeightsError::Io {
                path: path.display().to_string(),
                error,
            })?,
            path,
        },
        None => weights,
    };
    let nodes_before = NodeCount::of(&graph);

    let start = Instant::now();
    let mut reference = graph.clone();
    let pass_runs = passes.run(&mut graph)?;
    times.passes = start.elapsed();
    // An explicit opset too low for a fused op fails here, before the checks.
    resolve_opset(&graph, opts.opset)?;

    // The bytes the check loads are the bytes written, unless a later stage
    // changes the graph.
    let export = ExportOptions {
        opset: opts.opset,
        value_info: opts.value_info,
        external_data: opts.external_data,
    };
    // tract loads the checked model from bytes, every initializer inline;
    // a model written with external data is checked in that form.
    let inline = ExportOptions {
        external_data: false,
        ..export
    };
    let start = Instant::now();
    // Only a graph the passes changed is checked.
    let checked = opts.check && !pass_runs.is_empty();
    // tract will load these graphs (the check, the precision stage): their
    // weights move into tract's storage now, so each is held once.
    if checked || opts.precision.is_some() {
        crate::runtime::adopt_weights(&mut [&mut reference, &mut graph])?;
    }
    let mut check = vec![];
    let mut loaded = None;
    let mut early = None;
    if checked {
        let inputs = check_inputs(&reference);
        // The candidate is serialized only when those bytes are written:
        // into the output's temporary file when the caller gave the path.
        let written = opts.precision.is_none() && lowering.is_empty();
        // Beyond protobuf's limit the model is written with external data
        // whatever was asked: encoding it inline here would be 2 GB for
        // nothing (and more than tract's decoder may take).
        let form = match (
            written,
            written && crate::onnx::written_with_external_data(&graph, export)?,
        ) {
            (false, _) => CandidateForm::Unwritten,
            (true, true) => CandidateForm::WrittenLater,
            (true, false) => {
                CandidateForm::Serialized(opts.output.as_deref().map_or(Sink::Memory, Sink::File))
            }
        };
        let (comparisons, candidate, writing) =
            check_loaded(session, &reference, &graph, inline, &inputs, form)?;
        require_within(&comparisons, CHECK_ATOL)?;
        check = comparisons;
        loaded = Some(candidate);
        early = writing;
    }
    times.check = start.elapsed();

    let start = Instant::now();
    let (precision, accuracy) = match &opts.precision {
        None => (vec![], None),
        Some(p) => {
            let output = opts
                .output
                .as_deref()
                .filter(|_| lowering.is_empty() && !export.external_data);
            let (runs, report, candidate, writing) =
                reduce(session, &mut graph, p, opts.target, loaded.take(), inline, output)?;
            if opts.check {
                report.require(p.min_cosine)?;
            }
            loaded = Some(candidate);
            early = writing;
            (runs, Some(report))
        }
    };
    times.precision = start.elapsed();
    let int8_kernel = match opts.precision.as_ref().map(|p| &p.kind) {
        Some(ReducedKind::Int8Dynamic { .. } | ReducedKind::Int8Static { .. }) => {
            Some(quantize::kernel::notice())
        }
        _ => None,
    };
    // x86 without VNNI is where weight_bits_for_host asks for 7 bits.
    let saturates = crate::passes::weight_bits_for_host() == crate::passes::WeightBits::Seven;
    let int8_note = |p: &ReducedPrecision, static_quant| {
        quantize::kernel::int8_form_note(opts.target, static_quant, p.weight_bits, saturates)
    };
    let form_note = opts.precision.as_ref().and_then(|p| match p.kind {
        ReducedKind::Int8Dynamic { .. } => int8_note(p, false),
        ReducedKind::Int8Static { .. } => int8_note(p, true),
        ReducedKind::Fp16 => Some(quantize::kernel::FP16_NOTE.to_string()),
    });

    let start = Instant::now();
    if !lowering.is_empty() {
        loaded = None;
    }
    let lowering = lowering.run(&mut graph)?;
    times.lowering = start.elapsed();
    let opset = resolve_opset(&graph, opts.opset)?;
    Ok(Compiled {
        graph,
        spec,
        ignored,
        export,
        bytes: loaded
            .and_then(|l| l.bytes)
            .filter(|b| crate::onnx::single_file(b.len(), export)),
        early,
        report: Report {
            weights,
            passes: pass_runs,
            check,
            precision,
            accuracy,
            int8_kernel,
            form_note,
            lowering,
            nodes_before,
            opset,
            times,
        },
    })
}

/// Rewrites `g` to reduced precision and measures it against the f32
/// graph on the validation inputs (always: the report is printed even
/// when the gate is off). `fp32` is the f32 graph already loaded by the
/// check, if it ran; the reduced graph is returned loaded from the bytes
/// `export` writes.
fn reduce(
    session: &Session,
    g: &mut Graph,
    p: &ReducedPrecision,
    target: Target,
    fp32: Option<Loaded>,
    export: ExportOptions,
    output: Option<&std::path::Path>,
) -> Result<(Vec<PassRun>, AccuracyReport, Loaded, Option<EarlyWrite>), Error> {
    let precision = match &p.kind {
        ReducedKind::Int8Dynamic { calibrate } => Precision::Int8Dynamic {
            batches: match calibrate {
                Some(path) => Some(calibration_batches(g, Some(path))?),
                None => None,
            },
        },
        ReducedKind::Int8Static { calibrate, method } => Precision::Int8Static {
            batches: calibration_batches(g, calibrate.as_deref())?,
            method: *method,
        },
        ReducedKind::Fp16 => Precision::Fp16,
    };
    let opts = PrecisionOptions {
        precision,
        weights: p.weights,
        skip: p.skip.clone(),
        embeddings: p.embeddings,
        target,
        weight_bits: p.weight_bits,
        min_cosine: p.min_cosine,
    };
    let reference = g.clone();
    let runs = quantize::apply(session, g, &opts)?;
    g.metadata.insert("bertc.precision".into(), p.name().into());
    let inputs = validation_inputs(&reference);
    // The f32 side only supplies the expected numbers, so it runs
    // decluttered: no plan with every weight packed for the gate's shape
    // (and the check's plan, with its packed weights, is dropped here).
    let mut fp32 = match fp32 {
        Some(l) => l.session,
        None => crate::check::load_unwritten(session, &reference, &mut crate::runtime::SharedWeights::new())?,
    }
    .with_plan_mode(PlanMode::Decluttered);
    // The f32 runs go on a second thread while the reduced graph is
    // serialized and parsed here.
    let (expected, reduced) = alongside(
        || run_all(&mut fp32, &inputs),
        || -> Result<(Vec<NamedTensors>, Loaded, Option<EarlyWrite>), Error> {
            // Written while the gate runs; removed if it fails.
            let (mut l, writing) =
                Loaded::into_sink(session, g, export, output.map_or(Sink::Memory, Sink::File))?;
            Ok((run_all(&mut l.session, &inputs)?, l, writing))
        },
    );
    let (actual, reduced, writing) = reduced?;
    let report = compare_runs(&expected?, &actual)?;
    Ok((runs, report, reduced, writing))
}
