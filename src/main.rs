//! The `bertc` command line: thin wrappers over the library that turn
//! errors into one clear message and a non-zero exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The process is the binary's, so how it takes signals is decided
    // here, not in the library: SIGPIPE ends it quietly, and SIGINT,
    // SIGTERM and SIGHUP remove its temporary files first (restored when
    // `_cleanup` is dropped, at the end of main).
    let _cleanup =
        match bertc::signals::default_sigpipe().and_then(|()| bertc::signals::CleanupHandlers::install()) {
            Ok(handlers) => handlers,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
