//! `bertc run`: parses the texts and flags, calls the library's pipeline
//! for the model's task ([`bertc::run`]) window by window, and writes its
//! answers as each window is done.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bertc::run::batch::{DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_TOKENS};
use bertc::run::embed::{Similarity, SimilarityDocument, MAX_SIMILARITY_INPUTS};
use bertc::run::form::FormChoice;
use bertc::run::lines::{LineWindows, WINDOW_BYTES, WINDOW_LINES};
use bertc::run::{
    load, Aggregation, Answered, BatchLimits, Cut, Outputs, RunOptions, Task, TaskOptions, TopK,
    ZeroShotOptions,
};
use bertc::tokenize::TextInput;

#[derive(clap::Args)]
pub struct RunArgs {
    /// An export folder (model.onnx + config.json + tokenizer files), a model folder (compiled in
    /// memory), an .onnx file (with --tokenizer) or a hub id org/name: an existing path first,
    /// then the huggingface_hub cache (HF_HUB_CACHE, else HF_HOME/hub, else
    /// ~/.cache/huggingface/hub), downloaded into it when absent unless HF_HUB_OFFLINE=1.
    model: PathBuf,
    /// The revision of a hub id: a branch, a tag or a commit hash [default: main].
    #[arg(long)]
    revision: Option<String>,
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
    /// Zero-shot classification with an NLI model, as transformers' zero-shot-classification
    /// pipeline: the candidate labels, comma-separated (each text is scored against every one).
    #[arg(long, value_name = "A,B,C", conflicts_with_all = ["pair", "question"])]
    candidate_labels: Option<String>,
    /// Zero-shot: the hypothesis a label is put into, `{}` where it goes [default: "This example
    /// is {}."].
    #[arg(long, value_name = "TEMPLATE", requires = "candidate_labels")]
    hypothesis_template: Option<String>,
    /// Zero-shot: score each label on its own (entailment against contradiction) instead of one
    /// softmax across the labels.
    #[arg(long, requires = "candidate_labels")]
    multi_label: bool,
    /// tokenizer.json, spm.model, vocab.txt or their folder (required for an .onnx file).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// How many answers per input, as the pipelines' `top_k`: text-classification's best labels
    /// (default 1; `all` for every label), fill-mask's tokens per mask (default 5),
    /// question-answering's spans (default 1).
    #[arg(long, value_name = "N|all")]
    top_k: Option<TopK>,
    /// token-classification: none (every token), simple (neighbouring tokens of one tag), first,
    /// average or max (whole words, labelled by their first token, mean scores or surest token)
    /// [default: simple].
    #[arg(long, value_name = "STRATEGY")]
    aggregation_strategy: Option<Aggregation>,
    /// token-classification: read a text longer than the model in windows overlapping by N tokens
    /// (else it is cut at the model's limit, with a warning).
    #[arg(long, value_name = "N")]
    stride: Option<usize>,
    /// question-answering: window length in tokens [default: min(384, the model's limit)].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_seq_len: Option<usize>,
    /// question-answering: overlap of a long context's windows [default: min(max-seq-len / 2, 128)].
    #[arg(long, value_name = "N")]
    doc_stride: Option<usize>,
    /// question-answering: longest answer in tokens [default: 15].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_answer_len: Option<usize>,
    /// question-answering: also offer the empty answer ("no answer in this context").
    #[arg(long)]
    handle_impossible_answer: bool,
    /// Threads for the runtime (default: all cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Where the model runs: tract (built in), onnxruntime or openvino (their PyPI wheels' shared
    /// libraries, or BERTC_ONNXRUNTIME_LIB / BERTC_OPENVINO_LIB; OpenVINO at f32 precision).
    #[arg(long, default_value = "tract", value_parser = super::parse_runtime)]
    runtime: bertc::runtime::Runtime,
    /// An export folder with several forms (bertc_export.json): the precision of the form to load
    /// (default: model.onnx's). Of the forms at that precision the runtime can load, its own
    /// target's is taken, then portable, then the first listed; the file used is named on stderr.
    #[arg(long, value_enum)]
    precision: Option<super::precision::PrecisionArg>,
    /// The model file of the export folder to load (e.g. model_onnxruntime_int8.onnx) instead of
    /// the one chosen for the runtime.
    #[arg(long, value_name = "NAME", conflicts_with = "precision")]
    model_file: Option<String>,
    /// Print one JSON document (the structure of transformers' pipeline output).
    #[arg(long, conflicts_with = "jsonl")]
    json: bool,
    /// Print JSON Lines: one object per input, in input order, written as each window of inputs
    /// is done, so memory stays bounded for any input ({"embedding": [...]} for embeddings,
    /// else {"output": ...} as --json has it per input).
    #[arg(long)]
    jsonl: bool,
    /// sentence-similarity: also print the cosine similarity matrix of the inputs (at most
    /// 2,000: it grows as N²).
    #[arg(long, conflicts_with = "jsonl")]
    similarity: bool,
    /// Padded tokens per batch (rows × the batch's longest row): inputs are sorted by length and
    /// cut into batches under this budget.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_TOKENS, value_parser = at_least_one)]
    max_batch_tokens: usize,
    /// Rows per batch at most.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_ROWS, value_parser = at_least_one)]
    max_batch_rows: usize,
}

