//! The cleanup handler of SIGINT, SIGTERM and SIGHUP, installed with
//! `sigaction` by the program that owns the process (never by the library)
//! and restored exactly on drop; and the steps a signal must not cut in two.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use super::temps::remove_registered;

/// The signals that end an interactive or CI run.
const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Whether a [`CleanupHandlers`] is alive: one per process, so that the
/// actions it restores are the program's own, never its own handler.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Steps that must not be cut in two running now (renaming a model and its
/// data file into place); while there is one, the handler only records its
/// signal in `DEFERRED`, acted on when the last step ends.
static CRITICAL: AtomicUsize = AtomicUsize::new(0);
static DEFERRED: AtomicI32 = AtomicI32::new(0);

/// Installing or restoring a signal's action failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("the cleanup signal handlers are installed already (once per process)")]
    AlreadyInstalled,
    #[error("cannot {action} the action of signal {signal}: {error}")]
    Sigaction {
        signal: libc::c_int,
        action: &'static str,
        error: std::io::Error,
    },
}

extern "C" fn on_cleanup_signal(signal: libc::c_int) {
    if CRITICAL.load(Ordering::SeqCst) > 0 {
        // Atomics are async-signal-safe; `without_interruption` acts on it.
        DEFERRED.store(signal, Ordering::SeqCst);
        return;
    }
    remove_registered();
    end_by(signal);
}

/// Ends the process by `signal` with its default action, so that the exit
/// status says which signal it was.
fn end_by(signal: libc::c_int) {
    // SAFETY: sigaction(2) and raise(2) are async-signal-safe. Inside the
    // handler the re-raised signal is blocked until the handler returns,
    // then takes its default action (termination).
    unsafe {
        let _ = set_action(signal, &action_of(libc::SIG_DFL, 0));
        libc::raise(signal);
    }
}

/// A `sigaction` running `handler` (or SIG_DFL / SIG_IGN) with `flags` and
/// no extra signals blocked.
fn action_of(handler: libc::sighandler_t, flags: libc::c_int) -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value; its mask is then
    // emptied with sigemptyset, as POSIX asks.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    action
}

/// Sets `signal`'s action; returns the one it replaces.
///
/// # Safety
/// `action`'s handler must be SIG_DFL, SIG_IGN, a previous action of this
/// signal, or a function that only does async-signal-safe work.
unsafe fn set_action(signal: libc::c_int, action: &libc::sigaction) -> Result<libc::sigaction, SignalError> {
    let mut previous: libc::sigaction = std::mem::zeroed();
    match libc::sigaction(signal, action, &mut previous) {
        0 => Ok(previous),
        _ => Err(SignalError::Sigaction {
            signal,
            action: "set",
            error: std::io::Error::last_os_error(),
        }),
    }
}

/// `signal`'s current action.
fn current_action(signal: libc::c_int) -> Result<libc::sigaction, SignalError> {
    // SAFETY: a null new action only reads the current one.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    match unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } {
        0 => Ok(current),
        _ => Err(SignalError::Sigaction {
            signal,
            action: "read",
            error: std::io::Error::last_os_error(),
        }),
    }
}

/// The cleanup handlers of SIGINT, SIGTERM and SIGHUP: on one of them the
/// registered temporary files and folders are removed, then the process
/// ends by that signal. Dropping this restores exactly the actions it
/// replaced. For the program that owns the process (the `bertc` binary);
/// the library never installs it.
pub struct CleanupHandlers {
    /// The signals handled here, each with the action it had before.
    replaced: Vec<(libc::c_int, libc::sigaction)>,
}

impl CleanupHandlers {
    /// Installs the handlers, once per process. A signal the parent
    /// ignored (nohup) stays ignored.
    pub fn install() -> Result<CleanupHandlers, SignalError> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(SignalError::AlreadyInstalled);
        }
        // On an error, dropping this restores what was installed so far.
        let mut handlers = CleanupHandlers { replaced: vec![] };
        let ours = action_of(
            on_cleanup_signal as *const () as libc::sighandler_t,
            libc::SA_RESTART,
        );
        for &signal in &CLEANUP_SIGNALS {
            if current_action(signal)?.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            // SAFETY: the handler only does async-signal-safe work.
            let previous = unsafe { set_action(signal, &ours)? };
            handlers.replaced.push((signal, previous));
        }
        Ok(handlers)
    }
}

