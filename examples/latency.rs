//! Interim latency measurement until `bertc bench` lands: runs ONNX models
//! in tract interleaved (A B A B …) at a fixed batch and sequence length and
//! prints each one's median and its ratio to the first.
//!
//! cargo run --release --example latency -- A.onnx B.onnx [--batch 1] [--seq 128] [--threads 2] [--runs 20]

use std::time::Instant;

use bertc::check::inputs_for;
use bertc::onnx::read_model;
use bertc::runtime::{set_threads, TractSession};

fn main() -> anyhow::Result<()> {
    let mut models = Vec::new();
    let (mut batch, mut seq, mut threads, mut runs) = (1, 128, 2, 20);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--batch" => batch = value(),
            "--seq" => seq = value(),
            "--threads" => threads = value(),
            "--runs" => runs = value(),
            path => models.push(path.to_string()),
        }
    }
    set_threads(threads);
    let mut sessions = Vec::new();
    for path in &models {
        // Files bertc cannot import (onnxruntime's int8 forms) get generic ids.
        let inputs = match read_model(path.as_ref()) {
            Ok(graph) => inputs_for(&graph, batch, seq),
            Err(_) => bertc::runtime::realistic_inputs(1000, 1, batch, seq, 0),
        };
        let mut session = TractSession::from_path(path.as_ref())?;
        let (hosts, _) = session.prepare(&inputs)?;
        let plan = session.plan_for(&hosts.iter().collect::<Vec<_>>())?;
        let values = session.prepare(&inputs)?.1;
        for _ in 0..3 {
            TractSession::run_plan(&plan, values.clone())?;
        }
        sessions.push((plan, values, Vec::new()));
    }
    for _ in 0..runs {
        for (plan, values, times) in sessions.iter_mut() {
            let start = Instant::now();
            TractSession::run_plan(plan, values.clone())?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut first = None;
    for (path, (_, _, times)) in models.iter().zip(sessions.iter_mut()) {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let base = *first.get_or_insert(median);
        println!(
            "{median:8.2} ms  {:5.2}x  {path}  (B={batch}, S={seq}, {threads} threads, {runs} runs)",
            median / base
        );
    }
    Ok(())
}
