//! Tokens per second of ONNX models on real text, as `bertc run --file`
//! feeds them: batches of `--batch` lines in input order (or sorted by
//! length with `--sorted`), each padded to its longest line. The models
//! take turns batch by batch (interleaved, so that a noisy neighbour
//! slows them alike), after one untimed pass over every batch (tract plans
//! once per input shape); tokens are the real ones (the attention mask's sum).
//! For padded vs packed graphs (`bertc compile --packed`).
//!
//! cargo run --example packed_throughput -- --tokenizer DIR --file LINES.txt
//!     [--batch 32] [--sorted] [--runtime tract|onnxruntime] [--threads 2] [--rounds 1] MODEL.onnx...

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bertc::runtime::{HostData, ModelSource, Runtime, RuntimeModel, RuntimeOptions};
use bertc::tokenize::{TextInput, TextTokenizer, Truncate};
use bertc::Session;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut tokenizer, mut file, mut batch, mut sorted) = (None, None, 32usize, false);
    let (mut runtime, mut threads, mut rounds, mut models) = (Runtime::Tract, 2usize, 1usize, Vec::new());
    while let Some(a) = args.next() {
        let mut value = || args.next().context("a flag without its value");
        match a.as_str() {
            "--tokenizer" => tokenizer = Some(PathBuf::from(value()?)),
            "--file" => file = Some(PathBuf::from(value()?)),
            "--batch" => batch = value()?.parse()?,
            "--sorted" => sorted = true,
            "--runtime" => runtime = Runtime::parse(&value()?).context("unknown runtime")?,
            "--threads" => threads = value()?.parse()?,
            "--rounds" => rounds = value()?.parse()?,
            _ => models.push(PathBuf::from(a)),
        }
    }
    let mut tok = TextTokenizer::from_folder(&tokenizer.context("--tokenizer")?, 512)?;
    let text = std::fs::read_to_string(file.context("--file")?)?;
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if sorted {
        let mut lengths = Vec::with_capacity(lines.len());
        for l in &lines {
            lengths.push(tok.encode(&[TextInput::Single(l)], Truncate::LongestFirst)?.seq);
        }
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by_key(|&i| lengths[i]);
        lines = order.into_iter().map(|i| lines[i]).collect();
    }
    let mut batches = Vec::new();
    let (mut real, mut padded) = (0usize, 0usize);
    for chunk in lines.chunks(batch) {
        let inputs: Vec<TextInput> = chunk.iter().map(|l| TextInput::Single(l)).collect();
        let encoded = tok.encode(&inputs, Truncate::LongestFirst)?;
        let tensors = encoded.inputs();
        if let Some(HostData::I64(mask)) = tensors.get("attention_mask").map(|t| &t.data) {
            real += mask.iter().filter(|&&m| m != 0).count();
            padded += mask.len();
        }
        batches.push(tensors);
    }
    let session = Session::new(threads)?;
    let opts = RuntimeOptions {
        threads,
        take_turns: models.len() > 1,
        one_plan: false,
    };
    let mut loaded = Vec::new();
    for m in &models {
        let mut model = RuntimeModel::load(&session, runtime, ModelSource::File(m), &opts)?;
        // Warm-up on every batch: tract plans once per input shape, and
        // that planning is not what is measured.
        for b in &batches {
            model.run(b)?;
        }
        loaded.push(model);
    }
    let mut times = vec![Duration::ZERO; models.len()];
    for _ in 0..rounds {
        for b in &batches {
            for (model, time) in loaded.iter_mut().zip(&mut times) {
                let feed = b
                    .iter()
                    .filter(|(k, _)| model.input_names().contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let start = Instant::now();
                model.run(&feed)?;
                *time += start.elapsed();
            }
        }
    }
    println!(
        "{} lines, {} batches of {batch} ({}), {real} real tokens of {padded} padded, {} runtime, {threads} threads",
        lines.len(),
        batches.len(),
        if sorted { "sorted by length" } else { "input order" },
        runtime.name()
    );
    for (m, t) in models.iter().zip(&times) {
        let secs = t.as_secs_f64() / rounds as f64;
        println!(
            "{:>10.0} tokens/s  {:>8.3} s  {}",
            real as f64 / secs,
            secs,
            m.display()
        );
    }
    Ok(())
}
