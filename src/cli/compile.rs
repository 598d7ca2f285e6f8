//! `bertc compile`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bertc::compile::{compile, load_config, CompileOptions};
use bertc::onnx::{ExportOptions, DEFAULT_OPSET};
use bertc::passes::PassManager;

use super::{group_digits, SourceArgs};

#[derive(clap::Args)]
pub struct CompileArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// ONNX opset to emit.
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    opset: i64,
    /// Where to write the ONNX model.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: CompileArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let config = load_config(&a.source.model)?;
    let opts = CompileOptions {
        weights: a.source.weights.clone(),
        seed: a.source.seed,
        export: ExportOptions { opset: a.opset },
    };
    let passes = PassManager::new().with(bertc::passes::DeadNodeElimination);
    let compiled = compile(&config, &opts, &passes)?;
    let write_start = Instant::now();
    let size = compiled.write(&a.output)?;
    let write_time = write_start.elapsed();

    let g = &compiled.graph;
    println!("compiled {} -> {}", a.source.model, a.output.display());
    println!(
        "  parameters  {} ({} layers, hidden {}, {} heads)",
        group_digits(g.parameter_count()),
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads
    );
    let ops: Vec<String> = g
        .op_histogram()
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "Input" | "Constant"))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let total: usize = g
        .op_histogram()
        .iter()
        .filter(|(k, _)| !matches!(**k, "Input" | "Constant"))
        .map(|(_, n)| n)
        .sum();
    println!("  nodes       {total}: {}", ops.join(", "));
    println!("  opset       {}", a.opset);
    println!(
        "  file        {} bytes ({:.1} MB)",
        group_digits(size),
        size as f64 / 1e6
    );
    println!(
        "  time        {:.3} s (weights {:.3}, build {:.3}, passes {:.3}, serialize + write {:.3})",
        start.elapsed().as_secs_f64(),
        compiled.load_time.as_secs_f64(),
        compiled.build_time.as_secs_f64(),
        compiled.pass_time.as_secs_f64(),
        write_time.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
