//! Interleaved latency measurement: for each (batch, sequence) cell, every
//! model — in tract, onnxruntime or OpenVINO — gets its inputs converted
//! (and in tract a plan for those fixed shapes) and warm-up runs, then the
//! timed runs alternate A B A B … so that a noisy neighbour or a frequency
//! change hits every model alike.

use std::time::Instant;

use serde::Serialize;

use super::memory::{peak_rss_bytes, reset_peak_rss};
use super::stats::LatencyStats;
use crate::cost::{graph_cost, Cost};
use crate::error::Error;
use crate::ir::Graph;
use crate::runtime::{inputs_for, NamedTensors, RuntimeModel, TractSession};
use crate::session::Session;

/// The grid and repetition counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    pub batches: Vec<usize>,
    pub seqs: Vec<usize>,
    pub runs: usize,
    pub warmup: usize,
}

impl BenchOptions {
    pub fn cells(&self) -> Vec<(usize, usize)> {
        self.batches
            .iter()
            .flat_map(|&b| self.seqs.iter().map(move |&s| (b, s)))
            .collect()
    }
}

/// A model ready to benchmark: loaded in its runtime, with its inputs and
/// cost per cell computed up front so that its IR graph (and weights) can
/// be dropped before anything is timed.
pub struct BenchModel {
    pub name: String,
    model: RuntimeModel,
    cells: Vec<PreparedCell>,
}

struct PreparedCell {
    inputs: NamedTensors,
    cost: Cost,
}

impl BenchModel {
    /// Loads ONNX `bytes` whose IR form is `graph` (for inputs and cost),
    /// to run in tract on `session`'s threads.
    pub fn new(
        session: &Session,
        name: &str,
        graph: &Graph,
        bytes: &[u8],
        opts: &BenchOptions,
    ) -> Result<BenchModel, Error> {
        let model = RuntimeModel::tract(TractSession::from_bytes(session, bytes)?);
        BenchModel::with_model(name, graph, model, opts)
    }

    /// A model already loaded in a runtime (e.g. from its file, with
    /// external data) whose IR form is `graph`.
    pub fn with_model(
        name: &str,
        graph: &Graph,
        model: RuntimeModel,
        opts: &BenchOptions,
    ) -> Result<BenchModel, Error> {
        let cells = opts
            .cells()
            .into_iter()
            .map(|(batch, seq)| {
                // Sized before anything is allocated: a cell too large for
                // the machine is an error, not an abort.
                let cost = graph_cost(graph, batch, seq)?;
                check_fits_memory(graph, &cost, batch, seq)?;
                let inputs = inputs_for(graph, batch, seq);
                crate::runtime::check_inputs_fit(
                    graph,
                    &inputs,
                    &format!("bench inputs (B={batch}, S={seq})"),
                )
                .map_err(crate::runtime::RuntimeError::from)?;
                Ok(PreparedCell { inputs, cost })
            })
            .collect::<Result<_, Error>>()?;
        Ok(BenchModel {
            name: name.to_string(),
            model,
            cells,
        })
    }

    /// The runtime it runs in.
    pub fn runtime(&self) -> crate::runtime::Runtime {
        self.model.runtime()
    }

    /// The cost at the first cell (parameters and weights are the same at every cell).
    pub fn cost(&self) -> &Cost {
        &self.cells[0].cost
    }
}

/// Refuses a (batch, seq) cell whose inputs and peak activations (the cost
/// model's) exceed the machine's memory.
fn check_fits_memory(graph: &Graph, cost: &Cost, batch: usize, seq: usize) -> Result<(), Error> {
    let Some(limit) = super::memory::machine_memory_bytes() else {
        return Ok(());
    };
    // Every input is at most 8 bytes an element, B·S elements (ids, mask, types).
    let inputs = (graph.inputs().len() as u64)
        .saturating_mul(batch as u64)
        .saturating_mul(seq as u64)
        .saturating_mul(8);
    let needed = cost.activation_bytes.saturating_add(inputs);
    if needed <= limit {
        return Ok(());
    }
    let gb = |b: u64| b as f64 / 1e9;
    Err(crate::runtime::RuntimeError::TooLarge {
        what: format!("bench cell B={batch}, S={seq}"),
        needed_gb: gb(needed),
        limit_gb: gb(limit),
    }
    .into())
}

