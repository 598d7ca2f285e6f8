//! The machine's measured fp32 peak: the best rate tract reaches on one
//! large square f32 matrix product at the benchmark's thread count. Achieved
//! GFLOP/s of a model is judged against this, not against a datasheet.

use std::time::Instant;

use serde::Serialize;

use crate::error::Error;
use crate::ir::{DType, Graph, Op, Shape, Tensor};
use crate::onnx::{export_bytes, ExportOptions};
use crate::runtime::{HostTensor, NamedTensors, TractSession};
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MachinePeak {
    /// Best GFLOP/s (2 · n³ FLOPs per product) over the timed runs.
    pub gflops: f64,
    /// Side of the square matrices.
    pub n: usize,
    pub runs: usize,
}

impl MachinePeak {
    /// The better of two measurements.
    pub fn best(self, other: MachinePeak) -> MachinePeak {
        if other.gflops > self.gflops {
            MachinePeak {
                runs: self.runs + other.runs,
                ..other
            }
        } else {
            MachinePeak {
                runs: self.runs + other.runs,
                ..self
            }
        }
    }
}

/// Times `[n,n]·[n,n]` in tract until `runs` products or ~1 s, after a
/// warm-up run; the best run counts (the peak is what the machine can do,
/// and on a shared machine most runs are slowed by neighbours), on
/// `session`'s threads.
pub fn measure_fp32_peak(session: &Session, n: usize, runs: usize) -> Result<MachinePeak, Error> {
    let mut g = Graph::new();
    let a = g.add_input("a", DType::F32, Shape::fixed(&[n, n]))?;
    // Deterministic, non-trivial values: the kernel's speed must not depend on them.
    let values: Vec<f32> = (0..n * n).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
    let b = g.add_const("b", Tensor::from_f32(vec![n, n], &values))?;
    let c = g.add("c", Op::MatMul, &[a, b])?;
    g.set_output("c", c);
    let bytes = export_bytes(&g, ExportOptions::default())?;
    let mut product = TractSession::from_bytes(session, &bytes)?;
    let inputs = NamedTensors::from([("a".to_string(), HostTensor::f32(vec![n, n], values))]);
    let (hosts, values) = product.prepare(&inputs)?;
    let plan = product.plan_for(&hosts.iter().collect::<Vec<_>>())?;
    product.run_plan(&plan, values.clone())?;
    let (mut best, mut done, start) = (f64::INFINITY, 0, Instant::now());
    while done < runs.max(1) && (done == 0 || start.elapsed().as_secs_f64() < 1.0) {
        let t = Instant::now();
        product.run_plan(&plan, values.clone())?;
        best = best.min(t.elapsed().as_secs_f64());
        done += 1;
    }
    Ok(MachinePeak {
        gflops: 2.0 * (n as f64).powi(3) / best / 1e9,
        n,
        runs: done,
    })
}
