//! A progress bar on stderr for benchmarks. indicatif hides it by itself
//! when stderr is not a terminal, so pipes, `--json` consumers and tests see
//! nothing of it, and stdout stays clean.

use bertc::bench::Progress;
use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} runs {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Feeds the runner's events to `bar`.
pub fn report_to(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    move |event| match event {
        Progress::Planning { model, batch, seq } => {
            bar.set_message(format!("planning {model} B={batch} S={seq}"));
        }
        Progress::Ran => {
            bar.set_message("");
            bar.inc(1);
        }
    }
}
