//! Benchmarks: interleaved latency over a batch × sequence grid in tract,
//! onnxruntime or OpenVINO, the machine's measured fp32 peak (in tract),
//! and the process's peak memory.

mod memory;
mod peak;
mod runner;
mod stats;

pub use memory::{current_rss_bytes, peak_rss_bytes, reset_peak_rss};
pub use peak::{measure_fp32_peak, MachinePeak};
pub use runner::{apply_peak, run_interleaved, BenchModel, BenchOptions, CellResult, Progress};
pub use stats::LatencyStats;
