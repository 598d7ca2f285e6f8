//! `bertc bench`: latency, throughput and achieved GFLOP/s over a batch ×
//! sequence grid in tract, onnxruntime or OpenVINO; several models (and
//! runtimes) run interleaved and compared.

use std::process::ExitCode;

use bertc::bench::{
    apply_peak, measure_fp32_peak, run_interleaved, BenchModel, BenchOptions, CellResult, MachinePeak,
};
use bertc::quantize::Precision;
use bertc::runtime::{Runtime, RuntimeOptions};
use bertc::Session;
use serde::Serialize;

use super::group_digits;
use super::model_arg::{load, mb, positive, LoadOptions};
use super::progress;
use super::LevelArg;

/// Side of the square f32 MatMul that measures the machine's peak.
pub const PEAK_MATMUL_N: usize = 1024;
/// At most this many timed products per peak measurement (about 1 s).
const PEAK_RUNS: usize = 50;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// ONNX files, config.json paths or preset names; several run interleaved.
    pub models: Vec<String>,
    /// More models to run interleaved with the first (A B A B …); ratios are to the first.
    #[arg(long, num_args = 1.., value_name = "MODEL")]
    pub compare: Vec<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub seq: Vec<usize>,
    /// Threads of each runtime (default: all cores).
    #[arg(long, value_parser = super::parse_threads)]
    pub threads: Option<usize>,
    /// Runtimes, comma-separated: tract (built in), onnxruntime, openvino (their PyPI wheels' shared
    /// libraries, or BERTC_ONNXRUNTIME_LIB / BERTC_OPENVINO_LIB). Every model runs in each,
    /// interleaved; OpenVINO at f32 inference precision.
    #[arg(long, value_delimiter = ',', default_value = "tract", value_parser = super::parse_runtime)]
    pub runtime: Vec<Runtime>,
    /// Timed runs per model and cell.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Untimed runs per model and cell, after planning.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// The level configs are compiled at (ONNX files run as they are).
    #[command(flatten)]
    pub level: LevelArg,
    /// Skip measuring the machine's fp32 peak (no fraction of peak then).
    #[arg(long)]
    pub no_peak: bool,
    /// Print one JSON object on stdout (the progress bar stays on stderr).
    #[arg(long)]
    pub json: bool,
}

/// The most timed (or warm-up) runs per model and cell.
pub const MAX_RUNS: usize = 1_000_000;

/// The `--json` document.
#[derive(Serialize)]
pub struct BenchReport {
    /// The runtimes, comma-separated (each result names its own).
    pub runtime: String,
    /// The shared library each runtime other than tract was loaded from.
    pub libraries: Vec<RuntimeLibrary>,
    pub threads: usize,
    pub runs: usize,
    pub warmup: usize,
    /// tract's best rate on one f32 MatMul, `null` with --no-peak.
    pub machine_peak: Option<MachinePeak>,
    pub models: Vec<ModelSummary>,
    pub results: Vec<CellResult>,
}

#[derive(Serialize)]
pub struct RuntimeLibrary {
    pub runtime: &'static str,
    pub path: Option<String>,
}

#[derive(Serialize)]
pub struct ModelSummary {
    pub name: String,
    pub source: &'static str,
    pub parameters: usize,
    pub weight_bytes: usize,
    /// A reduced-precision compile's worst-row cosine against f32.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_row_cosine: Option<f64>,
}

/// The measuring settings shared by bench and sweep.
pub struct Measure<'s> {
    pub opts: BenchOptions,
    /// What tract runs on (and how many threads the report says).
    pub session: &'s Session,
    pub peak: Option<MachinePeak>,
    /// Every model runs in each of these (tract unless set).
    pub runtimes: Vec<Runtime>,
}

