//! Subcommands and their arguments.

mod bench;
mod compile;
mod dump;
mod inspect;
mod model_arg;
mod optimize;
mod precision;
mod progress;
mod sweep;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bertc",
    version,
    about = "Compile BERT configs and weights to ONNX, proven with tract"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a config (file or preset) to an ONNX model.
    Compile(compile::CompileArgs),
    /// Apply the graph passes to an ONNX model (bertc's or an exporter's).
    Optimize(optimize::OptimizeCmdArgs),
    /// Run an ONNX model in tract on a golden file's inputs and compare outputs.
    Validate(validate::ValidateArgs),
    /// Print the deterministic text dump of a config, preset or ONNX model.
    Dump(dump::DumpArgs),
    /// List the preset model configs.
    Presets,
    /// Measure latency, throughput and GFLOP/s in tract over a batch x sequence grid.
    Bench(bench::BenchArgs),
    /// Parameters by component, multiply-adds, activation and weight memory of a model.
    Inspect(inspect::InspectArgs),
    /// Inspect, compile and bench several configs; writes a table, JSON and an SVG plot.
    Sweep(sweep::SweepArgs),
}

/// Where the model comes from and which head it gets, shared by compile and dump.
#[derive(clap::Args, Clone)]
pub struct SourceArgs {
    /// A config.json path or a preset name (see `bertc presets`).
    pub model: String,
    /// Weights to load (safetensors); without it, seeded random init.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the random init (ignored with --weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The task head (default: from the config's `architectures`).
    #[arg(long, value_parser = parse_head)]
    pub head: Option<bertc::builder::Head>,
    /// Keep `last_hidden_state` as an output beside the head's own.
    #[arg(long)]
    pub keep_last_hidden_state: bool,
}

fn parse_head(name: &str) -> Result<bertc::builder::Head, String> {
    bertc::builder::Head::parse(name)
        .ok_or_else(|| format!("valid heads: {}", bertc::builder::Head::names().join(", ")))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Compile(a) => compile::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Optimize(a) => optimize::run(a),
        Command::Dump(a) => dump::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Presets => {
            for (name, text) in bertc::presets::PRESETS {
                let c = bertc::config::BertConfig::from_json_str(text, name)?;
                println!(
                    "{name:<30} L{:<3} H{:<5} A{:<3} I{:<5} vocab {:<7} {:>12} parameters",
                    c.num_hidden_layers,
                    c.hidden_size,
                    c.num_attention_heads,
                    c.intermediate_size,
                    c.vocab_size,
                    group_digits(
                        bertc::builder::bert_model_params(&c)
                            .iter()
                            .map(|s| s.shape.iter().product::<usize>())
                            .sum()
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// 109482240 → "109,482,240".
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
