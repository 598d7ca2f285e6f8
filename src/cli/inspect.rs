//! `bertc inspect`: what a model costs, without running it.

use std::process::ExitCode;

use bertc::cost::{graph_cost, Cost};
use bertc::quantize::Precision;
use serde::Serialize;

use super::group_digits;
use super::model_arg::{load, mb, positive, LoadOptions};

/// The sequence length figures are given at unless told.
const DEFAULT_SEQ: usize = 128;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// An ONNX file, a config.json path, a model folder, a preset name or a hub id org/name, in
    /// that order: an existing path first, then a preset, then the huggingface_hub cache
    /// (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub; downloaded into it when
    /// absent unless HF_HUB_OFFLINE=1).
    pub model: String,
    /// The revision of a hub id: a branch, a tag or a commit hash [default: main].
    #[arg(long)]
    pub revision: Option<String>,
    /// Sequence length the multiply-adds and activations are counted at
    /// (default 128, or the model's position table when that is shorter).
    #[arg(long)]
    pub seq: Option<usize>,
    /// Batch size of the activation estimate.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// The level a config is compiled at (ONNX files are taken as they are).
    #[command(flatten)]
    pub level: super::LevelArg,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct InspectReport<'a> {
    model: &'a str,
    source: &'a str,
    #[serde(flatten)]
    cost: &'a Cost,
    file_bytes: FileBytes,
}

/// The size of the file `compile` writes at the level, fp32 and int8
/// (portable target, dynamic scales): weights as stored plus the graph
/// itself. The graph matters where weights are few — ALBERT's twelve
/// layers share one set, and its int8 file is 2 % activation quantization.
#[derive(Serialize)]
struct FileBytes {
    fp32: usize,
    /// `None` for ONNX arguments (`optimize` reduces their precision).
    int8: Option<usize>,
}

/// Measures [`FileBytes`]: the int8 form is the compile's int8 stage run
/// over the placeholder weights (zeros quantize to zeros without being
/// written, so nothing is materialised; no accuracy gate: there are no
/// values to measure), and both graphs are sized without being encoded.
fn file_bytes(session: &bertc::Session, m: &super::model_arg::ModelArg) -> anyhow::Result<FileBytes> {
    let opts = bertc::onnx::ExportOptions::default();
    let fp32 = bertc::onnx::encoded_len(&m.graph, opts)?;
    if m.source == "onnx" {
        return Ok(FileBytes { fp32, int8: None });
    }
    let mut int8 = m.graph.clone();
    let precision = Precision::new(bertc::quantize::Form::Int8Dynamic);
    bertc::quantize::apply(session, &mut int8, &precision, bertc::passes::Target::Portable)?;
    Ok(FileBytes {
        fp32,
        int8: Some(bertc::onnx::encoded_len(&int8, opts)?),
    })
}

