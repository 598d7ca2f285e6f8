//! `bertc dump`.

use std::process::ExitCode;

use bertc::pipeline::build;
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
        let arg = a.source.options();
        let source = arg.resolve(MissingWeights::Random)?;
        build(&source.config, &arg.build_options(&source))?.graph
    };
    print!("{}", bertc::ir::dump(&graph));
    Ok(ExitCode::SUCCESS)
}
