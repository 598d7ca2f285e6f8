//! Per-op-type time of an ONNX model in tract (its optimized plan), the
//! way the quantization forms were chosen: total milliseconds per op name
//! over `--runs` runs after warm-up, largest first.
//!
//! cargo run --example profile -- MODEL.onnx [--batch 1] [--seq 128] [--threads 2] [--runs 5]

use std::collections::HashMap;
use std::time::Instant;

use bertc::check::inputs_for;
use bertc::onnx::read_model;
use bertc::runtime::{set_threads, TractSession};

fn main() -> anyhow::Result<()> {
    let (mut path, mut batch, mut seq, mut threads, mut runs) = (String::new(), 1, 128, 2, 5);
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
            p => path = p.to_string(),
        }
    }
    set_threads(threads);
    let inputs = inputs_for(&read_model(path.as_ref())?, batch, seq);
    let mut session = TractSession::from_path(path.as_ref())?;
    let (hosts, values) = session.prepare(&inputs)?;
    let plan = session.plan_for(&hosts.iter().collect::<Vec<_>>())?;
    let mut state = plan.spawn()?;
    let mut times: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    for run in 0..runs + 1 {
        let start = Instant::now();
        state.run_plan_with_eval(values.clone(), |ctx, op_state, node, input| {
            let t = Instant::now();
            let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
            if run > 0 {
                *times.entry(node.op().name().to_string()).or_default() += t.elapsed().as_secs_f64() * 1e3;
            }
            out
        })?;
        if run > 0 {
            total += start.elapsed().as_secs_f64() * 1e3;
        }
    }
    let mut sorted: Vec<_> = times.into_iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "{path}: {:.1} ms per run (B={batch}, S={seq}, {threads} threads)",
        total / runs as f64
    );
    for (op, ms) in sorted.iter().take(15) {
        println!(
            "  {:>8.2} ms {:5.1} %  {op}",
            ms / runs as f64,
            100.0 * ms / total
        );
    }
    Ok(())
}
