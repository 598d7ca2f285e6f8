//! `bertc validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use bertc::runtime::{
    available_threads, compare, read_safetensors, set_threads, write_safetensors, TractSession,
};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The ONNX model to run.
    model: PathBuf,
    /// Safetensors file with the inputs and expected outputs, by ONNX name.
    #[arg(long)]
    golden: PathBuf,
    /// Largest accepted |actual − expected| for any element of any output.
    #[arg(long, default_value_t = 1e-4)]
    atol: f64,
    /// Also write tract's outputs to this safetensors file.
    #[arg(long)]
    save_outputs: Option<PathBuf>,
    /// Threads for tract (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    set_threads(a.threads.unwrap_or_else(available_threads));
    let golden = read_safetensors(&a.golden)?;
    let mut session = TractSession::from_path(&a.model)?;
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
    println!(
        "{:<24} {:>12} {:>12} {:>12}  verdict (atol {:e})",
        "output", "max-abs", "max-rel", "cosine", a.atol
    );
    let mut compared = 0;
    let mut failed = 0;
    for (name, actual) in &outputs {
        let Some(expected) = golden.get(name) else {
            println!("{name:<24} (no reference in the golden file)");
            continue;
        };
        let c = compare(name, actual, expected);
        compared += 1;
        let verdict = if !c.shape_matches {
            format!("FAIL: shape {:?}, expected {:?}", actual.shape, expected.shape)
        } else if c.within(a.atol) {
            "ok".to_string()
        } else {
            "FAIL".to_string()
        };
        if !c.within(a.atol) {
            failed += 1;
        }
        println!(
            "{name:<24} {:>12.3e} {:>12.3e} {:>12.8}  {verdict}",
            c.max_abs, c.max_rel, c.cosine
        );
    }
    let unused: Vec<&String> = golden
        .keys()
        .filter(|k| !outputs.contains_key(*k) && !session.input_names().contains(k))
        .collect();
    if !unused.is_empty() {
        println!(
            "golden tensors the model does not produce: {}",
            unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
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
