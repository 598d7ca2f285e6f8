//! `bertc validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use bertc::runtime::{
    available_threads, compare, read_safetensors, set_threads, worst_token_cosine, write_safetensors,
    TractSession,
};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The ONNX model to run.
    model: PathBuf,
    /// Safetensors file with the inputs and expected outputs, by ONNX name.
    #[arg(long)]
    golden: PathBuf,
    /// Largest accepted |actual − expected| for any element of any output
    /// (default 1e-4 for an fp32 model; not applied to fp16/int8 models unless given).
    #[arg(long, value_parser = parse_tolerance, allow_hyphen_values = true)]
    atol: Option<f64>,
    /// Smallest accepted cosine of any output row (vector along the last axis; for per-token
    /// outputs, the rows of real tokens as the golden's attention_mask says) against the golden
    /// (default: 0.9999 for an fp16 model, 0.99 for an int8 one, as their metadata or ops say).
    #[arg(long, value_parser = parse_cosine, allow_hyphen_values = true)]
    min_cosine: Option<f64>,
    /// Pass even when the golden file holds outputs the model does not produce.
    #[arg(long)]
    allow_missing: bool,
    /// Also write tract's outputs to this safetensors file.
    #[arg(long)]
    save_outputs: Option<PathBuf>,
    /// Threads for tract (default: all cores).
    #[arg(long, value_parser = super::parse_threads)]
    threads: Option<usize>,
}

fn parse_tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a tolerance: give a finite number >= 0")),
    }
}

fn parse_cosine(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (-1.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("`{text}` is not a cosine: give a number within -1 and 1")),
    }
}

/// The gates a model is held to: what was asked, else its precision's defaults.
struct Gates {
    atol: Option<f64>,
    min_cosine: Option<f64>,
    precision: &'static str,
}

impl Gates {
    fn of(a: &ValidateArgs, g: Option<&bertc::ir::Graph>) -> Gates {
        let precision = g.map_or("fp32", model_precision);
        let (atol, min_cosine) = match precision {
            "fp32" => (Some(bertc::pipeline::check::CHECK_ATOL), None),
            "fp16" => (None, Some(FP16_MIN_COSINE)),
            _ => (None, Some(bertc::quantize::DEFAULT_MIN_COSINE)),
        };
        let given = a.atol.is_some() || a.min_cosine.is_some();
        Gates {
            atol: if given { a.atol } else { atol },
            min_cosine: if given { a.min_cosine } else { min_cosine },
            precision,
        }
    }
}

/// fp16 weights move outputs by ~1e-3: held to a worst-row cosine instead.
const FP16_MIN_COSINE: f64 = 0.9999;

/// "fp32", "fp16" or "int8": bertc's `bertc.precision` metadata, else what
/// the graph's ops and weights say (int8 ops, f16 weights).
fn model_precision(g: &bertc::ir::Graph) -> &'static str {
    match g.metadata.get("bertc.precision").map(String::as_str) {
        Some("fp16") => return "fp16",
        Some(p) if p.starts_with("int8") => return "int8",
        _ => {}
    }
    let ops = g.op_histogram();
    if [
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeLinear",
        "DequantizeLinear",
    ]
    .iter()
    .any(|k| ops.contains_key(k))
    {
        return "int8";
    }
    let f16 = g.node_ids().any(|id| match &g.node(id).op {
        bertc::ir::Op::Constant(t) => t.dtype() == bertc::ir::DType::F16 && t.len() > 1,
        _ => false,
    });
    if f16 {
        "fp16"
    } else {
        "fp32"
    }
}

pub fn run(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    set_threads(a.threads.unwrap_or_else(available_threads));
    if let Some(path) = &a.save_outputs {
        bertc::atomic_write::check_output(path, &[("model", &a.model), ("golden file", &a.golden)])?;
    }
    let golden = read_safetensors(&a.golden)?;
    let mut session = TractSession::from_path(&a.model)?;
    for name in session.input_names() {
        if let Some(t) = golden.get(name) {
            anyhow::ensure!(
                !t.shape.contains(&0),
                "{}: the input `{name}` has shape {:?}: an empty batch compares nothing",
                a.golden.display(),
                t.shape
            );
        }
    }
    // The IR form gives the limits inputs must fit (tract would panic on
    // an id past a table) and the precision; a model bertc's IR cannot
    // import is still run, unchecked, as before.
    let graph = bertc::onnx::read_model(&a.model).ok();
    if let Some(g) = &graph {
        let origin = a.golden.display().to_string();
        bertc::runtime::check_inputs_fit(g, &golden, &origin)?;
        bertc::runtime::check_references_fit(g, &golden, &origin)?;
    }
    let gates = Gates::of(&a, graph.as_ref());
    let outputs = session.run(&golden).with_context(|| {
        format!(
            "running {} on the inputs of {}",
            a.model.display(),
            a.golden.display()
        )
    })?;
    if let Some(path) = &a.save_outputs {
        write_safetensors(path, &outputs)?;
    }
    let shown = |g: Option<f64>| g.map_or("-".to_string(), |x| format!("{x}"));
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>12}  verdict ({} model: atol {}, min worst-row cosine {})",
        "output",
        "max-abs",
        "max-rel",
        "cosine",
        "worst row",
        gates.precision,
        shown(gates.atol),
        shown(gates.min_cosine)
    );
    let mut compared = 0;
    let mut failed = 0;
    for (name, actual) in &outputs {
        let Some(expected) = golden.get(name) else {
            println!("{name:<24} (no reference in the golden file)");
            continue;
        };
        let mut c = compare(name, actual, expected);
        // Per-token outputs are judged on real tokens only.
        if let Some(worst) = golden
            .get("attention_mask")
            .and_then(|mask| worst_token_cosine(actual, expected, mask))
        {
            c.worst_row_cosine = worst;
        }
        compared += 1;
        let mut problems = vec![];
        if !c.shape_matches {
            problems.push(format!("shape {:?}, expected {:?}", actual.shape, expected.shape));
        } else {
            if let Some(atol) = gates.atol {
                if !c.within(atol) {
                    problems.push(format!("max-abs above {atol}"));
                }
            }
            if let Some(min) = gates.min_cosine {
                if c.worst_row_cosine.is_nan() || c.worst_row_cosine < min {
                    problems.push(format!("worst row cosine below {min}"));
                }
            }
        }
        let verdict = match problems.is_empty() {
            true => "ok".to_string(),
            false => {
                failed += 1;
                format!("FAIL: {}", problems.join(", "))
            }
        };
        println!(
            "{name:<24} {:>12.3e} {:>12.3e} {:>12.8} {:>12.8}  {verdict}",
            c.max_abs, c.max_rel, c.cosine, c.worst_row_cosine
        );
    }
    let missing: Vec<&String> = golden
        .keys()
        .filter(|k| !outputs.contains_key(*k) && !session.input_names().contains(k))
        .collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        if a.allow_missing {
            println!("golden outputs the model does not produce (allowed): {list}");
        } else {
            println!(
                "FAIL: golden outputs the model does not produce: {list} (--allow-missing accepts that)"
            );
            failed += 1;
        }
    }
    if compared == 0 {
        anyhow::bail!("no model output has a reference in {}", a.golden.display());
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
