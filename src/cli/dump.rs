//! `bertc dump`.

use std::process::ExitCode;

use bertc::compile::{build, load_config, CompileOptions};

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
        let config = load_config(&a.source.model)?;
        let opts = CompileOptions {
            weights: a.source.weights,
            seed: a.source.seed,
            head: a.source.head,
            keep_last_hidden_state: a.source.keep_last_hidden_state,
            ..Default::default()
        };
        build(&config, &opts)?.graph
    };
    print!("{}", bertc::ir::dump(&graph));
    Ok(ExitCode::SUCCESS)
}
