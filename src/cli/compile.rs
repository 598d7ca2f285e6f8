//! `bertc compile`: parses its arguments into the library pipeline's
//! options and prints the pipeline's report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bertc::pipeline::{self, PassSelection, PipelineOptions, Source};
use bertc::source::MissingWeights;

use super::report::{print_summary, Summary};
use super::{LevelArg, SourceArgs, TargetArg};

#[derive(clap::Args)]
pub struct CompileArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    pub optimize: OptimizeArgs,
    /// Where to write the ONNX model: FILE.onnx, or DIR/ (a trailing slash or an existing folder) for an
    /// export folder in Optimum's layout (model.onnx, config.json, tokenizer and module files).
    #[arg(short, long)]
    output: PathBuf,
}

/// Pass selection, checking and precision, shared by commands that optimize.
#[derive(clap::Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub level: LevelArg,
    /// Run exactly these passes, comma-separated, instead of a level's pipeline.
    #[arg(long, value_delimiter = ',')]
    pub passes: Option<Vec<String>>,
    /// Print what each pass did: matches, nodes before -> after, milliseconds.
    #[arg(long)]
    pub report: bool,
    /// The runtime the fused forms are chosen for.
    #[arg(long, value_enum, default_value_t = TargetArg::Portable)]
    pub target: TargetArg,
    /// Skip checking the optimized model against the unoptimized one in tract
    /// (and the accuracy gate of --quantize / --precision).
    #[arg(long)]
    pub no_check: bool,
    /// ONNX opset to emit (default: the lowest that covers the ops used, at least 17).
    #[arg(long, value_parser = clap::value_parser!(i64).range(14..=23))]
    pub opset: Option<i64>,
    /// Threads of tract in the checks (default: every core).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub precision: super::precision::PrecisionArgs,
    /// Write shape/type value_info for every intermediate value (off by default: its symbolic
    /// dims keep tract from loading the file with concrete input facts).
    #[arg(long)]
    pub value_info: bool,
    /// Write the weights to OUT.onnx_data beside the model (one file, large tensors 64 KiB-aligned,
    /// tensors under 1 KiB inline), as Optimum and onnxruntime do; automatic above protobuf's 2 GB.
    #[arg(long)]
    pub external_data: bool,
    /// Run the per-token layers (embeddings, projections, FFN, layer norms,
    /// token heads) on the real tokens only, gathered to [batch, sequence]
    /// around attention; same inputs and outputs, zeros at padding positions
    #[arg(long)]
    pub packed: bool,
}

impl OptimizeArgs {
    /// Files these options read (the calibration inputs): inputs of the
    /// command, which its output must not overwrite.
    pub fn input_files(&self) -> Vec<(&'static str, &std::path::Path)> {
        self.precision
            .calibrate
            .iter()
            .map(|p| ("calibration inputs", p.as_path()))
            .collect()
    }

    /// The library pipeline's options.
    pub fn pipeline_options(&self) -> anyhow::Result<PipelineOptions> {
        if self.passes.is_some() && self.level.given() {
            anyhow::bail!("-O and --passes both choose the passes: give one of them");
        }
        Ok(PipelineOptions {
            passes: match &self.passes {
                Some(list) => PassSelection::Explicit(list.clone()),
                None => PassSelection::Level(self.level.level()),
            },
            target: self.target.target(),
            check: !self.no_check,
            precision: self.precision.precision()?,
            opset: self.opset,
            value_info: self.value_info,
            external_data: self.external_data,
            output: None,
            packed: self.packed,
        })
    }
}

pub fn run(a: CompileArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut options = a.optimize.pipeline_options()?;
    options.validate()?;
    let arg = a.source.options();
    let source = arg.resolve(MissingWeights::Refuse)?;
    let inputs = source.input_files(&a.source.model);
    let mut inputs: Vec<(&str, &std::path::Path)> = inputs.iter().map(|(r, p)| (*r, p.as_path())).collect();
    inputs.extend(a.optimize.input_files());
    let folder_out = bertc::export_folder::is_folder_output(&a.output);
    match folder_out {
        true => bertc::export_folder::check_destination(&a.output, &source, &inputs)?,
        false => {
            super::external_data::check_outputs(&a.output, &inputs)?;
            options.output = Some(a.output.clone());
        }
    }
    let config = source.config.clone();
    let build = arg.build_options(&source);
    let mut compiled = pipeline::run(session, Source::Config(config.clone(), build), &options)?;
    let write_start = Instant::now();
    let (size, exported, written) = match folder_out {
        true => {
            let e = bertc::export_folder::write_export_folder(&a.output, &compiled, &source, &inputs)?;
            (e.model_size, Some(e), None)
        }
        false => {
            let written = compiled.write_files(&a.output)?;
            (written.model_bytes, None, Some(written))
        }
    };
    let write_time = write_start.elapsed();
    let spec = compiled.spec.as_ref();
    let head = spec.map(|s| {
        let origin = match (&a.source.head, &source.sentence) {
            (Some(_), _) => String::new(),
            (None, Some(m)) => format!(
                " (from modules.json: {} pooling{})",
                m.pooling.mode,
                if m.pooling.normalize { ", normalized" } else { "" }
            ),
            (None, None) => " (from architectures)".into(),
        };
        format!("{}{origin}", s.head)
    });
    print_summary(&Summary {
        verb: "compiled",
        from: &a.source.model,
        to: &a.output,
        compiled: &compiled,
        head,
        shape: Some(format!(
            "{} layers, hidden {}, {} heads",
            config.num_hidden_layers, config.hidden_size, config.num_attention_heads
        )),
        size,
        write_time,
        total_time: start.elapsed(),
        report: a.optimize.report,
    });
    if let Some(e) = exported {
        let replaced = if e.replaced {
            " (replaced a previous export)"
        } else {
            ""
        };
        println!("  folder      {}{replaced}", e.files.join(", "));
    }
    if let Some(w) = written {
        super::external_data::print_written(&a.output, &w);
    }
    Ok(ExitCode::SUCCESS)
}
