//! `bertc dump`.

use std::process::ExitCode;

use bertc::compile::build;
use bertc::source::MissingWeights;

use super::SourceArgs;

#[derive(clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(a: DumpArgs) -> anyhow::Result<ExitCode> {
    let graph = if a.source.model.ends_with(".onnx") {
        bertc::onnx::read_model(std::path::Path::new(&a.source.model))?
    } else {
        let source = a.source.resolve(MissingWeights::Random)?;
        build(&source.config, &a.source.compile_options(&source))?.graph
    };
    print!("{}", bertc::ir::dump(&graph));
    Ok(ExitCode::SUCCESS)
}
