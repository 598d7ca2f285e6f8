//! Subcommands and their arguments.

mod bench;
mod compile;
mod dump;
mod external_data;
mod inspect;
mod model_arg;
mod optimize;
mod precision;
mod progress;
mod report;
mod run;
mod serve;
mod sweep;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use bertc::Session;
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
    /// Compile a model folder, a config.json or a preset to an ONNX model.
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
    /// Answer as transformers' pipeline for the model's task, from text (classification, NER, QA,
    /// fill-mask, sentence embeddings).
    Run(run::RunArgs),
    /// Serve the model over HTTP in text-embeddings-inference's request shapes (embed, OpenAI
    /// embeddings, predict, rerank, tokenize) plus token-classification, question-answering and
    /// fill-mask, with length-aware dynamic batching.
    Serve(serve::ServeArgs),
}

impl Cli {
    /// Whether the command takes SIGINT and SIGTERM itself (a server
    /// stops gracefully on them) instead of the binary's cleanup handlers.
    pub fn takes_signals(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// Where the model comes from and which head it gets, shared by compile and dump.
#[derive(clap::Args, Clone)]
pub struct SourceArgs {
    /// A model folder, a config.json path, a preset name (see `bertc presets`) or a hub id
    /// org/name, in that order: an existing path first, then a preset, then the huggingface_hub
    /// cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub), downloaded into it
    /// from HF_ENDPOINT (default https://huggingface.co) when absent unless HF_HUB_OFFLINE=1.
    pub model: String,
    /// The revision of a hub id: a branch, a tag or a commit hash [default: main].
    #[arg(long)]
    pub revision: Option<String>,
    /// Weights to load (model.safetensors, pytorch_model.bin or a sharded index.json); by default the
    /// ones in the model's folder. Presets without it get seeded random weights.
    #[arg(long, conflicts_with = "random_weights")]
    pub weights: Option<PathBuf>,
    /// Compile seeded random weights even where the folder has a checkpoint (or has none).
    #[arg(long)]
    pub random_weights: bool,
    /// Seed of the random init (presets and --random-weights).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The task head (default: from the config's `architectures`): base, sequence-classification,
    /// token-classification, question-answering, masked-lm, sentence-embedding.
    #[arg(long, value_parser = parse_head)]
    pub head: Option<bertc::builder::Head>,
    /// Keep `last_hidden_state` as an output beside the head's own (a sentence-embedding model
    /// has it unless --sentence-embedding-only).
    #[arg(long)]
    pub keep_last_hidden_state: bool,
    /// A sentence-embedding model without its per-token `last_hidden_state` output (the one
    /// Optimum's ORTModelForFeatureExtraction and sentence-transformers' ONNX backend read): a
    /// smaller graph for bertc's own runtimes.
    #[arg(long, conflicts_with = "keep_last_hidden_state")]
    pub sentence_embedding_only: bool,
    /// Accept NaN or infinite values in the weights (refused by default).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

/// `-O N` / `--opt-level N`, the same flag in every command.
#[derive(clap::Args, Clone, Copy)]
pub struct LevelArg {
    /// Optimization level: 0 (the graph as built), 1 (clean-ups), 2 (fusions; the default).
    #[arg(short = 'O', long = "opt-level", value_name = "N", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub opt_level: Option<u8>,
}

impl LevelArg {
    pub fn level(&self) -> bertc::passes::Level {
        bertc::passes::Level::from_number(self.opt_level.unwrap_or(2)).unwrap_or(bertc::passes::Level::O2)
    }

    /// Whether -O was given on the command line.
    pub fn given(&self) -> bool {
        self.opt_level.is_some()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// Standard ONNX ops, for any runtime.
    Portable,
    /// onnxruntime's contrib ops (EmbedLayerNormalization, BiasGelu or FastGelu, Attention).
    Onnxruntime,
    /// The forms tract runs fastest.
    Tract,
    /// OpenVINO: int8 (with --quantize static) as QuantizeLinear/DequantizeLinear pairs.
    Openvino,
}

impl TargetArg {
    pub fn target(self) -> bertc::passes::Target {
        match self {
            TargetArg::Portable => bertc::passes::Target::Portable,
            TargetArg::Onnxruntime => bertc::passes::Target::Onnxruntime,
            TargetArg::Tract => bertc::passes::Target::Tract,
            TargetArg::Openvino => bertc::passes::Target::Openvino,
        }
    }
}

/// `--threads N`: at least 1, at most 4 × the cores (more only spawns
/// threads that wait).
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of threads"))?;
    let most = 4 * bertc::session::available_threads();
    match n {
        0 => Err("must be at least 1".into()),
        n if n > most => Err(format!("{n} threads on {} cores: at most {most}", most / 4)),
        n => Ok(n),
    }
}

/// `--runtime NAME`: tract, onnxruntime or openvino.
pub fn parse_runtime(name: &str) -> Result<bertc::runtime::Runtime, String> {
    bertc::runtime::Runtime::parse(name).ok_or_else(|| {
        let names: Vec<&str> = bertc::runtime::Runtime::ALL.iter().map(|r| r.name()).collect();
        format!("valid runtimes: {}", names.join(", "))
    })
}

impl SourceArgs {
    /// The library's form of these flags.
    pub fn options(&self) -> bertc::pipeline::SourceOptions {
        bertc::pipeline::SourceOptions {
            model: self.model.clone(),
            revision: self.revision.clone(),
            weights: self.weights.clone(),
            random_weights: self.random_weights,
            seed: self.seed,
            head: self.head,
            keep_last_hidden_state: self.keep_last_hidden_state,
            sentence_embedding_only: self.sentence_embedding_only,
            allow_nonfinite: self.allow_nonfinite,
        }
    }
}

fn parse_head(name: &str) -> Result<bertc::builder::Head, String> {
    bertc::builder::Head::parse(name)
        .ok_or_else(|| format!("valid heads: {}", bertc::builder::Head::names().join(", ")))
}

/// The process's one session: tract on the command's `--threads` (every
/// core by default), its panics kept off the terminal (the error that
/// follows says what to fix). Commands that never run tract start no pool.
fn session(command: &Command) -> anyhow::Result<Session> {
    let threads = match command {
        Command::Compile(a) => a.optimize.threads,
        Command::Optimize(a) => a.optimize.threads,
        Command::Validate(a) => a.threads,
        Command::Bench(a) => a.threads,
        Command::Sweep(a) => a.threads,
        Command::Run(a) => a.threads,
        Command::Serve(a) => a.threads,
        Command::Dump(_) | Command::Inspect(_) | Command::Presets => Some(1),
    };
    let threads = threads.unwrap_or_else(bertc::session::available_threads);
    Ok(Session::new(threads)?.with_quiet_tract_panics())
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let session = session(&cli.command)?;
    match cli.command {
        Command::Compile(a) => compile::run(a, &session),
        Command::Validate(a) => validate::run(a, &session),
        Command::Optimize(a) => optimize::run(a, &session),
        Command::Dump(a) => dump::run(a, &session),
        Command::Bench(a) => bench::run(a, &session),
        Command::Inspect(a) => inspect::run(a, &session),
        Command::Sweep(a) => sweep::run(a, &session),
        Command::Run(a) => run::run(a, &session),
        Command::Serve(a) => serve::run(a, &session),
        Command::Presets => {
            for (name, text) in bertc::presets::PRESETS {
                let c = bertc::config::BertConfig::from_json_str(text, name)?;
                println!(
                    "{name:<34} L{:<3} H{:<5} A{:<3} I{:<5} vocab {:<7} {:>12} parameters",
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
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
