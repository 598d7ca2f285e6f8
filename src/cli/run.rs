//! `bertc run`: parses the texts and flags, calls the library's pipeline
//! for the model's task ([`bertc::run`]) and prints its answer.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bertc::run::{load, Outputs, RunOptions, Task};
use bertc::tokenize::TextInput;

#[derive(clap::Args)]
pub struct RunArgs {
    /// An export folder (model.onnx + config.json + tokenizer files), a model folder (compiled in
    /// memory) or an .onnx file (with --tokenizer).
    model: PathBuf,
    /// The texts (default: --file, else one per line from stdin).
    texts: Vec<String>,
    /// Read the texts from this file, one per line.
    #[arg(long, conflicts_with = "texts")]
    file: Option<PathBuf>,
    /// Second text of a pair (cross-encoders): once for every text, or once per text.
    #[arg(long)]
    pair: Vec<String>,
    /// Question-answering: the question (repeatable).
    #[arg(long, requires = "context")]
    question: Vec<String>,
    /// Question-answering: the context (one for every question, or one per question).
    #[arg(long, requires = "question")]
    context: Vec<String>,
    /// tokenizer.json, vocab.txt or their folder (required for an .onnx file).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// fill-mask: how many tokens per mask.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    top_k: u64,
    /// Threads for the runtime (default: all cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Where the model runs: tract (built in), onnxruntime or openvino (their PyPI wheels' shared
    /// libraries, or BERTC_ONNXRUNTIME_LIB / BERTC_OPENVINO_LIB; OpenVINO at f32 precision).
    #[arg(long, default_value = "tract", value_parser = super::parse_runtime)]
    runtime: bertc::runtime::Runtime,
    /// Print one JSON document (the structure of transformers' pipeline output).
    #[arg(long)]
    json: bool,
}

pub fn run(args: RunArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let opts = RunOptions {
        tokenizer: args.tokenizer.clone(),
        runtime: args.runtime,
    };
    let mut model =
        load(session, &args.model, &opts).with_context(|| format!("cannot run {}", args.model.display()))?;
    let texts = if args.question.is_empty() {
        texts(&args)?
    } else {
        vec![]
    };
    let inputs = inputs(&args, &texts)?;
    let outputs = model.run_texts(&inputs, args.top_k as usize)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outputs.to_json(model.task))?);
    } else {
        print_human(model.task, &inputs, &outputs);
    }
    Ok(ExitCode::SUCCESS)
}

/// The texts: arguments, else --file, else stdin (one per line).
fn texts(args: &RunArgs) -> anyhow::Result<Vec<String>> {
    if !args.texts.is_empty() {
        return Ok(args.texts.clone());
    }
    let content = match &args.file {
        Some(f) => String::from_utf8(
            bertc::input_file::read_regular(f).with_context(|| format!("cannot read {}", f.display()))?,
        )
        .with_context(|| format!("{} is not UTF-8 text", f.display()))?,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the texts from stdin")?;
            s
        }
    };
    let lines: Vec<String> = content
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    anyhow::ensure!(
        !lines.is_empty(),
        "no text to run: give texts as arguments, --file F or lines on stdin"
    );
    Ok(lines)
}

/// Texts, pairs or question/context pairs, as the flags say.
fn inputs<'a>(args: &'a RunArgs, texts: &'a [String]) -> anyhow::Result<Vec<TextInput<'a>>> {
    if !args.question.is_empty() {
        let (q, c) = (&args.question, &args.context);
        let n = q.len().max(c.len());
        anyhow::ensure!(
            q.len() == c.len() || q.len() == 1 || c.len() == 1,
            "{} --question and {} --context: give one context per question, or one of either for all",
            q.len(),
            c.len()
        );
        return Ok((0..n)
            .map(|i| TextInput::Pair(&q[i.min(q.len() - 1)], &c[i.min(c.len() - 1)]))
            .collect());
    }
    match args.pair.len() {
        0 => Ok(texts.iter().map(|t| TextInput::Single(t)).collect()),
        1 => Ok(texts.iter().map(|t| TextInput::Pair(t, &args.pair[0])).collect()),
        n if n == texts.len() => Ok(texts
            .iter()
            .zip(&args.pair)
            .map(|(t, p)| TextInput::Pair(t, p))
            .collect()),
        n => anyhow::bail!(
            "{n} --pair for {} texts: give one for all, or one per text",
            texts.len()
        ),
    }
}

/// An input as the human-readable answer names it: quoted, long texts cut.
fn shown(input: &TextInput) -> String {
    let cut = |t: &str| -> String {
        const MOST: usize = 60;
        match t.char_indices().nth(MOST) {
            Some((at, _)) => format!("{:?}…", &t[..at]),
            None => format!("{t:?}"),
        }
    };
    match input {
        TextInput::Single(t) => cut(t),
        TextInput::Pair(a, b) => format!("{} + {}", cut(a), cut(b)),
    }
}

fn print_human(task: Task, inputs: &[TextInput], outputs: &Outputs) {
    println!("task  {}", task.name());
    match outputs {
        Outputs::Classes(all) => {
            for (input, labels) in inputs.iter().zip(all) {
                println!("{}", shown(input));
                for l in labels {
                    println!("  {:<24} {:.6}", l.label, l.score);
                }
            }
        }
        Outputs::Entities(all) => {
            for (input, groups) in inputs.iter().zip(all) {
                println!("{}", shown(input));
                if groups.is_empty() {
                    println!("  (no entities)");
                }
                for g in groups {
                    println!(
                        "  {:<8} {:.6}  {:?}  chars {}..{}",
                        g.entity_group, g.score, g.word, g.start, g.end
                    );
                }
            }
        }
        Outputs::Answers(all) => {
            for (input, a) in inputs.iter().zip(all) {
                println!("{}", shown(input));
                println!(
                    "  answer {:?}  score {:.6}  chars {}..{}",
                    a.answer, a.score, a.start, a.end
                );
            }
        }
        Outputs::Fills(all) => {
            for (input, masks) in inputs.iter().zip(all) {
                println!("{}", shown(input));
                for (m, fills) in masks.iter().enumerate() {
                    if masks.len() > 1 {
                        println!("  mask {}", m + 1);
                    }
                    for f in fills {
                        println!("  {:.6}  {:<16} {}", f.score, f.token_str, f.sequence);
                    }
                }
            }
        }
        Outputs::Embeddings(vectors) => {
            for (i, (input, v)) in inputs.iter().zip(vectors).enumerate() {
                let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
                println!(
                    "[{}] {}  dim {}  [{}, …]",
                    i + 1,
                    shown(input),
                    v.len(),
                    head.join(", ")
                );
            }
            if vectors.len() >= 2 {
                println!("cosine similarity");
                for (i, row) in bertc::run::embed::cosine_matrix(vectors).iter().enumerate() {
                    let cells: Vec<String> = row.iter().map(|c| format!("{c:7.4}")).collect();
                    println!("  [{}] {}", i + 1, cells.join(" "));
                }
            }
        }
    }
}