pub(super) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// How `run` and `serve` load their model: the tokenizer, runtime, batch
/// limits (padded tokens, rows) and form their flags name.
pub(super) fn run_options(
    tokenizer: &Option<PathBuf>,
    runtime: bertc::runtime::Runtime,
    (max_tokens, max_rows): (usize, usize),
    model_file: &Option<String>,
    precision: Option<super::precision::PrecisionArg>,
) -> RunOptions {
    RunOptions {
        tokenizer: tokenizer.clone(),
        runtime,
        batch: BatchLimits { max_tokens, max_rows },
        form: FormChoice {
            model_file: model_file.clone(),
            precision: precision.map(|p| p.name().to_string()),
        },
        one_plan: false,
    }
}

/// Inputs owned by their window: a text and its pair (a cross-encoder's
/// second text, a question's context).
type Window = Vec<(String, Option<String>)>;

fn as_input((text, pair): &(String, Option<String>)) -> TextInput<'_> {
    match pair {
        Some(p) => TextInput::Pair(text, p),
        None => TextInput::Single(text),
    }
}

pub fn run(args: RunArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let mut windows = windows(&args)?.peekable();
    if windows.peek().is_none() {
        anyhow::bail!("no text to run: give texts as arguments, --file F or lines on stdin");
    }
    // The matrix needs every input at once: read them all, and refuse
    // before any work when they are too many.
    let mut windows: Box<dyn Iterator<Item = anyhow::Result<Window>>> = if args.similarity {
        Box::new(std::iter::once(Ok(whole_for_similarity(windows)?)))
    } else {
        Box::new(windows)
    };
    let opts = run_options(
        &args.tokenizer,
        args.runtime,
        (args.max_batch_tokens, args.max_batch_rows),
        &args.model_file,
        args.precision,
    );
    // Checked before the model loads: a typo costs no compile.
    let zero_shot = match &args.candidate_labels {
        Some(labels) => Some(ZeroShotOptions::from_flags(
            labels,
            args.hypothesis_template.as_deref(),
            args.multi_label,
        )?),
        None => None,
    };
    let located = bertc::locate::locate_path(&args.model, args.revision.as_deref())?;
    let mut model =
        load(session, &located, &opts).with_context(|| format!("cannot run {}", args.model.display()))?;
    if let Some(options) = &zero_shot {
        model
            .zero_shot(options)
            .with_context(|| format!("cannot run {}", args.model.display()))?;
    }
    // On stderr, whatever the output format: stdout stays the answers.
    if let Some(note) = model.file.as_ref().and_then(|f| f.note(args.runtime)) {
        eprintln!("{note}");
    }
    anyhow::ensure!(
        !args.similarity || model.task == Task::SentenceSimilarity,
        "--similarity compares sentence embeddings; this model answers {}",
        model.task.name()
    );
    let bar = super::progress::lines_bar(lines_total(&args));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let options = task_options(&args, model.task)?;
    let mut cuts = Cuts::default();
    let mut kept: Option<Outputs> = None;
    let mut done = 0;
    if !args.json && !args.jsonl {
        writeln!(out, "task  {}", model.task.name())?;
    }
    for window in windows.by_ref() {
        let window = window?;
        let inputs: Vec<TextInput> = window.iter().map(as_input).collect();
        let n = inputs.len();
        let Answered { outputs, cut } = model
            .run_texts(&inputs, &options, &mut |p| {
                bar.set_position((done + n * p.rows_done / p.rows.max(1)) as u64)
            })
            .map_err(|e| e.after_inputs(done))?;
        for c in &cut {
            if cuts.shown < CUTS_SHOWN && model.task != Task::SentenceSimilarity {
                bar.suspend(|| eprintln!("warning: {}", cut_warning(c, done, model.task)));
                cuts.shown += 1;
            }
            cuts.tokens = c.tokens;
        }
        cuts.all += cut.len();
        if args.jsonl {
            outputs.write_json_lines(&mut out)?;
        } else if !args.json {
            print_human(&mut out, &inputs, &outputs, done)?;
        }
        // Flushed per window: a reader of a long stream sees answers as they come.
        out.flush()?;
        done += n;
        if args.json || args.similarity {
            match &mut kept {
                Some(all) => all.append(outputs),
                None => kept = Some(outputs),
            }
        }
    }
    bar.finish_and_clear();
    if cuts.all > cuts.shown {
        let more = match cuts.shown {
            0 => "",
            _ => " more",
        };
        eprintln!(
            "warning: {}{more} of {done} inputs were longer than the model reads and were cut at {} tokens{}",
            cuts.all - cuts.shown,
            cuts.tokens,
            match model.task {
                Task::SentenceSimilarity => " (sentence-transformers cuts them the same way)",
                _ => "",
            }
        );
    }
    match kept {
        Some(Outputs::Embeddings(vectors)) if args.similarity => {
            if args.json {
                serde_json::to_writer_pretty(&mut out, &SimilarityDocument::new(&vectors))?;
                writeln!(out)?;
            } else {
                print_similarity(&mut out, &vectors)?;
            }
        }
        Some(all) if args.json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&all.to_json(model.task))?)?;
        }
        _ => {}
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The inputs, a window at a time: the arguments (one window), else
/// --file, else stdin, [`WINDOW_LINES`] lines a window; questions with
/// their contexts (one window).
fn windows(args: &RunArgs) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Window>> + '_>> {
    if !args.question.is_empty() {
        return Ok(Box::new(std::iter::once(questions(args))));
    }
    let texts: Box<dyn Iterator<Item = anyhow::Result<Vec<String>>>> = if !args.texts.is_empty() {
        Box::new(std::iter::once(Ok(args.texts.clone())))
    } else {
        let (reader, name): (Box<dyn BufRead>, String) = match &args.file {
            Some(f) => {
                bertc::input_file::require_regular(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let file = std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
                (Box::new(BufReader::new(file)), f.display().to_string())
            }
            None => (Box::new(std::io::stdin().lock()), "stdin".to_string()),
        };
        Box::new(
            LineWindows::new(reader, WINDOW_LINES, WINDOW_BYTES)
                .map(move |w| w.with_context(|| format!("cannot read the texts from {name}"))),
        )
    };
    Ok(match args.pair.as_slice() {
        [] => Box::new(texts.map(|w| w.map(|w| w.into_iter().map(|t| (t, None)).collect()))),
        [pair] => {
            Box::new(texts.map(move |w| w.map(|w| w.into_iter().map(|t| (t, Some(pair.clone()))).collect())))
        }
        // One pair per text: every text must be known to match them, and
        // they are few (the pairs are arguments).
        pairs => {
            let (mut all, mut texts) = (vec![], texts.peekable());
            while let Some(w) = texts.next() {
                all.extend(w?);
                if all.len() > pairs.len() && texts.peek().is_some() {
                    anyhow::bail!(
                        "{} --pair for more than {} texts: give one for all, or one per text",
                        pairs.len(),
                        all.len()
                    );
                }
            }
            anyhow::ensure!(
                all.len() == pairs.len(),
                "{} --pair for {} texts: give one for all, or one per text",
                pairs.len(),
                all.len()
            );
            Box::new(std::iter::once(Ok(all
                .into_iter()
                .zip(pairs.iter().cloned().map(Some))
                .collect())))
        }
    })
}

