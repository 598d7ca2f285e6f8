//! `bertc dump`: the graph a model argument gives, before any pass.

use std::process::ExitCode;

use bertc::pipeline::build_source;
use bertc::source::MissingWeights;

use super::SourceArgs;

#[derive(clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(a: DumpArgs) -> anyhow::Result<ExitCode> {
    let source = a.source.options().source(MissingWeights::Random)?;
    print!("{}", bertc::ir::dump(&build_source(source)?.graph));
    Ok(ExitCode::SUCCESS)
}
