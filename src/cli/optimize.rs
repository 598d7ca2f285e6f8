//! `bertc optimize`: the pipeline on an existing ONNX file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bertc::onnx::read_model;
use bertc::pipeline::{self, Source};

use super::compile::OptimizeArgs;
use super::report::{print_summary, Summary};

#[derive(clap::Args)]
pub struct OptimizeCmdArgs {
    /// The ONNX model to optimize.
    input: PathBuf,
    #[command(flatten)]
    pub optimize: OptimizeArgs,
    /// Where to write the optimized model.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: OptimizeCmdArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut options = a.optimize.pipeline_options()?;
    options.validate()?;
    // The input's own data files are inputs too: writing over one would
    // destroy what the model is read from.
    let data_files = bertc::onnx::external_data_files(&a.input)?;
    let mut inputs = vec![("input model", a.input.as_path())];
    inputs.extend(
        data_files
            .iter()
            .map(|f| ("input model's external data", f.as_path())),
    );
    inputs.extend(a.optimize.input_files());
    super::external_data::check_outputs(&a.output, &inputs)?;
    options.output = Some(a.output.clone());
    let graph = read_model(&a.input)?;
    let mut compiled = pipeline::run(session, Source::Graph(graph), &options)?;
    let write_start = Instant::now();
    let written = compiled.write_files(&a.output)?;
    print_summary(&Summary {
        verb: "optimized",
        from: &a.input.display().to_string(),
        to: &a.output,
        compiled: &compiled,
        head: None,
        shape: None,
        size: written.model_bytes,
        write_time: write_start.elapsed(),
        total_time: start.elapsed(),
        report: a.optimize.report,
    });
    super::external_data::print_written(&a.output, &written);
    Ok(ExitCode::SUCCESS)
}