impl<'s> Measure<'s> {
    /// Validates the grid and measures the peak on `session`'s threads.
    pub fn new(opts: BenchOptions, session: &'s Session, measure_peak: bool) -> anyhow::Result<Measure<'s>> {
        positive("--batch", &opts.batches)?;
        positive("--seq", &opts.seqs)?;
        anyhow::ensure!(opts.runs >= 1, "--runs must be at least 1");
        // Each run's time is kept: a count past this is a typo, and an
        // allocation of its size would abort the process.
        anyhow::ensure!(
            opts.runs <= MAX_RUNS && opts.warmup <= MAX_RUNS,
            "--runs and --warmup must be at most {MAX_RUNS} (got {} and {})",
            opts.runs,
            opts.warmup
        );
        let peak = match measure_peak {
            true => Some(measure_fp32_peak(session, PEAK_MATMUL_N, PEAK_RUNS)?),
            false => None,
        };
        Ok(Measure {
            opts,
            session,
            peak,
            runtimes: vec![Runtime::Tract],
        })
    }

    /// Loads (compiling configs through the pipeline, with its checks and
    /// accuracy gate) and measures `entries` interleaved, each in every
    /// runtime: every model runs once per round, so a busy moment slows
    /// all of them alike. The peak
    /// is measured again afterwards and the better figure kept, so that a
    /// busy moment at start-up does not make the models look faster than
    /// the machine. Results come per cell, by runtime, in the order of
    /// `entries` within a runtime.
    pub fn run(
        &mut self,
        entries: &[(String, Precision)],
        level: bertc::passes::Level,
    ) -> anyhow::Result<(Vec<ModelSummary>, Vec<CellResult>)> {
        let mut models = Vec::new();
        let mut summaries = Vec::new();
        let runtime_opts = RuntimeOptions {
            threads: self.session.threads(),
            // Sessions taking turns must not spin while idle.
            take_turns: entries.len() * self.runtimes.len() > 1,
            // A plan per measured shape, its kernels chosen for it.
            one_plan: false,
        };
        for (arg, precision) in entries {
            let opts = LoadOptions {
                level,
                precision,
                shapes_only: false,
                // Several models: a hub id names its own revision (`org/name@rev`).
                revision: None,
            };
            let m = load(self.session, arg, &opts)?;
            m.check_seqs(&self.opts.seqs)?;
            for &runtime in &self.runtimes {
                let loaded = m.load_in(self.session, runtime, &runtime_opts)?;
                models.push(BenchModel::with_model(&m.name, &m.graph, loaded, &self.opts)?);
            }
            if let Some(b) = models.last() {
                summaries.push(ModelSummary {
                    name: m.name.clone(),
                    source: m.source,
                    parameters: b.cost().parameters.total,
                    weight_bytes: b.cost().weight_bytes.stored,
                    worst_row_cosine: m.worst_row_cosine,
                });
            }
        }
        // Grouped by runtime, so that each runtime's ratios read down a column.
        models.sort_by_key(|b| self.runtimes.iter().position(|&r| r == b.runtime()));
        let per_cell = (self.opts.runs + self.opts.warmup) as u64 * models.len() as u64;
        let bar = progress::bar(per_cell * self.opts.cells().len() as u64);
        bar.set_prefix("bench");
        let results = run_interleaved(&mut models, &self.opts, &mut progress::report_to(&bar));
        bar.finish_and_clear();
        let mut results = results?;
        drop(models);
        if let Some(before) = self.peak {
            let after = measure_fp32_peak(self.session, PEAK_MATMUL_N, PEAK_RUNS)?;
            let best = before.best(after);
            self.peak = Some(best);
            apply_peak(&mut results, best.gflops);
        }
        Ok((summaries, results))
    }
}

pub fn run(a: BenchArgs, session: &Session) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = a.models.iter().chain(&a.compare).cloned().collect();
    anyhow::ensure!(
        !names.is_empty(),
        "give a model to bench: an ONNX file, a config.json or a preset (see `bertc presets`)"
    );
    let opts = BenchOptions {
        batches: a.batch.clone(),
        seqs: a.seq.clone(),
        runs: a.runs,
        warmup: a.warmup,
    };
    // Each runtime once, in the order asked.
    let mut runtimes: Vec<Runtime> = Vec::new();
    for &r in &a.runtime {
        if !runtimes.contains(&r) {
            runtimes.push(r);
        }
    }
    let mut measure = Measure::new(opts, session, !a.no_peak)?;
    measure.runtimes = runtimes.clone();
    let entries: Vec<(String, Precision)> = names.into_iter().map(|n| (n, Precision::default())).collect();
    let (models, results) = measure.run(&entries, a.level.level())?;
    let report = BenchReport {
        runtime: runtimes.iter().map(|r| r.name()).collect::<Vec<_>>().join(","),
        libraries: runtimes
            .iter()
            .filter(|&&r| r != Runtime::Tract)
            .map(|&r| RuntimeLibrary {
                runtime: r.name(),
                path: r.loaded_library().map(|p| p.display().to_string()),
            })
            .collect(),
        threads: session.threads(),
        runs: a.runs,
        warmup: a.warmup,
        machine_peak: measure.peak,
        models,
        results,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &BenchReport) {
    // Which CPU and int8 kernel these numbers come from (issue 15: honest per CPU).
    println!("{}", bertc::quantize::kernel::notice().0);
    println!(
        "{}, {} threads, {} timed runs after {} warm-up per cell{}",
        r.runtime,
        r.threads,
        r.runs,
        r.warmup,
        if r.models.len() > 1 || r.runtime.contains(',') {
            ", models interleaved"
        } else {
            ""
        }
    );
    for l in &r.libraries {
        let precision = match l.runtime {
            "openvino" => ", f32 inference precision",
            _ => "",
        };
        println!("{}: {}{precision}", l.runtime, l.path.as_deref().unwrap_or("-"));
    }
    if let Some(p) = r.machine_peak {
        println!(
            "machine fp32 peak: {:.1} GFLOP/s (best of {} f32 MatMuls {n}x{n}x{n} in tract)",
            p.gflops,
            p.runs,
            n = p.n
        );
    }
    for m in &r.models {
        println!(
            "model {}: {} parameters, {} of weights",
            m.name,
            group_digits(m.parameters),
            mb(m.weight_bytes as u64)
        );
    }
    println!(
        "{:>4} {:>5}  {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>6} {:>10} {:>6}  model",
        "B", "S", "p50 ms", "p90 ms", "p99 ms", "seq/s", "tokens/s", "GFLOP/s", "%peak", "peak RSS", "ratio"
    );
    let several = r.runtime.contains(',');
    for c in &r.results {
        let model = match several {
            true => format!("{} ({})", c.model, c.runtime),
            false => c.model.clone(),
        };
        println!(
            "{:>4} {:>5}  {:>9.2} {:>9.2} {:>9.2} {:>9.1} {:>10.0} {:>8.1} {:>6} {:>10} {:>5.2}x  {}",
            c.batch,
            c.seq,
            c.latency.p50_ms,
            c.latency.p90_ms,
            c.latency.p99_ms,
            c.sequences_per_s,
            c.tokens_per_s,
            c.gflops,
            c.fraction_of_peak
                .map(|f| format!("{:.0} %", 100.0 * f))
                .unwrap_or_else(|| "-".into()),
            c.peak_rss_bytes.map(mb).unwrap_or_else(|| "-".into()),
            c.ratio_to_first,
            model
        );
    }
    if let Some(c) = r.results.first() {
        println!(
            "peak RSS: the whole process's resident high-water mark ({}), weights included",
            if c.peak_rss_scope == "cell" {
                "reset before each cell"
            } else {
                "since start-up"
            }
        );
    }
}
