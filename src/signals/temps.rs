//! The registry of temporary paths to remove on a signal: fixed slots of
//! leaked C strings, read by the handler without allocating or locking.

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Temporary paths registered at once: one per concurrent atomic write,
/// plus an export folder's own files (about a dozen).
const SLOTS: usize = 64;

/// How deep registered folders may nest inside each other and still all be
/// removed (an export folder holds `1_Pooling/`-style module folders).
const FOLDER_DEPTH: usize = 4;

/// Paths (NUL-terminated, leaked) to unlink on a signal; null = free slot.
static TEMP_FILES: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

/// Unlinks every registered path, then removes the registered folders
/// once emptied. Async-signal-safe: called from the signal handler.
pub(super) fn remove_registered() {
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