pub fn run(a: InspectArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    if let Some(seq) = a.seq {
        positive("--seq", &[seq])?;
    }
    positive("--batch", &[a.batch])?;
    // A config is built with placeholder weights: every figure comes from
    // the graph's shapes, so no weight is drawn (bert-large stays ~tens of MB).
    let opts = LoadOptions {
        level: a.level.level(),
        precision: &Precision::default(),
        shapes_only: true,
        revision: a.revision.as_deref(),
    };
    let m = load(session, &a.model, &opts)?;
    let seq = match (a.seq, bertc::runtime::max_sequence(&m.graph)) {
        (Some(seq), _) => {
            m.check_seqs(&[seq])?;
            seq
        }
        // The default, cut to a shorter position table (said, not refused:
        // nobody asked for 128).
        (None, Some(max)) if max < DEFAULT_SEQ => {
            eprintln!(
                "note: {}'s position table has {max} rows: figures at S = {max} (the default --seq is {DEFAULT_SEQ})",
                m.name
            );
            max
        }
        (None, _) => DEFAULT_SEQ,
    };
    let cost = graph_cost(&m.graph, a.batch, seq)?;
    let files = file_bytes(session, &m)?;
    if a.json {
        let report = InspectReport {
            model: &m.name,
            source: m.source,
            cost: &cost,
            file_bytes: files,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_cost(&m.name, &cost, &files);
    Ok(ExitCode::SUCCESS)
}

/// 1.23 G, 45.6 M, 7.8 k: three significant figures at any model size.
fn giga(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e9 => format!("{:.2} G", n / 1e9),
        _ if n >= 1e6 => format!("{:.1} M", n / 1e6),
        _ => format!("{:.1} k", n / 1e3),
    }
}

fn print_cost(name: &str, c: &Cost, files: &FileBytes) {
    let p = &c.parameters;
    let share = |n: usize| 100.0 * n as f64 / p.total.max(1) as f64;
    println!("{name}");
    println!("  parameters    {:>13}", group_digits(p.total));
    println!(
        "    embeddings  {:>13}  {:5.1} %",
        group_digits(p.embeddings),
        share(p.embeddings)
    );
    let encoder: usize = p.layers.iter().sum::<usize>() + p.final_norm;
    let per_layer = match p.layers.as_slice() {
        [] => String::new(),
        [first, rest @ ..] if rest.iter().all(|n| n == first) => {
            format!("{} layers x {}", p.layers.len(), group_digits(*first))
        }
        layers => layers
            .iter()
            .map(|&n| group_digits(n))
            .collect::<Vec<_>>()
            .join(" + "),
    };
    let per_layer = match p.final_norm {
        0 => per_layer,
        n => format!("{per_layer} + final norm {}", group_digits(n)),
    };
    println!(
        "    encoder     {:>13}  {:5.1} %{}",
        group_digits(encoder),
        share(encoder),
        if per_layer.is_empty() {
            String::new()
        } else {
            format!("  {per_layer}")
        }
    );
    println!(
        "    pooler      {:>13}  {:5.1} %",
        group_digits(p.pooler),
        share(p.pooler)
    );
    println!(
        "    heads       {:>13}  {:5.1} %",
        group_digits(p.heads),
        share(p.heads)
    );
    if p.unattributed > 0 {
        println!(
            "    unnamed     {:>13}  {:5.1} %  (weights whose names place them nowhere)",
            group_digits(p.unattributed),
            share(p.unattributed)
        );
    }
    let m = c.macs_per_sequence;
    println!(
        "  multiply-adds {} per sequence at S={} (linear {}, attention {}) = {}FLOP (2 per multiply-add)",
        giga(m.total),
        c.seq,
        giga(m.linear),
        giga(m.attention),
        giga(c.flops_per_sequence)
    );
    println!(
        "  activations   {} peak live at B={}, S={} (values freed after their last reader)",
        mb(c.activation_bytes),
        c.batch,
        c.seq
    );
    let w = c.weight_bytes;
    // The static form's inverse scales show only where they reach the
    // printed precision (models with tens-wide layers).
    let (int8, int8_static) = (mb(w.int8 as u64), mb(w.int8_static as u64));
    let int8 = match int8 == int8_static {
        true => int8,
        false => format!("{int8} (static {int8_static})"),
    };
    println!(
        "  weights       fp32 {}, fp16 {}, int8 {int8} (as stored: {})",
        mb(w.fp32 as u64),
        mb(w.fp16 as u64),
        mb(w.stored as u64)
    );
    let int8_file = files
        .int8
        .map_or(String::new(), |n| format!(", int8 {}", mb(n as u64)));
    println!(
        "  file          fp32 {}{int8_file} (as compile writes it: weights and graph)",
        mb(files.fp32 as u64)
    );
    let total: usize = c.op_histogram.values().sum();
    let ops: Vec<String> = c.op_histogram.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  ops           {total}: {}", ops.join(", "));
}
