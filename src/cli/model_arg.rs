//! Model arguments of inspect, bench and sweep: an ONNX file, a config.json
//! or a preset. Configs are compiled in memory (seeded random weights: speed
//! and cost do not depend on the values).

use std::path::Path;

use anyhow::Context;
use bertc::compile::{compile, load_config, CompileOptions};
use bertc::config::BertConfig;
use bertc::ir::Graph;
use bertc::onnx::read_model;
use bertc::passes::{pipeline, Level, PassManager, Target};
use bertc::quantize::{apply, PrecisionOptions};

/// A model as the measuring commands need it.
pub struct ModelArg {
    /// The argument as given, used as the model's name in reports.
    pub name: String,
    /// "onnx", "preset" or "config".
    pub source: &'static str,
    pub graph: Graph,
    /// The config, when given one or when the ONNX file carries bertc's metadata.
    pub config: Option<BertConfig>,
}

/// The optimization level given as `-O N` to a measuring command.
pub fn level(n: u8) -> Level {
    match n {
        0 => Level::O0,
        1 => Level::O1,
        _ => Level::O2,
    }
}

/// Loads `arg`: an `.onnx` file as it is, a config or preset compiled at
/// `level` with `opts` (portable target), then brought to `precision`.
pub fn load(
    arg: &str,
    level: Level,
    opts: &CompileOptions,
    precision: Option<&PrecisionOptions>,
) -> anyhow::Result<ModelArg> {
    if arg.to_ascii_lowercase().ends_with(".onnx") {
        let graph =
            read_model(Path::new(arg)).with_context(|| format!("cannot load the ONNX model {arg}"))?;
        let config = graph
            .metadata
            .get("bertc.config")
            .and_then(|text| BertConfig::from_json_str(text, arg).ok());
        return Ok(ModelArg {
            name: arg.to_string(),
            source: "onnx",
            graph,
            config,
        });
    }
    let config = load_config(arg)?;
    let passes = PassManager::from_names(pipeline(level, Target::Portable))?;
    let mut graph = compile(&config, opts, &passes)
        .with_context(|| format!("cannot compile {arg}"))?
        .graph;
    if let Some(p) = precision {
        apply(&mut graph, p).with_context(|| format!("cannot bring {arg} to reduced precision"))?;
    }
    Ok(ModelArg {
        name: arg.to_string(),
        source: if bertc::presets::preset(arg).is_some() {
            "preset"
        } else {
            "config"
        },
        graph,
        config: Some(config),
    })
}

impl ModelArg {
    /// The longest sequence the model's position table covers, if known.
    pub fn max_positions(&self) -> Option<usize> {
        if let Some(c) = &self.config {
            return Some(c.max_position_embeddings);
        }
        bertc::check::max_sequence(&self.graph)
    }

    /// Refuses sequence lengths beyond the position table (tract would fail
    /// deep inside a Gather instead).
    pub fn check_seqs(&self, seqs: &[usize]) -> anyhow::Result<()> {
        if let (Some(max), Some(&s)) = (self.max_positions(), seqs.iter().max()) {
            anyhow::ensure!(
                s <= max,
                "--seq {s} is longer than {} accepts: its position table has {max} rows",
                self.name
            );
        }
        Ok(())
    }

    /// The ONNX bytes tract loads (the file itself for ONNX arguments, so
    /// that what is measured is what is on disk).
    pub fn onnx_bytes(&self) -> anyhow::Result<Vec<u8>> {
        if self.source == "onnx" {
            return std::fs::read(&self.name).with_context(|| format!("cannot read {}", self.name));
        }
        Ok(bertc::onnx::export_bytes(&self.graph, Default::default())?)
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
