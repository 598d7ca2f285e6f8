//! `bertc optimize`: the passes applied to an existing ONNX file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bertc::check::{check_equivalence, inputs_for, require_within, CHECK_ATOL};
use bertc::onnx::{read_model, resolve_opset, write_model, ExportOptions};
use bertc::runtime::{available_threads, set_threads};

use super::compile::{print_report, OptimizeArgs};

#[derive(clap::Args)]
pub struct OptimizeCmdArgs {
    /// The ONNX model to optimize.
    input: PathBuf,
    #[command(flatten)]
    optimize: OptimizeArgs,
    /// ONNX opset to emit (default: the lowest that covers the ops used, at least 17).
    #[arg(long)]
    opset: Option<i64>,
    /// Where to write the optimized model.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: OptimizeCmdArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let original = read_model(&a.input)?;
    let mut g = original.clone();
    let nodes_before = g.node_count();
    let runs = a.optimize.pass_manager()?.run(&mut g)?;
    if a.optimize.report {
        print_report(&runs);
    }
    if !a.optimize.no_check && !runs.is_empty() {
        set_threads(available_threads());
        let inputs = inputs_for(&original, 3, 16);
        let comparisons = check_equivalence(&original, &g, &inputs)?;
        for c in &comparisons {
            println!(
                "  check       {:<20} max-abs {:.2e} vs the input model (tolerance {:.0e})",
                c.name, c.max_abs, CHECK_ATOL
            );
        }
        require_within(&comparisons, CHECK_ATOL)?;
    }
    let reduced = a
        .optimize
        .precision
        .apply(&mut g, !a.optimize.no_check, a.optimize.target())?;
    if a.optimize.report {
        print_report(&reduced);
    }
    let lowering = a.optimize.lowering()?.run(&mut g)?;
    if a.optimize.report {
        print_report(&lowering);
    }
    let opset = resolve_opset(&g, a.opset)?;
    let size = write_model(&g, ExportOptions { opset: a.opset }, &a.output)?;
    let ops: Vec<String> = g
        .op_histogram()
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "Input" | "Constant"))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("optimized {} -> {}", a.input.display(), a.output.display());
    println!(
        "  nodes       {nodes_before} -> {} (with constants): {}",
        g.node_count(),
        ops.join(", ")
    );
    println!("  opset       {opset}");
    println!("  file        {size} bytes");
    println!("  time        {:.3} s", start.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