/// Question/context pairs, as the flags say.
fn questions(args: &RunArgs) -> anyhow::Result<Window> {
    let (q, c) = (&args.question, &args.context);
    anyhow::ensure!(
        q.len() == c.len() || q.len() == 1 || c.len() == 1,
        "{} --question and {} --context: give one context per question, or one of either for all",
        q.len(),
        c.len()
    );
    let n = q.len().max(c.len());
    Ok((0..n)
        .map(|i| (q[i.min(q.len() - 1)].clone(), Some(c[i.min(c.len() - 1)].clone())))
        .collect())
}

/// Every window as one, refused past [`MAX_SIMILARITY_INPUTS`] (reading
/// stops there: an endless stdin is not held).
fn whole_for_similarity(windows: impl Iterator<Item = anyhow::Result<Window>>) -> anyhow::Result<Window> {
    let mut all = vec![];
    for w in windows {
        all.extend(w?);
        anyhow::ensure!(
            all.len() <= MAX_SIMILARITY_INPUTS,
            "--similarity takes at most {MAX_SIMILARITY_INPUTS} inputs, and there are more: the matrix \
             has N² cells (4 million at {MAX_SIMILARITY_INPUTS}, ~90 MB of JSON); take the embeddings \
             with --jsonl and compare the pairs you need"
        );
    }
    Ok(all)
}

