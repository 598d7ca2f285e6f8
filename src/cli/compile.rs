//! `bertc compile`: parses its arguments into the library pipeline's
//! options and prints the pipeline's report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bertc::pipeline::{self, Compiled, PassSelection, PipelineOptions, Source};
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
    /// Where an export folder's model files go: flat (beside config.json, where Optimum and
    /// sentence-transformers look first) or onnx-subfolder (onnx/model.onnx, as the hub's ONNX
    /// repositories hold them: the one place transformers.js looks).
    #[arg(long, value_enum, default_value = "flat")]
    layout: LayoutArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LayoutArg {
    Flat,
    OnnxSubfolder,
}

impl LayoutArg {
    fn layout(self) -> bertc::export_folder::Layout {
        match self {
            LayoutArg::Flat => bertc::export_folder::Layout::Flat,
            LayoutArg::OnnxSubfolder => bertc::export_folder::Layout::OnnxSubfolder,
        }
    }
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
    /// The runtime the fused forms are chosen for. Comma-separated for an export folder holding one
    /// model file per form (each target at each --precision): the first is model.onnx, each other
    /// model_<target>[_<precision>][_packed].onnx, listed in bertc_export.json, from which `bertc
    /// run --runtime` picks the file that fits.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "portable")]
    pub target: Vec<TargetArg>,
    /// Skip checking the optimized model against the unoptimized one in tract
    /// (and the accuracy gate of --quantize / --precision).
    #[arg(long)]
    pub no_check: bool,
    /// ONNX opset to emit (default: the lowest that covers the ops used, at least 17).
    #[arg(long, value_parser = clap::value_parser!(i64).range(14..=23))]
    pub opset: Option<i64>,
    /// Threads of tract in the checks (default: all cores).
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

    /// The library pipeline's options, for commands that write one model.
    pub fn pipeline_options(&self) -> anyhow::Result<PipelineOptions> {
        let mut forms = self.forms()?;
        anyhow::ensure!(
            forms.len() == 1,
            "{} forms asked for (--target and --precision lists): several forms are written only into an \
             export folder, by `bertc compile -o DIR/`",
            forms.len()
        );
        Ok(forms.remove(0))
    }

    /// The options of every form asked for: each target of `--target` at
    /// each precision of `--precision`, targets first (the first form is
    /// the one `model.onnx` holds).
    pub fn forms(&self) -> anyhow::Result<Vec<PipelineOptions>> {
        if self.passes.is_some() && self.level.given() {
            anyhow::bail!("-O and --passes both choose the passes: give one of them");
        }
        if let Some(t) = self
            .target
            .iter()
            .enumerate()
            .find_map(|(i, t)| self.target[..i].contains(t).then_some(t))
        {
            anyhow::bail!("--target lists {} twice", t.target().name());
        }
        let precisions = self.precision.precisions()?;
        let mut forms = vec![];
        for target in &self.target {
            for precision in &precisions {
                forms.push(PipelineOptions {
                    passes: match &self.passes {
                        Some(list) => PassSelection::Explicit(list.clone()),
                        None => PassSelection::Level(self.level.level()),
                    },
                    target: target.target(),
                    check: !self.no_check,
                    precision: precision.clone(),
                    opset: self.opset,
                    value_info: self.value_info,
                    external_data: self.external_data,
                    output: None,
                    packed: self.packed,
                });
            }
        }
        Ok(forms)
    }
}

pub fn run(a: CompileArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let arg = a.source.options();
    let folder_out = bertc::export_folder::is_folder_output(&a.output);
    anyhow::ensure!(
        folder_out || a.layout == LayoutArg::Flat,
        "--layout places the model files of an export folder, and {} is a file: write a folder (-o DIR/)",
        a.output.display()
    );
    let forms = match folder_out {
        true => a.optimize.forms()?,
        false => vec![a.optimize.pipeline_options()?],
    };
    for form in &forms {
        pipeline::check_options(form)?;
    }
    let source = arg.resolve(MissingWeights::Refuse)?;
    let inputs = source.input_files(&a.source.model);
    let mut inputs: Vec<(&str, &std::path::Path)> = inputs.iter().map(|(r, p)| (*r, p.as_path())).collect();
    inputs.extend(a.optimize.input_files());
    let config = source.config.clone();
    let build = arg.build_options(&source);
    let head = |compiled: &Compiled| {
        compiled.spec.as_ref().map(|s| {
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
        })
    };
    let shape = format!(
        "{} layers, hidden {}, {} heads",
        config.num_hidden_layers, config.hidden_size, config.num_attention_heads
    );
    let summary = |compiled: &Compiled, to: &std::path::Path, size, write_time| {
        print_summary(&Summary {
            verb: "compiled",
            from: &a.source.model,
            to,
            compiled,
            head: head(compiled),
            shape: Some(shape.clone()),
            size,
            write_time,
            total_time: start.elapsed(),
            report: a.optimize.report,
        })
    };
    if folder_out {
        bertc::export_folder::check_destination(&a.output, &source, &inputs)?;
        // Built once; every form is compiled from a clone of it.
        let sourced = pipeline::build_source(Source::Config(config.clone(), build))?;
        let forms = bertc::export_folder::folder_forms(forms, a.layout.layout());
        let several = forms.len() > 1;
        let e = bertc::export_folder::write_export_forms(
            session,
            &a.output,
            &sourced,
            &forms,
            &source,
            &inputs,
            |w| {
                // One form is the folder, as before forms existed.
                let to = match several {
                    true => a.output.join(&w.entry.file),
                    false => a.output.clone(),
                };
                summary(w.compiled, &to, w.size, w.write_time);
                if several {
                    println!(
                        "  form        {} (runs in {})",
                        w.entry.describe(),
                        runtimes(w.entry)
                    );
                }
            },
        )?;
        let replaced = if e.replaced {
            " (replaced a previous export)"
        } else {
            ""
        };
        println!("  folder      {}{replaced}", e.files.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    let mut options = forms.into_iter().next().unwrap_or_default();
    super::external_data::check_outputs(&a.output, &inputs)?;
    options.output = Some(a.output.clone());
    let mut compiled = pipeline::run(session, Source::Config(config.clone(), build), &options)?;
    let write_start = Instant::now();
    let written = compiled.write_files(&a.output)?;
    summary(&compiled, &a.output, written.model_bytes, write_start.elapsed());
    super::external_data::print_written(&a.output, &written);
    Ok(ExitCode::SUCCESS)
}

/// "tract, onnxruntime, openvino".
fn runtimes(entry: &bertc::export_manifest::FormEntry) -> String {
    let names: Vec<&str> = entry.runtimes.iter().map(|r| r.name()).collect();
    names.join(", ")
}
