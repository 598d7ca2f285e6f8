//! The `bertc` command line: thin wrappers over the library that turn
//! errors into one clear message and a non-zero exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // The process is the binary's, so how it takes signals is decided
    // here, not in the library: SIGPIPE ends it quietly, and SIGINT,
    // SIGTERM and SIGHUP remove its temporary files first (restored when
    // `_cleanup` is dropped, at the end of main). Not for a server: it
    // writes no file and stops gracefully on SIGINT/SIGTERM itself (the
    // cleanup handler would end it mid-answer), and a client that hangs
    // up must not end it by SIGPIPE.
    let signals = match args.takes_signals() {
        true => Ok(None),
        false => bertc::signals::default_sigpipe()
            .and_then(|()| bertc::signals::CleanupHandlers::install().map(Some)),
    };
    let _cleanup = match signals {
        Ok(handlers) => handlers,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The one exit-code table (README "Exit codes"): 1 when a check or gate
/// measured the model and it failed (compile's equivalence check and
/// accuracy gate here; validate's comparison returns it itself), 2 for
/// every usage or input error.
fn exit_code(e: &anyhow::Error) -> u8 {
    use bertc::pipeline::check::CheckError;
    let failed_check = |c: &CheckError| {
        matches!(
            c,
            CheckError::Failed { .. }
                | CheckError::AccuracyBelow { .. }
                | CheckError::RowAccuracyBelow { .. }
        )
    };
    let measured = e.chain().any(|cause| {
        cause.downcast_ref::<CheckError>().is_some_and(failed_check)
            || matches!(cause.downcast_ref::<bertc::Error>(), Some(bertc::Error::Check(c)) if failed_check(c))
    });
    if measured {
        1
    } else {
        2
    }
}
