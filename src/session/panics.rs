//! Panics inside calls into tract: always caught and turned into errors
//! (foreign files can trigger them), and kept off stderr only for the
//! sessions that ask ([`super::Session::with_quiet_tract_panics`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Quiet calls running now (any thread, any session): while there is
/// one, the quiet hook records a panic's place in [`LAST_PANIC`] instead
/// of printing it. A panic hook is the process's, and tract's panics may
/// happen on a pool thread rather than the caller's, so the count cannot
/// be per thread.
static QUIET_CALLS: AtomicUsize = AtomicUsize::new(0);
/// Where the last panic inside a quiet call happened.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// A panic caught inside a call into tract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaughtPanic {
    /// The panic's text, and its place when the quiet hook recorded it.
    pub message: String,
}

/// Installs, once per process, the hook that keeps panics inside quiet
/// calls off stderr and leaves every other panic to the hook that was
/// there before.
pub(super) fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_CALLS.load(Ordering::SeqCst) > 0 {
                let at = info
                    .location()
                    .map(|l| format!(" (at {}:{})", short_path(l.file()), l.line()));
                *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = at;
            } else {
                previous(info)
            }
        }));
    });
}

/// A dependency's path from its crate folder on, not the registry's.
fn short_path(file: &str) -> String {
    match file.split_once("/registry/src/") {
        Some((_, rest)) => rest.split_once('/').map_or(rest, |(_, path)| path).to_string(),
        None => file.to_string(),
    }
}

/// Counts a quiet call for as long as it lives, even when unwinding.
struct Quiet;

impl Quiet {
    fn enter() -> Quiet {
        QUIET_CALLS.fetch_add(1, Ordering::SeqCst);
        Quiet
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET_CALLS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f`, turning its panic into a [`CaughtPanic`]; `quiet` keeps the
/// panic off stderr (when the quiet hook is installed).
pub(super) fn catch<R>(quiet: bool, f: impl FnOnce() -> R) -> Result<R, CaughtPanic> {
    let counted = quiet.then(Quiet::enter);
    let result = catch_unwind(AssertUnwindSafe(f));
    drop(counted);
    result.map_err(|payload| {
        let at = match quiet {
            true => LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take(),
            false => None,
        };
        CaughtPanic {
            message: panic_message(payload.as_ref()) + &at.unwrap_or_default(),
        }
    })
}

/// The text of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
