//! `bertc validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use bertc::validate::{validate, ValidateOptions};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The ONNX model to run, or an export folder (its model file for tract, as `run` picks it).
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
    pub threads: Option<usize>,
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

pub fn run(a: ValidateArgs, session: &bertc::Session) -> anyhow::Result<ExitCode> {
    let opts = ValidateOptions {
        atol: a.atol,
        min_cosine: a.min_cosine,
        save_outputs: a.save_outputs.clone(),
    };
    let model = model_file(&a.model)?;
    let validation = validate(session, &model, &a.golden, &opts)?;
    let gates = &validation.gates;
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
    for output in &validation.outputs {
        let name = &output.name;
        let Some(c) = &output.comparison else {
            println!("{name:<24} (no reference in the golden file)");
            continue;
        };
        let verdict = match output.problems.is_empty() {
            true => "ok".to_string(),
            false => {
                let problems: Vec<String> = output.problems.iter().map(|p| p.to_string()).collect();
                format!("FAIL: {}", problems.join(", "))
            }
        };
        println!(
            "{name:<24} {:>12.3e} {:>12.3e} {:>12.8} {:>12.8}  {verdict}",
            c.max_abs, c.max_rel, c.cosine, c.worst_row_cosine
        );
    }
    if !validation.missing.is_empty() {
        let list = validation.missing.join(", ");
        if a.allow_missing {
            println!("golden outputs the model does not produce (allowed): {list}");
        } else {
            println!(
                "FAIL: golden outputs the model does not produce: {list} (--allow-missing accepts that)"
            );
        }
    }
    Ok(match validation.passed(a.allow_missing)? {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

/// The file to validate: `path` itself, or the model file of the export
/// folder `path` that `run` would load in tract (issue 25: validate refused
/// the folders run, inspect and bench take).
fn model_file(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    use bertc::run::form::{choose, FormChoice};
    use bertc::runtime::Runtime;
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let chosen = choose(path, Runtime::Tract, &FormChoice::default())?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: a model folder without model.onnx; validate checks a compiled model: \
             `bertc compile {} -o OUT/`, then `bertc validate OUT/`",
            path.display(),
            path.display()
        )
    })?;
    if let Some(note) = chosen.note(Runtime::Tract) {
        eprintln!("{note}");
    }
    Ok(chosen.path)
}
