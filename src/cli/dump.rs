//! `bertc dump`: the graph a model argument gives, before any pass, or
//! after the passes of `-O N` (unchecked: the dump shows what the passes
//! made, as `compile -O N` would write it before its check).

use std::process::ExitCode;

use bertc::pipeline::{build_source, PassSelection, PipelineOptions};
use bertc::source::MissingWeights;

use super::SourceArgs;

#[derive(clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Dump the graph after this level's passes (default: as built, before any pass).
    #[command(flatten)]
    level: super::LevelArg,
}

pub fn run(a: DumpArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let source = a.source.options().source(MissingWeights::Random)?;
    let graph = match a.level.given() {
        false => build_source(source)?.graph,
        true => {
            let options = PipelineOptions {
                passes: PassSelection::Level(a.level.level()),
                check: false,
                ..Default::default()
            };
            bertc::pipeline::run(session, source, &options)?.into_graph()
        }
    };
    print!("{}", bertc::ir::dump(&graph));
    Ok(ExitCode::SUCCESS)
}
