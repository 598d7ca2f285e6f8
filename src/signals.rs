//! Process signals: temporary files and folders are removed when bertc is
//! interrupted, and a closed stdout ends the process quietly.
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

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
use std::sync::Once;

/// Temporary paths registered at once: one per concurrent atomic write,
/// plus an export folder's own files (about a dozen).
const SLOTS: usize = 64;

/// How deep registered folders may nest inside each other and still all be
/// removed (an export folder holds `1_Pooling/`-style module folders).
const FOLDER_DEPTH: usize = 4;

/// Paths (NUL-terminated, leaked) to unlink on a signal; null = free slot.
static TEMP_FILES: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

static INSTALL: Once = Once::new();

/// Set while a step that must not be cut in two runs (renaming a model and
/// its data file into place); a signal then only records itself in
/// `DEFERRED` and is acted on when the step ends.
static CRITICAL: AtomicBool = AtomicBool::new(false);
static DEFERRED: AtomicI32 = AtomicI32::new(0);

/// The signals that end an interactive or CI run.
const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn remove_temp_files(signal: libc::c_int) {
    if CRITICAL.load(Ordering::SeqCst) {
        // Atomics are async-signal-safe; `without_interruption` re-raises.
        DEFERRED.store(signal, Ordering::SeqCst);
        return;
    }
    for slot in &TEMP_FILES {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a leaked, never-freed C string; unlink is
            // async-signal-safe (and fails harmlessly on a folder).
            unsafe { libc::unlink(p) };
        }
    }
    // Folders last, once emptied; a folder inside another goes on an
    // earlier round than its parent, whatever slots they hold.
    for _ in 0..FOLDER_DEPTH {
        for slot in &TEMP_FILES {
            let p = slot.load(Ordering::SeqCst);
            if !p.is_null() {
                // SAFETY: as above; rmdir is async-signal-safe and only
                // removes an empty folder (a file's path fails harmlessly).
                unsafe { libc::rmdir(p) };
            }
        }
    }
    // SAFETY: signal(2) and raise(2) are async-signal-safe. The re-raised
    // signal is blocked until this handler returns, then takes its default
    // action (termination).
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

fn install() {
    INSTALL.call_once(|| {
        for &s in &CLEANUP_SIGNALS {
            // SAFETY: the handler only calls async-signal-safe functions.
            // A signal the parent ignored (nohup) stays ignored.
            unsafe {
                let previous = libc::signal(s, remove_temp_files as *const () as libc::sighandler_t);
                if previous == libc::SIG_IGN {
                    libc::signal(s, libc::SIG_IGN);
                }
            }
        }
    });
}

/// Runs `f` as one step with respect to SIGINT, SIGTERM and SIGHUP: a
/// signal that arrives meanwhile, on whichever thread handles it, is held
/// until `f` returns and then acted on (temporaries removed, the process
/// ended by it). Blocking the signals would not do: that mask is the
/// calling thread's, and the process's other threads (rayon's, tract's)
/// would still take them. Not reentrant: steps do not nest.
pub fn without_interruption<R>(f: impl FnOnce() -> R) -> R {
    install();
    CRITICAL.store(true, Ordering::SeqCst);
    let r = f();
    CRITICAL.store(false, Ordering::SeqCst);
    let signal = DEFERRED.swap(0, Ordering::SeqCst);
    if signal != 0 {
        remove_temp_files(signal);
    }
    r
}

/// Creates a fresh path `prefix` + random + `suffix` in `dir` with `create`
/// (which must fail with `AlreadyExists` on a taken name, as
/// `create_new` / `create_dir` do; another name is then tried), registered
/// for removal on a signal *before* it exists. Blocking the signals while
/// creating and registering is not enough: a signal sent to the process
/// may be handled by any thread (rayon's, tract's), which would find the
/// new path unregistered and leave it (seen in CI: a HUP left
/// `.bertc-*.tmp`). Registered first, the handler at worst unlinks a path
/// that does not exist yet.
pub fn create_registered<R>(
    dir: &Path,
    prefix: &str,
    suffix: &str,
    mut create: impl FnMut(&Path) -> std::io::Result<R>,
) -> std::io::Result<(TempGuard, tempfile::NamedTempFile<R>)> {
    let mut guard = None;
    let created = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .make_in(dir, |path| {
            let registered = TempGuard::register(path);
            let r = create(path)?;
            guard = Some(registered);
            Ok(r)
        })?;
    Ok((guard.expect("registered when created"), created))
}

/// A temporary file or folder registered for removal on a signal;
/// unregistered on drop. A folder is removed only if every path inside it
/// is registered too (the handler never walks a folder).
pub struct TempGuard {
    slot: Option<usize>,
}

impl TempGuard {
    /// Registers `path` (a file or folder bertc is creating). When every
    /// slot is taken the path is simply not guarded (the write itself still
    /// works).
    pub fn register(path: &Path) -> TempGuard {
        install();
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return TempGuard { slot: None };
        };
        let raw = c.into_raw();
        for (i, slot) in TEMP_FILES.iter().enumerate() {
            if slot
                .compare_exchange(std::ptr::null_mut(), raw, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return TempGuard { slot: Some(i) };
            }
        }
        // SAFETY: `raw` came from `into_raw` above and was never shared.
        drop(unsafe { CString::from_raw(raw) });
        TempGuard { slot: None }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // The string is leaked, not freed: a handler running on another
            // thread may have loaded the pointer just before this swap.
            // It is one short path per written file.
            TEMP_FILES[i].store(std::ptr::null_mut(), Ordering::SeqCst);
        }
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores:
/// `bertc … | head` then ends quietly when `head` exits, as every Unix
/// tool does, instead of panicking in `println!` on the broken pipe.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
