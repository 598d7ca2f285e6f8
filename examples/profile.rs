//! Per-op-type time of an ONNX model in tract (its optimized plan), the
//! way the quantization forms were chosen: milliseconds per op name per
//! run after warm-up, largest first.
//!
//! Each node's time is the **minimum** over `--runs` runs (then summed per
//! op kind): on a shared machine a run's total is inflated by whoever else
//! holds the cores, and a node's best run is the closest to what it costs
//! when it has them. The mean run time is printed beside it.
//! `--detail N` also lists the N costliest groups of nodes of one op kind
//! and output type/shape (e.g. which Casts, which matrix products).
//! `--order` lists every node in the order the plan runs them, with its
//! best time: what ran just before a slow node (a kernel that leaves the
//! upper vector registers dirty slows the scalar code after it).
//!
//! cargo run --example profile -- MODEL.onnx [--batch 1] [--seq 128] [--threads 2] [--runs 5] [--detail N] [--order] [--inputs-from MODEL.onnx] [--f32-input NAME:1x128x768]

use std::collections::HashMap;
use std::time::Instant;

use bertc::onnx::read_model;
use bertc::runtime::{inputs_for, TractSession};

fn main() -> anyhow::Result<()> {
    let (mut path, mut batch, mut seq, mut threads, mut runs) = (String::new(), 1, 128, 2, 5);
    let mut detail = 0;
    let mut list_order = false;
    // Inputs are sized from this model's tables (default: the profiled one),
    // so that files bertc's IR cannot read (hand-edited experiments) still run.
    let mut inputs_from = None;
    // `NAME:D1xD2x..`: one f32 input of that shape (op micro-benchmarks).
    let mut f32_input: Option<String> = None;
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
            "--detail" => detail = value(),
            "--order" => list_order = true,
            "--inputs-from" => inputs_from = args.next(),
            "--f32-input" => f32_input = args.next(),
            p => path = p.to_string(),
        }
    }
    let session = bertc::Session::new(threads)?;
    let like = inputs_from.unwrap_or_else(|| path.clone());
    let inputs = match &f32_input {
        Some(spec) => {
            let (name, dims) = spec.split_once(':').expect("NAME:D1xD2");
            let shape: Vec<usize> = dims.split('x').map(|d| d.parse().expect("a dim")).collect();
            let n = shape.iter().product::<usize>();
            let v = (0..n)
                .map(|i| ((i * 7919) % 2001) as f32 / 100.0 - 10.0)
                .collect();
            let mut m = bertc::runtime::NamedTensors::new();
            m.insert(name.to_string(), bertc::runtime::HostTensor::f32(shape, v));
            m
        }
        None => inputs_for(&read_model(like.as_ref())?, batch, seq),
    };
    let mut model = TractSession::from_path(&session, path.as_ref())?;
    let (hosts, values) = model.prepare(&inputs)?;
    let plan = model.plan_for(&hosts.iter().collect::<Vec<_>>())?;
    // Run on the session's pool, as bertc runs every model (Session::run_on_pool).
    let (best, total, best_run, order) = session.run_on_pool(|| -> anyhow::Result<_> {
        let mut state = plan.spawn()?;
        // node id -> (op kind, output fact, best ms)
        let mut best: HashMap<usize, (String, String, f64)> = HashMap::new();
        let mut order: Vec<(usize, String)> = vec![];
        let mut total = 0.0;
        let mut best_run = f64::INFINITY;
        for run in 0..runs + 1 {
            let start = Instant::now();
            state.run_plan_with_eval(values.clone(), |ctx, op_state, node, input| {
                let from: Vec<String> = input.iter().map(|v| format!("{:?}", v.datum_type())).collect();
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                if run == 1 {
                    order.push((node.id, node.name.clone()));
                }
                if run > 0 {
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let e = best.entry(node.id).or_insert_with(|| {
                        // "input types -> output fact": which Casts, which products.
                        let to = node
                            .outputs
                            .first()
                            .map(|o| format!("{:?}", o.fact))
                            .unwrap_or_default();
                        let fact = format!("{} -> {to}", from.join(","));
                        (node.op().name().to_string(), fact, f64::INFINITY)
                    });
                    e.2 = e.2.min(ms);
                }
                out
            })?;
            if run > 0 {
                let ms = start.elapsed().as_secs_f64() * 1e3;
                total += ms;
                best_run = best_run.min(ms);
            }
        }
        Ok((best, total, best_run, order))
    })?;
    let mut kinds: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut groups: HashMap<(&str, &str), (f64, usize)> = HashMap::new();
    for (op, fact, ms) in best.values() {
        let k = kinds.entry(op).or_default();
        k.0 += ms;
        k.1 += 1;
        let gr = groups.entry((op, fact)).or_default();
        gr.0 += ms;
        gr.1 += 1;
    }
    let sum: f64 = kinds.values().map(|k| k.0).sum();
    println!(
        "{path}: B={batch}, S={seq}, {threads} threads: mean run {:.1} ms, best run {best_run:.1} ms, sum of per-node minima {sum:.1} ms",
        total / runs as f64
    );
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (op, (ms, n)) in kinds.iter().take(16) {
        println!("  {ms:>8.2} ms {:5.1} % {n:>4} nodes  {op}", 100.0 * ms / sum);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for ((op, fact), (ms, n)) in groups.iter().take(detail) {
        println!("  {ms:>8.2} ms {n:>4} nodes  {op} {fact}");
    }
    if list_order {
        for (id, name) in &order {
            let (op, fact, ms) = &best[id];
            println!("  #{id:<5} {ms:>7.3} ms  {op} {fact}  {name}");
        }
    }
    // CPU seconds of each thread of this process: whether the second
    // thread of tract's pool did a share of the work (the pool's threads
    // sleep when idle, so an unused one shows ~0).
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let mut cpu: Vec<f64> = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter_map(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                Some(ticks / 100.0)
            })
            .collect();
        cpu.sort_by(|a, b| b.total_cmp(a));
        println!("  CPU seconds per thread (whole process): {cpu:.2?}");
    }
    Ok(())
}
