//! Model arguments of inspect, bench and sweep: an ONNX file, a config.json
//! or a preset. Configs are compiled in memory (seeded random weights: speed
//! and cost do not depend on the values).

use std::path::Path;

use anyhow::Context;
use bertc::ir::Graph;
use bertc::onnx::read_model;
use bertc::passes::Level;
use bertc::pipeline::{self, BuildOptions, PassSelection, PipelineOptions, Source};
use bertc::quantize::Precision;
use bertc::source::{resolve, MissingWeights};
use bertc::Session;

/// A model as the measuring commands need it.
pub struct ModelArg {
    /// The argument as given, used as the model's name in reports.
    pub name: String,
    /// "onnx", "preset" or "config".
    pub source: &'static str,
    pub graph: Graph,
    /// For a reduced-precision compile: the accuracy gate's worst-row
    /// cosine against the f32 graph (the lowest over the outputs).
    pub worst_row_cosine: Option<f64>,
}

/// How a config argument is compiled: the pipeline at `level` (portable
/// target, checked, with the accuracy gate when `precision` is fp16 or int8).
pub struct LoadOptions<'a> {
    pub level: Level,
    pub precision: &'a Precision,
    /// Structure only (placeholder weights, no checks): for counting.
    pub shapes_only: bool,
    /// The revision of a hub id argument (default main).
    pub revision: Option<&'a str>,
}

/// Loads `arg`: an `.onnx` file as it is, a config or preset through the
/// library pipeline, its checks running on `session`'s threads.
pub fn load(session: &Session, arg: &str, opts: &LoadOptions) -> anyhow::Result<ModelArg> {
    if arg.to_ascii_lowercase().ends_with(".onnx") {
        anyhow::ensure!(
            !opts.precision.is_reduced(),
            "{arg} is an ONNX file: reduce its precision with `bertc optimize` first"
        );
        let graph =
            read_model(Path::new(arg)).with_context(|| format!("cannot load the ONNX model {arg}"))?;
        return Ok(ModelArg {
            name: arg.to_string(),
            source: "onnx",
            graph,
            worst_row_cosine: None,
        });
    }
    // Speed and cost do not depend on the values: a folder's checkpoint is
    // used when there is one, seeded random weights otherwise.
    let source = resolve(arg, opts.revision, None, opts.shapes_only, MissingWeights::Random)?;
    let source_is_preset = source.config_file.is_none();
    let config = source.config;
    let build = BuildOptions {
        weights: source.weights,
        // A sentence-transformers folder is its sentence-embedding model here too.
        sentence: source.sentence,
        shapes_only: opts.shapes_only,
        ..Default::default()
    };
    let options = PipelineOptions {
        passes: PassSelection::Level(opts.level),
        check: !opts.shapes_only,
        precision: opts.precision.clone(),
        ..Default::default()
    };
    let compiled = pipeline::run(session, Source::Config(config, build), &options)
        .with_context(|| format!("cannot compile {arg}"))?;
    let worst_row_cosine = compiled
        .report
        .accuracy
        .as_ref()
        .and_then(|a| a.outputs.iter().map(|o| o.min_row_cosine).min_by(f64::total_cmp));
    Ok(ModelArg {
        name: arg.to_string(),
        source: if source_is_preset { "preset" } else { "config" },
        graph: compiled.into_graph(),
        worst_row_cosine,
    })
}

impl ModelArg {
    /// Refuses sequence lengths beyond the position table (tract would fail
    /// deep inside a Gather instead).
    pub fn check_seqs(&self, seqs: &[usize]) -> anyhow::Result<()> {
        if let (Some(max), Some(&s)) = (bertc::runtime::max_sequence(&self.graph), seqs.iter().max()) {
            anyhow::ensure!(
                s <= max,
                "--seq {s} is longer than {} accepts: its position table has {max} rows",
                self.name
            );
        }
        Ok(())
    }

    /// The model loaded in `runtime`: the file itself for ONNX arguments
    /// (with its external data), so that what is measured is what is on
    /// disk; a compiled config from its serialized bytes. tract runs it on
    /// `session`'s threads.
    pub fn load_in(
        &self,
        session: &Session,
        runtime: bertc::runtime::Runtime,
        opts: &bertc::runtime::RuntimeOptions,
    ) -> anyhow::Result<bertc::runtime::RuntimeModel> {
        use bertc::runtime::{ModelSource, RuntimeModel};
        if self.source == "onnx" {
            let source = ModelSource::File(Path::new(&self.name));
            return RuntimeModel::load_checked(session, runtime, source, opts, &self.graph)
                .with_context(|| format!("cannot load {} in {runtime}", self.name));
        }
        let bytes = bertc::onnx::export_bytes(&self.graph, Default::default())?;
        Ok(RuntimeModel::load_checked(
            session,
            runtime,
            ModelSource::Bytes(&bytes),
            opts,
            &self.graph,
        )?)
    }
}

/// Parses list arguments and refuses zeros: `--seq 0` has no meaning.
pub fn positive(what: &str, values: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(!values.is_empty(), "{what} needs at least one value");
    if let Some(v) = values.iter().find(|&&v| v == 0) {
        anyhow::bail!("{what} {v}: sizes must be at least 1");
    }
    Ok(())
}

/// Bytes in decimal units with one decimal: 437.9 MB, 655.4 kB.
pub fn mb(bytes: u64) -> String {
    let b = bytes as f64;
    match b {
        _ if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        _ if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} kB", b / 1e3),
    }
}
