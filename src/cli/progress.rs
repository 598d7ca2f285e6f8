//! Progress bars on stderr for benchmarks and runs. indicatif hides them by itself
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

/// A bar of inputs answered, for `bertc run`: out of `total` when it is
/// known (arguments, a --file), a running count otherwise (stdin).
pub fn lines_bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "[{bar:30}] {pos}/{len} inputs, {rate}, {eta} left",
        ),
        None => (ProgressBar::no_length(), "{pos} inputs, {rate}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        // indicatif's {per_sec} prints four decimals ("83.5181/s"): whole inputs read better.
        let rate = |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        };
        bar.set_style(style.progress_chars("=> ").with_key("rate", rate));
    }
    bar
}