/// What one model did in one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellResult {
    pub model: String,
    /// The runtime it ran in: tract, onnxruntime or openvino.
    pub runtime: &'static str,
    pub batch: usize,
    pub seq: usize,
    #[serde(flatten)]
    pub latency: LatencyStats,
    /// batch / p50.
    pub sequences_per_s: f64,
    /// batch · seq / p50 (padding positions included: the model computes them).
    pub tokens_per_s: f64,
    pub flops_per_sequence: u64,
    /// batch · flops_per_sequence / p50, in 1e9 FLOP/s.
    pub gflops: f64,
    /// gflops / the machine's measured fp32 peak, when it was measured
    /// (see [`apply_peak`]).
    pub fraction_of_peak: Option<f64>,
    /// p50 / the p50 of the first model in the same runtime and cell.
    pub ratio_to_first: f64,
    /// The process's peak resident memory (VmHWM) by the end of this cell.
    pub peak_rss_bytes: Option<u64>,
    /// "cell": the peak was reset before the cell, so it covers the models
    /// loaded and this cell's plans and runs; "process": since start-up.
    pub peak_rss_scope: &'static str,
}

/// Progress events, for a progress bar.
pub enum Progress<'a> {
    /// The runtime is taking the inputs of these shapes (tract: optimizing
    /// a plan for them).
    Planning {
        model: &'a str,
        batch: usize,
        seq: usize,
    },
    /// One warm-up or timed run finished.
    Ran,
}

/// Runs every cell for every model, interleaved; results in cell order,
/// models in the order given within a cell.
pub fn run_interleaved(
    models: &mut [BenchModel],
    opts: &BenchOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<CellResult>, Error> {
    let mut results = Vec::new();
    for (cell, (batch, seq)) in opts.cells().into_iter().enumerate() {
        let scope = if reset_peak_rss() { "cell" } else { "process" };
        for m in models.iter_mut() {
            progress(Progress::Planning {
                model: &m.name,
                batch,
                seq,
            });
            m.model.prepare(&m.cells[cell].inputs)?;
            for _ in 0..opts.warmup {
                m.model.run_prepared()?;
                progress(Progress::Ran);
            }
        }
        let mut times = vec![Vec::with_capacity(opts.runs); models.len()];
        for _ in 0..opts.runs {
            for (m, t) in models.iter_mut().zip(times.iter_mut()) {
                let start = Instant::now();
                m.model.run_prepared()?;
                t.push(start.elapsed().as_secs_f64() * 1e3);
                progress(Progress::Ran);
            }
        }
        let peak_rss = peak_rss_bytes();
        let mut first_p50 = std::collections::HashMap::new();
        for (m, t) in models.iter_mut().zip(&times) {
            // A tract plan holds tract's packed copy of the weights: free
            // it before the next cell plans its own.
            m.model.forget_prepared();
            let Some(latency) = LatencyStats::of(t) else {
                continue;
            };
            let p50_s = latency.p50_ms / 1e3;
            let cost = &m.cells[cell].cost;
            let gflops = (batch as u64 * cost.flops_per_sequence) as f64 / p50_s / 1e9;
            let runtime = m.model.runtime().name();
            let first = *first_p50.entry(runtime).or_insert(latency.p50_ms);
            results.push(CellResult {
                model: m.name.clone(),
                runtime,
                batch,
                seq,
                latency,
                sequences_per_s: batch as f64 / p50_s,
                tokens_per_s: (batch * seq) as f64 / p50_s,
                flops_per_sequence: cost.flops_per_sequence,
                gflops,
                fraction_of_peak: None,
                ratio_to_first: latency.p50_ms / first,
                peak_rss_bytes: peak_rss,
                peak_rss_scope: scope,
            });
        }
    }
    Ok(results)
}

/// Fills in every result's fraction of the machine's peak.
pub fn apply_peak(results: &mut [CellResult], peak_gflops: f64) {
    for r in results {
        r.fraction_of_peak = Some(r.gflops / peak_gflops);
    }
}
