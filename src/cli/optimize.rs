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
    refuse_int8_of_fp16_weights(&a.input, &graph, &options.precision)?;
    let mut compiled = pipeline::run(session, Source::Graph(graph), &options)?;
    let write_start = Instant::now();
    let written = compiled.write_files(&a.output)?;
    print_summary(&Summary {
        verb: "optimized",
        from: &a.input.display().to_string(),
        to: &a.output,
        compiled: &compiled,
        head: pipeline::sentence_head(compiled.graph()).map(|h| h.to_string()),
        shape: None,
        size: written.model_bytes,
        write_time: write_start.elapsed(),
        total_time: start.elapsed(),
        report: a.optimize.report,
    });
    super::external_data::print_written(&a.output, &written);
    Ok(ExitCode::SUCCESS)
}

/// bertc's fp16 files store each weight as an f16 constant read through a
/// `Cast` to f32; the int8 passes quantize f32 weight constants, so they
/// found none and wrote the fp16 file again under an int8 name (issue 25,
/// N8). Refused, saying which file to quantize instead.
fn refuse_int8_of_fp16_weights(
    input: &std::path::Path,
    graph: &bertc::ir::Graph,
    precision: &bertc::quantize::Precision,
) -> anyhow::Result<()> {
    use bertc::ir::{DType, Op};
    let f16_weights = graph.node_ids().any(|id| match &graph.node(id).op {
        Op::Constant(t) => t.dtype() == DType::F16 && t.dims().len() >= 2,
        _ => false,
    });
    anyhow::ensure!(
        !(precision.is_int8() && f16_weights),
        "{}: its weights are stored as f16 (an fp16 file); int8 quantizes f32 weights: quantize the \
         fp32 model instead (`bertc compile … --quantize dynamic|static`, or `bertc optimize` on the fp32 file)",
        input.display()
    );
    Ok(())
}
