//! `bertc compile`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bertc::check::{check_equivalence, require_within, CHECK_ATOL};
use bertc::compile::{compile, load_config, CompileOptions};
use bertc::onnx::ExportOptions;
use bertc::passes::{pipeline, target_passes, Level, PassManager, Target};
use bertc::runtime::{available_threads, realistic_inputs, set_threads};

use super::{group_digits, SourceArgs};

#[derive(clap::Args)]
pub struct CompileArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    optimize: OptimizeArgs,
    /// ONNX opset to emit (default: the lowest that covers the ops used, at least 17).
    #[arg(long)]
    opset: Option<i64>,
    /// Where to write the ONNX model.
    #[arg(short, long)]
    output: PathBuf,
}

/// Pass selection and checking, shared by commands that optimize.
#[derive(clap::Args)]
pub struct OptimizeArgs {
    /// Optimization level: 0 (none), 1 (clean-ups), 2 (fusions).
    #[arg(short = 'O', default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub level: u8,
    /// Run exactly these passes, comma-separated, instead of a level's pipeline.
    #[arg(long, value_delimiter = ',')]
    pub passes: Option<Vec<String>>,
    /// Print what each pass did: matches, nodes before -> after, milliseconds.
    #[arg(long)]
    pub report: bool,
    /// The runtime the fused forms are chosen for.
    #[arg(long, value_enum, default_value_t = TargetArg::Portable)]
    pub target: TargetArg,
    /// Skip checking the optimized model against the unoptimized one in tract
    /// (and the accuracy gate of --quantize / --precision).
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub precision: super::precision::PrecisionArgs,
}

/// One line per pass run: matches, nodes before -> after, milliseconds.
pub fn print_report(runs: &[bertc::passes::PassRun]) {
    for r in runs {
        println!(
            "  pass {:<24} {:>4} matches  nodes {:>5} -> {:<5} {:>8.2} ms",
            r.pass,
            r.report.matches,
            r.nodes_before,
            r.nodes_after,
            r.elapsed.as_secs_f64() * 1e3
        );
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TargetArg {
    /// Standard ONNX ops, for any runtime.
    Portable,
    /// onnxruntime's contrib ops (EmbedLayerNormalization, SkipLayerNormalization, BiasGelu, Attention).
    Onnxruntime,
    /// The forms tract runs fastest.
    Tract,
}

impl OptimizeArgs {
    fn level(&self) -> Level {
        match self.level {
            0 => Level::O0,
            1 => Level::O1,
            _ => Level::O2,
        }
    }

    pub fn target(&self) -> Target {
        match self.target {
            TargetArg::Portable => Target::Portable,
            TargetArg::Onnxruntime => Target::Onnxruntime,
            TargetArg::Tract => Target::Tract,
        }
    }

    /// The passes whose result is checked in tract.
    pub fn pass_manager(&self) -> anyhow::Result<PassManager> {
        let names: Vec<&str> = match &self.passes {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => pipeline(self.level(), self.target()),
        };
        Ok(PassManager::from_names(names)?)
    }

    /// The target's lowering to runtime-specific ops, after the check (tract
    /// cannot run onnxruntime's contrib ops; the lowering is structural and
    /// tested against onnxruntime itself).
    pub fn lowering(&self) -> anyhow::Result<PassManager> {
        let names = match &self.passes {
            Some(_) => vec![],
            None => target_passes(self.target(), self.level()),
        };
        Ok(PassManager::from_names(names)?)
    }
}

pub fn run(a: CompileArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let config = load_config(&a.source.model)?;
    let opts = CompileOptions {
        weights: a.source.weights.clone(),
        seed: a.source.seed,
        head: a.source.head,
        keep_last_hidden_state: a.source.keep_last_hidden_state,
        export: ExportOptions { opset: a.opset },
    };
    let mut compiled = compile(&config, &opts, &a.optimize.pass_manager()?)?;

    let check_start = Instant::now();
    let checked = !a.optimize.no_check && !compiled.passes.is_empty();
    if checked {
        set_threads(available_threads());
        // Batch 3, length 16: one full sequence, one right- and one left-padded.
        let inputs = realistic_inputs(
            config.vocab_size,
            config.type_vocab_size,
            3,
            16.min(config.max_position_embeddings),
            0,
        );
        let comparisons = check_equivalence(&compiled.unoptimized, &compiled.graph, &inputs)?;
        for c in &comparisons {
            println!(
                "  check       {:<20} max-abs {:.2e} vs unoptimized (tolerance {:.0e})",
                c.name, c.max_abs, CHECK_ATOL
            );
        }
        require_within(&comparisons, CHECK_ATOL)?;
    }
    let reduced =
        a.optimize
            .precision
            .apply(&mut compiled.graph, !a.optimize.no_check, a.optimize.target())?;
    compiled.passes.extend(reduced);
    let check_time = check_start.elapsed();
    let lowering = a.optimize.lowering()?.run(&mut compiled.graph)?;
    compiled.passes.extend(lowering);
    let g = &compiled.graph;
    let opset = bertc::onnx::resolve_opset(g, a.opset)?;
    if a.optimize.report {
        print_report(&compiled.passes);
    }

    let write_start = Instant::now();
    let size = compiled.write(&a.output)?;
    let write_time = write_start.elapsed();

    println!("compiled {} -> {}", a.source.model, a.output.display());
    let outputs: Vec<&str> = g.outputs().iter().map(|(n, _)| n.as_str()).collect();
    let origin = if a.source.head.is_some() {
        ""
    } else {
        " (from architectures)"
    };
    println!(
        "  head        {}{origin}: {}",
        compiled.spec.head,
        outputs.join(", ")
    );
    if !compiled.ignored.is_empty() {
        println!(
            "  unread      {} (another head's or the pooler's)",
            compiled.ignored.join(", ")
        );
    }
    println!(
        "  parameters  {} ({} layers, hidden {}, {} heads)",
        group_digits(g.parameter_count()),
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads
    );
    let histogram = g.op_histogram();
    let ops: Vec<(&str, usize)> = histogram
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "Input" | "Constant"))
        .collect();
    let total: usize = ops.iter().map(|(_, n)| n).sum();
    let listed: Vec<String> = ops.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  nodes       {total}: {}", listed.join(", "));
    println!("  opset       {opset}");
    println!(
        "  file        {} bytes ({:.1} MB)",
        group_digits(size),
        size as f64 / 1e6
    );
    println!(
        "  time        {:.3} s (weights {:.3}, build {:.3}, passes {:.3}, check {:.3}, serialize + write {:.3})",
        start.elapsed().as_secs_f64(),
        compiled.load_time.as_secs_f64(),
        compiled.build_time.as_secs_f64(),
        compiled.pass_time.as_secs_f64(),
        check_time.as_secs_f64(),
        write_time.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