/// How many inputs the progress bar counts to: known for arguments and a
/// --file (counted in one pass when a terminal shows the bar), not for stdin.
fn lines_total(args: &RunArgs) -> Option<u64> {
    if !args.question.is_empty() {
        return Some(args.question.len().max(args.context.len()) as u64);
    }
    if !args.texts.is_empty() {
        return Some(args.texts.len() as u64);
    }
    let file = args.file.as_ref()?;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let mut reader = BufReader::new(std::fs::File::open(file).ok()?);
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let buf = reader.fill_buf().ok()?;
        let Some(&end) = buf.last() else { break };
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        last = end;
        let n = buf.len();
        reader.consume(n);
    }
    Some(lines + u64::from(last != b'\n'))
}

/// `s` in double quotes for a terminal: quotes, backslashes, control
/// characters and the bidirectional overrides (which could reorder what
/// the terminal shows) escaped; every other character — joiners in emoji
/// sequences, combining marks, any script — as it is. (Rust's `{:?}`
/// escapes U+200D, so 👨‍👩‍👧 printed as `👨\u{200d}👩\u{200d}👧`.)
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || bidi => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An input as the human-readable answer names it: quoted, long texts cut.
fn shown(input: &TextInput) -> String {
    let cut = |t: &str| -> String {
        const MOST: usize = 60;
        match t.char_indices().nth(MOST) {
            Some((at, _)) => format!("{}…", quoted(&t[..at])),
            None => quoted(t),
        }
    };
    match input {
        TextInput::Single(t) => cut(t),
        TextInput::Pair(a, b) => format!("{} + {}", cut(a), cut(b)),
    }
}

/// The human-readable answers of one window, whose first input comes
/// after `before` others.
fn print_human(
    out: &mut impl Write,
    inputs: &[TextInput],
    outputs: &Outputs,
    before: usize,
) -> std::io::Result<()> {
    match outputs {
        Outputs::Classes(all) => {
            for (input, labels) in inputs.iter().zip(all) {
                let scores = labels.iter().map(|l| (l.label.as_str(), l.score));
                print_scores(out, input, scores)?;
            }
        }
        Outputs::ZeroShot(all) => {
            for (input, a) in inputs.iter().zip(all) {
                let scores = a.labels.iter().map(String::as_str).zip(a.scores.iter().copied());
                print_scores(out, input, scores)?;
            }
        }
        Outputs::Entities(all) => {
            for (input, entities) in inputs.iter().zip(all) {
                writeln!(out, "{}", shown(input))?;
                if entities.is_empty() {
                    writeln!(out, "  (no entities)")?;
                }
                for e in entities {
                    let (start, end) = e.span();
                    writeln!(
                        out,
                        "  {:<8} {:.6}  {}  chars {start}..{end}",
                        e.label(),
                        e.score(),
                        quoted(e.word()),
                    )?;
                }
            }
        }
        Outputs::Answers(all) => {
            for (input, answers) in inputs.iter().zip(all) {
                writeln!(out, "{}", shown(input))?;
                if answers.is_empty() {
                    writeln!(out, "  (no answer in the context)")?;
                }
                for a in answers {
                    writeln!(
                        out,
                        "  answer {}  score {:.6}  chars {}..{}",
                        quoted(&a.answer),
                        a.score,
                        a.start,
                        a.end
                    )?;
                }
            }
        }
        Outputs::Fills(all) => {
            for (input, masks) in inputs.iter().zip(all) {
                writeln!(out, "{}", shown(input))?;
                for (m, fills) in masks.iter().enumerate() {
                    if masks.len() > 1 {
                        writeln!(out, "  mask {}", m + 1)?;
                    }
                    for f in fills {
                        writeln!(out, "  {:.6}  {:<16} {}", f.score, f.token_str, f.sequence)?;
                    }
                }
            }
        }
        Outputs::Embeddings(vectors) => {
            for (i, (input, v)) in inputs.iter().zip(vectors).enumerate() {
                let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
                writeln!(
                    out,
                    "[{}] {}  dim {}  [{}, …]",
                    before + i + 1,
                    shown(input),
                    v.len(),
                    head.join(", ")
                )?;
            }
        }
    }
    Ok(())
}