impl Drop for CleanupHandlers {
    fn drop(&mut self) {
        for (signal, previous) in self.replaced.drain(..).rev() {
            // SAFETY: the action this signal had before. Nothing to do
            // should it fail: the process keeps our handler, which works.
            let _ = unsafe { set_action(signal, &previous) };
        }
        INSTALLED.store(false, Ordering::SeqCst);
    }
}

/// Runs `f` as one step with respect to SIGINT, SIGTERM and SIGHUP: under
/// [`CleanupHandlers`], a signal that arrives meanwhile, on whichever
/// thread handles it, is held until `f` returns and then acted on
/// (temporaries removed, the process ended by it). Blocking the signals
/// would not do: that mask is the calling thread's, and the process's
/// other threads (rayon's, tract's) would still take them. Without the
/// handlers, signals keep whatever action the program gave them. Steps may
/// overlap (several threads writing); the held signal is acted on when the
/// last one ends.
pub fn without_interruption<R>(f: impl FnOnce() -> R) -> R {
    /// Ends the step, also when `f` panics.
    struct Step;
    impl Drop for Step {
        fn drop(&mut self) {
            if CRITICAL.fetch_sub(1, Ordering::SeqCst) == 1 {
                let signal = DEFERRED.swap(0, Ordering::SeqCst);
                if signal != 0 {
                    on_cleanup_signal(signal);
                }
            }
        }
    }
    CRITICAL.fetch_add(1, Ordering::SeqCst);
    let _step = Step;
    f()
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores:
/// `bertc … | head` then ends quietly when `head` exits, as every Unix
/// tool does, instead of panicking in `println!` on the broken pipe. For
/// the binary only: a library must not change how its host takes SIGPIPE.
pub fn default_sigpipe() -> Result<(), SignalError> {
    // SAFETY: setting a signal's action to its default.
    unsafe { set_action(libc::SIGPIPE, &action_of(libc::SIG_DFL, 0)) }.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler_of(signal: libc::c_int) -> libc::sighandler_t {
        current_action(signal).unwrap().sa_sigaction
    }

    #[test]
    fn install_once_keep_ignored_signals_and_restore_what_was_replaced() {
        // SAFETY: SIG_IGN for SIGHUP while the test runs, as nohup leaves it;
        // SIGINT and SIGTERM at their defaults, whatever the test process
        // inherited (a shell's `cmd &` starts it with SIGINT ignored, and an
        // ignored signal is rightly left ignored by install).
        let hup = unsafe { set_action(libc::SIGHUP, &action_of(libc::SIG_IGN, 0)).unwrap() };
        let int = unsafe { set_action(libc::SIGINT, &action_of(libc::SIG_DFL, 0)).unwrap() };
        let term = unsafe { set_action(libc::SIGTERM, &action_of(libc::SIG_DFL, 0)).unwrap() };
        let (int_before, term_before) = (handler_of(libc::SIGINT), handler_of(libc::SIGTERM));
        let ours = on_cleanup_signal as *const () as libc::sighandler_t;
        let handlers = CleanupHandlers::install().unwrap();
        assert_eq!(handler_of(libc::SIGINT), ours);
        assert_eq!(handler_of(libc::SIGTERM), ours);
        assert_eq!(
            handler_of(libc::SIGHUP),
            libc::SIG_IGN,
            "an ignored signal stays ignored"
        );
        assert!(matches!(
            CleanupHandlers::install(),
            Err(SignalError::AlreadyInstalled)
        ));
        drop(handlers);
        assert_eq!(handler_of(libc::SIGINT), int_before);
        assert_eq!(handler_of(libc::SIGTERM), term_before);
        assert_eq!(handler_of(libc::SIGHUP), libc::SIG_IGN);
        // Installable again once the first is gone.
        drop(CleanupHandlers::install().unwrap());
        // SAFETY: the actions from before the test.
        unsafe {
            set_action(libc::SIGHUP, &hup).unwrap();
            set_action(libc::SIGINT, &int).unwrap();
            set_action(libc::SIGTERM, &term).unwrap();
        }
    }
}
