//! `bertc sweep`: inspect, compile and bench several configs and
//! precisions; writes a table sorted by latency (Markdown), the numbers
//! (JSON) and a latency-vs-parameters plot (SVG).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bertc::atomic_write::write_atomic;
use bertc::bench::{BenchOptions, CellResult, MachinePeak};
use bertc::plot::{latency_vs_parameters_svg, PlotPoint};
use serde::Serialize;

use super::bench::Measure;
use super::group_digits;
use super::precision::PrecisionArg as Precision;

/// Swept when no model is named: Google's miniatures, MiniLM and BERT-base.
pub const DEFAULT_MODELS: &[&str] = &[
    "bert-tiny",
    "bert-mini",
    "bert-small",
    "bert-medium",
    "all-MiniLM-L6-v2",
    "bert-base-uncased",
];

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Presets or config.json paths (default: bert-tiny, bert-mini, bert-small, bert-medium,
    /// all-MiniLM-L6-v2, bert-base-uncased).
    pub models: Vec<String>,
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub seq: Vec<usize>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Precisions, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
    pub precision: Vec<Precision>,
    /// Threads of tract (default: all cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Timed runs per model and cell.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Untimed runs per model and cell.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// The level every config is compiled at.
    #[command(flatten)]
    pub level: super::LevelArg,
    /// Report path without extension: writes REPORT.md, REPORT.json and REPORT.svg.
    #[arg(short, long, default_value = "sweep")]
    pub output: PathBuf,
    /// Skip measuring the machine's fp32 peak.
    #[arg(long)]
    pub no_peak: bool,
}

#[derive(Serialize)]
struct SweepRow {
    precision: Precision,
    parameters: usize,
    weight_bytes: usize,
    /// fp16 and int8 rows: the accuracy gate's worst-row cosine against
    /// the f32 graph, next to the latency it buys (`null` for fp32).
    worst_row_cosine: Option<f64>,
    #[serde(flatten)]
    result: CellResult,
}

#[derive(Serialize)]
struct SweepReport {
    runtime: &'static str,
    /// The CPU the numbers come from (they hold for it only).
    cpu: String,
    threads: usize,
    runs: usize,
    warmup: usize,
    level: u8,
    machine_peak: Option<MachinePeak>,
    /// Sorted by median latency, fastest first.
    rows: Vec<SweepRow>,
}

pub fn run(a: SweepArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let models: Vec<String> = match a.models.is_empty() {
        true => DEFAULT_MODELS.iter().map(|s| s.to_string()).collect(),
        false => a.models.clone(),
    };
    // Refuse a report path that cannot be written before minutes of benchmarks, not after.
    let stem = a.output.with_extension("");
    let dir = match stem.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    anyhow::ensure!(
        dir.is_dir(),
        "-o {}: the directory {} does not exist",
        a.output.display(),
        dir.display()
    );
    let inputs: Vec<(&str, &Path)> = models.iter().map(|m| ("model", Path::new(m.as_str()))).collect();
    for ext in ["md", "json", "svg"] {
        bertc::atomic_write::check_output(&with_ext(&stem, ext), &inputs)?;
    }
    // Each precision once, in the order first given.
    let mut precisions: Vec<Precision> = Vec::new();
    for p in &a.precision {
        if !precisions.contains(p) {
            precisions.push(*p);
        }
    }
    let mut entries = Vec::new();
    for model in &models {
        for &p in &precisions {
            entries.push(((model.clone(), p.precision()), p));
        }
    }
    let opts = BenchOptions {
        batches: a.batch.clone(),
        seqs: a.seq.clone(),
        runs: a.runs,
        warmup: a.warmup,
    };
    let mut measure = Measure::new(opts, session, !a.no_peak)?;
    // Every configuration in one interleaved run: a busy moment slows them
    // all alike instead of whichever happened to run then.
    let loads: Vec<_> = entries.iter().map(|(e, _)| e.clone()).collect();
    let (summaries, results) = measure.run(&loads, a.level.level())?;
    let rows: Vec<SweepRow> = results
        .into_iter()
        .enumerate()
        .map(|(i, result)| {
            let k = i % entries.len();
            SweepRow {
                precision: entries[k].1,
                parameters: summaries[k].parameters,
                weight_bytes: summaries[k].weight_bytes,
                worst_row_cosine: summaries[k].worst_row_cosine,
                result,
            }
        })
        .collect();
    let mut rows = rows;
    // The best peak seen over the whole sweep judges every row alike.
    if let Some(peak) = measure.peak {
        for row in &mut rows {
            row.result.fraction_of_peak = Some(row.result.gflops / peak.gflops);
        }
    }
    rows.sort_by(|x, y| x.result.latency.p50_ms.total_cmp(&y.result.latency.p50_ms));
    let report = SweepReport {
        runtime: "tract",
        cpu: bertc::quantize::kernel::cpu_model(),
        threads: session.threads(),
        runs: a.runs,
        warmup: a.warmup,
        level: a.level.level().number(),
        machine_peak: measure.peak,
        rows,
    };
    let (first_b, first_s) = (a.batch[0], a.seq[0]);
    let title = format!(
        "bertc sweep: tract -O{}, {} threads, B={first_b}, S={first_s}, {}",
        report.level, report.threads, report.cpu
    );
    let points: Vec<PlotPoint> = report
        .rows
        .iter()
        .filter(|r| (r.result.batch, r.result.seq) == (first_b, first_s))
        .map(|r| PlotPoint {
            label: r.result.model.clone(),
            series: r.precision.name().into(),
            parameters_millions: r.parameters as f64 / 1e6,
            latency_ms: r.result.latency.p50_ms,
        })
        .collect();
    let write = |ext: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = with_ext(&stem, ext);
        write_atomic(&path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    let md = write("md", &markdown(&report, &title))?;
    let json = write("json", &(serde_json::to_string_pretty(&report)? + "\n"))?;
    let svg = write("svg", &latency_vs_parameters_svg(&points, &title))?;
    print!("{}", markdown(&report, &title));
    println!("\nwrote {}, {}, {}", md.display(), json.display(), svg.display());
    Ok(ExitCode::SUCCESS)
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn markdown(r: &SweepReport, title: &str) -> String {
    let mut out = format!("## {title}\n\n");
    if let Some(p) = r.machine_peak {
        out += &format!(
            "Machine fp32 peak: {:.1} GFLOP/s (tract f32 MatMul {n}x{n}x{n}, {} threads). ",
            p.gflops,
            r.threads,
            n = p.n
        );
    }
    out += &format!(
        "{} timed runs after {} warm-up per row; FLOPs = 2 x multiply-adds of the matrix products.\n\n",
        r.runs, r.warmup
    );
    out += "| model | precision | parameters | B | S | GFLOP / seq | p50 ms | p90 ms | worst-row cosine | tokens/s | GFLOP/s | % of peak | weights MB |\n";
    out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for row in &r.rows {
        let c = &row.result;
        out += &format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.1} | {} | {:.1} |\n",
            c.model,
            row.precision.name(),
            group_digits(row.parameters),
            c.batch,
            c.seq,
            c.flops_per_sequence as f64 / 1e9,
            c.latency.p50_ms,
            c.latency.p90_ms,
            row.worst_row_cosine
                .map_or_else(|| "-".into(), |c| format!("{c:.6}")),
            c.tokens_per_s,
            c.gflops,
            c.fraction_of_peak
                .map(|f| format!("{:.0} %", 100.0 * f))
                .unwrap_or_else(|| "-".into()),
            row.weight_bytes as f64 / 1e6
        );
    }
    out
}
