//! The one summary format of commands that write a model: what the
//! pipeline did (passes, check, accuracy, lowering) and what was written.

use std::path::Path;
use std::time::Duration;

use bertc::passes::PassRun;
use bertc::pipeline::{Compiled, NodeCount};

use super::group_digits;
use super::model_arg::mb;

pub struct Summary<'a> {
    /// "compiled" or "optimized".
    pub verb: &'a str,
    pub from: &'a str,
    pub to: &'a Path,
    pub compiled: &'a Compiled,
    /// The head and where it came from (config sources).
    pub head: Option<String>,
    /// Layers, hidden size and heads (config sources).
    pub shape: Option<String>,
    pub size: usize,
    pub write_time: Duration,
    pub total_time: Duration,
    /// Print one line per pass.
    pub report: bool,
}

/// One line per pass run: matches, nodes before -> after, milliseconds.
pub fn print_pass_runs(runs: &[PassRun]) {
    for r in runs {
        println!(
            "  pass        {:<30} {:>4} matches  nodes {:>5} -> {:<5} {:>8.2} ms",
            r.pass,
            r.report.matches,
            r.nodes_before,
            r.nodes_after,
            r.elapsed.as_secs_f64() * 1e3
        );
    }
}

/// "241 ops (+ 199 constants)": the one way node counts are printed.
pub fn nodes(n: NodeCount) -> String {
    format!("{} ops (+ {} constants)", n.ops, n.constants)
}

pub fn print_summary(s: &Summary) {
    let c = s.compiled;
    let r = &c.report;
    let g = c.graph();
    println!("{} {} -> {}", s.verb, s.from, s.to.display());
    if s.report {
        print_pass_runs(&r.passes);
    }
    for check in &r.check {
        println!(
            "  check       {:<24} max-abs {:.2e} vs the graph before the passes (tolerance {:.0e})",
            check.name,
            check.max_abs,
            bertc::pipeline::check::CHECK_ATOL
        );
    }
    if s.report {
        print_pass_runs(&r.precision);
    }
    if let Some(acc) = &r.accuracy {
        for o in &acc.outputs {
            println!(
                "  accuracy    {:<24} cosine {:.7} (worst row {:.7}, at real tokens {:.7})  max-abs {:.2e} vs f32",
                o.name, o.cosine, o.min_row_cosine, o.min_real_row_cosine, o.max_abs
            );
        }
    }
    if let Some(kept) = g.metadata.get(bertc::quantize::KEPT_F32) {
        let layers: Vec<&str> = kept.split(',').filter(|l| !l.is_empty()).collect();
        println!(
            "  kept f32    {} linear layer(s) by --quantize-skip auto{}{}",
            layers.len(),
            if layers.is_empty() { "" } else { ": " },
            layers.join(", ")
        );
    }
    if let Some((line, warning)) = &r.int8_kernel {
        println!("  int8        {line}");
        if let Some(w) = warning {
            eprintln!("{w}");
        }
    }
    if let Some(note) = &r.form_note {
        eprintln!("{note}");
    }
    for note in &r.import_notes {
        eprintln!("warning: {note}");
    }
    if let Some(note) = &r.import_precision {
        eprintln!("note: {note}");
    }
    if s.report {
        print_pass_runs(&r.lowering);
    }
    println!("  weights     {}", r.weights);
    if let Some(head) = &s.head {
        let outputs: Vec<&str> = g.outputs().iter().map(|(n, _)| n.as_str()).collect();
        println!("  head        {head}: {}", outputs.join(", "));
    }
    if !c.ignored.is_empty() {
        println!(
            "  unread      {} (another head's or the pooler's)",
            c.ignored.join(", ")
        );
    }
    let shape = s.shape.as_ref().map(|t| format!(" ({t})")).unwrap_or_default();
    println!(
        "  parameters  {}{shape}{}",
        group_digits(g.parameter_count()),
        counted_with_scales(g)
    );
    let after = NodeCount::of(g);
    let ops: Vec<String> = g.op_histogram().iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "  nodes       {} -> {}: {}",
        nodes(r.nodes_before),
        nodes(after),
        ops.join(", ")
    );
    println!("  opset       {}", r.opset);
    println!(
        "  file        {} bytes ({})",
        group_digits(s.size),
        mb(s.size as u64)
    );
    let t = r.times;
    println!(
        "  time        {:.3} s (weights {:.3}, build {:.3}, passes {:.3}, check {:.3}, precision {:.3}, lowering {:.3}, serialize + write {:.3})",
        s.total_time.as_secs_f64(),
        t.load.as_secs_f64(),
        t.build.as_secs_f64(),
        t.passes.as_secs_f64(),
        t.check.as_secs_f64(),
        t.precision.as_secs_f64(),
        t.lowering.as_secs_f64(),
        s.write_time.as_secs_f64()
    );
}

/// What an int8 graph's parameter count holds: its weights' f32 scales
/// count as parameters too ([`bertc::ir::parameter_elements`]), so it is
/// larger than the fp32 model's (BERT-base: 109,596,474 against
/// 109,482,240) — said, so the two are not read as one quantity (issue 25).
fn counted_with_scales(g: &bertc::ir::Graph) -> &'static str {
    let quantized = g.node_ids().any(|id| match &g.node(id).op {
        bertc::ir::Op::Constant(t) => bertc::ir::is_quantized_weight(t),
        _ => false,
    });
    match quantized {
        true => ", counting the int8 weights and their f32 scales",
        false => "",
    }
}