/// An input and its labels with their scores, one a line.
fn print_scores<'a>(
    out: &mut impl Write,
    input: &TextInput,
    scores: impl Iterator<Item = (&'a str, f64)>,
) -> std::io::Result<()> {
    writeln!(out, "{}", shown(input))?;
    for (label, score) in scores {
        writeln!(out, "  {label:<24} {score:.6}")?;
    }
    Ok(())
}

fn print_similarity(out: &mut impl Write, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    writeln!(out, "cosine similarity")?;
    for (i, row) in Similarity::new(vectors).rows().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| format!("{c:7.4}")).collect();
        writeln!(out, "  [{}] {}", i + 1, cells.join(" "))?;
    }
    Ok(())
}

/// The pipeline arguments given, each refused where the task has no use
/// for it (a flag that silently does nothing misleads).
fn task_options(args: &RunArgs, task: Task) -> anyhow::Result<TaskOptions> {
    let given = |flag: &str, set: bool, tasks: &[Task]| -> anyhow::Result<()> {
        anyhow::ensure!(
            !set || tasks.contains(&task),
            "{flag} is for {}; this model answers {}",
            tasks.iter().map(|t| t.name()).collect::<Vec<_>>().join(" and "),
            task.name()
        );
        Ok(())
    };
    use Task::*;
    given(
        "--top-k",
        args.top_k.is_some(),
        &[TextClassification, FillMask, QuestionAnswering],
    )?;
    given(
        "--aggregation-strategy",
        args.aggregation_strategy.is_some(),
        &[TokenClassification],
    )?;
    given("--stride", args.stride.is_some(), &[TokenClassification])?;
    for (flag, set) in [
        ("--max-seq-len", args.max_seq_len.is_some()),
        ("--doc-stride", args.doc_stride.is_some()),
        ("--max-answer-len", args.max_answer_len.is_some()),
        ("--handle-impossible-answer", args.handle_impossible_answer),
    ] {
        given(flag, set, &[QuestionAnswering])?;
    }
    Ok(TaskOptions {
        top_k: args.top_k,
        aggregation_strategy: args.aggregation_strategy.unwrap_or_default(),
        stride: args.stride,
        max_seq_len: args.max_seq_len,
        doc_stride: args.doc_stride,
        max_answer_len: args.max_answer_len,
        handle_impossible_answer: args.handle_impossible_answer,
    })
}

/// Inputs named one by one when cut; the rest are counted.
const CUTS_SHOWN: usize = 3;

/// The inputs of a run cut at the model's limit.
#[derive(Default)]
struct Cuts {
    all: usize,
    shown: usize,
    /// The model's limit (the tokens a cut input keeps).
    tokens: usize,
}

/// What the model did not read of an input, and how to read it all.
fn cut_warning(cut: &Cut, before: usize, task: Task) -> String {
    let read = match cut.chars {
        Some((read, all)) => format!(" (characters 0..{read} of {all})"),
        None => String::new(),
    };
    let hint = match task {
        Task::TokenClassification => "; --stride N reads all of it in overlapping windows",
        _ => "",
    };
    format!(
        "input {} is longer than the model reads: only its first {} tokens were used{read}{hint}",
        before + cut.input + 1,
        cut.tokens
    )
}
