//! Process signals: temporary files and folders are removed when the
//! process is interrupted, and a closed stdout ends the process quietly.
//!
//! The library only keeps the registry of its temporary paths ([`TempGuard`]):
//! registering is a few atomic stores, and a write works the same whether
//! anyone acts on the registry or not. Acting on it is the choice of whoever
//! owns the process — the `bertc` binary installs [`CleanupHandlers`] once;
//! a program embedding the library keeps its own handlers (the library
//! never installs one).
//!
//! The handler is written against `libc` directly rather than through a
//! crate such as `signal-hook`: the cleanup must happen *inside* the handler
//! (the main thread may be stuck in a 400 MB write and never poll a flag),
//! and the only things it does are `unlink(2)` and `rmdir(2)` — both
//! async-signal-safe — on paths prepared before the signal, then re-raise
//! the signal with its default action so the exit status still says
//! "killed by SIGINT/SIGTERM/SIGHUP". A temporary folder is removed by
//! registering it and every path written inside it (an export folder's
//! files): the handler unlinks the files, then removes the emptied folders.

mod handlers;
mod temps;

pub use handlers::{default_sigpipe, without_interruption, CleanupHandlers, SignalError};
pub use temps::{create_registered, TempGuard};
