//! Writing output files so that a failure never leaves a partial file:
//! the bytes go to a temporary file in the destination's folder, which is
//! renamed over the destination only once complete.
//!
//! It also holds the one output-path policy of every command that writes
//! ([`check_output`]): an output is a regular file or a new path, never a
//! device, FIFO, symlink or folder (rename would replace the node itself,
//! e.g. `/dev/null`), and never a file that is an input of the same command.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// An output path bertc refuses to write.
#[derive(Debug, thiserror::Error)]
pub enum OutputPathError {
    #[error(
        "{}: is a {kind}; outputs are written only to regular files or new paths \
         (writing would replace the {kind} itself)",
        .path.display()
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{}: is also the {role} of this command ({}); writing it would destroy that input: \
         choose another output path",
        .path.display(), .input.display()
    )]
    IsInput {
        path: PathBuf,
        role: String,
        input: PathBuf,
    },
    #[error("{}: cannot inspect the output path: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

impl From<OutputPathError> for std::io::Error {
    fn from(e: OutputPathError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// What kind of node `meta` (not following symlinks) describes.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "folder"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Whether two metadata are the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Refuses an output that is not a regular file or a new path.
pub fn check_destination(path: &Path) -> Result<(), OutputPathError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(OutputPathError::Io {
            path: path.to_path_buf(),
            error,
        }),
        Ok(meta) if meta.file_type().is_file() => Ok(()),
        Ok(meta) => Err(OutputPathError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        }),
    }
}

/// The output policy of a command: `output` must be a regular file or a
/// new path, and none of `inputs` (role, path), compared by device and
/// inode so that `./c.json`, a hard link or a symlink to it all count.
/// Inputs that do not exist (presets, optional files) are skipped.
pub fn check_output(output: &Path, inputs: &[(&str, &Path)]) -> Result<(), OutputPathError> {
    check_destination(output)?;
    let Ok(out_meta) = std::fs::metadata(output) else {
        return Ok(());
    };
    for (role, input) in inputs {
        if let Ok(meta) = std::fs::metadata(input) {
            if same_file(&out_meta, &meta) {
                return Err(OutputPathError::IsInput {
                    path: output.to_path_buf(),
                    role: role.to_string(),
                    input: input.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// The folder a temporary file beside `path` goes in.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A new file at `path` with the permissions an ordinary new file gets
/// (0666 less the umask), not tempfile's private 0600: the renamed output
/// must be as readable as any file the user writes.
fn create_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o666);
    }
    options.open(path)
}

/// A temporary file beside `path` (`.bertc-*.tmp`), registered for removal
/// on SIGINT/SIGTERM/SIGHUP before it is created
/// ([`crate::signals::create_registered`]; removed by the handlers the
/// program installed, [`crate::signals::CleanupHandlers`] in `bertc`).
#[cfg(unix)]
fn guarded_temp_beside(path: &Path) -> std::io::Result<(crate::signals::TempGuard, NamedTempFile)> {
    crate::signals::create_registered(dir_of(path), ".bertc-", ".tmp", create_new_file)
}

#[cfg(not(unix))]
fn guarded_temp_beside(path: &Path) -> std::io::Result<((), NamedTempFile)> {
    let file = tempfile::Builder::new()
        .prefix(".bertc-")
        .suffix(".tmp")
        .make_in(dir_of(path), create_new_file)?;
    Ok(((), file))
}

/// Writes `bytes` to `path` through a temporary file (removed on error and
/// on SIGINT/SIGTERM/SIGHUP). Refuses a destination that is not a regular
/// file or a new path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    check_destination(path)?;
    // `_guard` is declared first so that it is dropped last, after the
    // temporary file is renamed or (on error) removed.
    let (_guard, mut tmp) = guarded_temp_beside(path)?;
    // No fsync: the guarantee is "complete file or none" against errors
    // and interruptions of bertc, which rename gives. Durability across a
    // power loss would cost a full disk flush (over a second for BERT-base)
    // on every compile of an artifact that can be rebuilt byte for byte.
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A file of known length produced in place, in a temporary file beside
/// its destination, possibly before it is known to be kept: `fill` writes
/// straight into the file's pages through a memory map (no copy of the
/// whole, possibly 1 GB, content through a buffer), and the check reads
/// those pages (no second copy in memory, no copy into the page cache —
/// for BERT-base each cost up to a second). [`finish`]
/// renames the file into place; dropping it removes the file. The file is
/// removed on SIGINT/SIGTERM/SIGHUP too.
///
/// [`finish`]: EarlyWrite::finish
pub struct EarlyWrite {
    path: PathBuf,
    len: usize,
    temp: GuardedTemp,
}

/// A temporary file and its signal guard, dropped in this order: the file
/// is removed before the guard stops covering it.
struct GuardedTemp {
    file: NamedTempFile,
    #[cfg(unix)]
    _guard: crate::signals::TempGuard,
}

impl EarlyWrite {
    /// Checks the destination, creates a temporary file of `len` bytes
    /// beside it (blocks reserved: a full disk is an error here), lets
    /// `fill` write them through a memory map, and returns the write with
    /// the bytes (the map, read-only; it stays valid after the rename).
    pub fn mapped(
        path: &Path,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> std::io::Result<(EarlyWrite, bytes::Bytes)> {
        check_destination(path)?;
        let (guard, file) = guarded_temp_beside(path)?;
        #[cfg(not(unix))]
        let () = guard;
        let temp = GuardedTemp {
            file,
            #[cfg(unix)]
            _guard: guard,
        };
        reserve(temp.file.as_file(), len)?;
        let bytes = if len == 0 {
            bytes::Bytes::new()
        } else {
            // SAFETY: the file is ours alone (a fresh temporary file, never
            // truncated by bertc), sized above; the map lives as long as
            // the bytes that borrow it.
            let mut map = unsafe { memmap2::MmapMut::map_mut(temp.file.as_file())? };
            fill(&mut map[..]);
            bytes::Bytes::from_owner(map.make_read_only()?)
        };
        let write = EarlyWrite {
            path: path.to_path_buf(),
            len,
            temp,
        };
        Ok((write, bytes))
    }

    /// Where the file goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file into place (the destination is checked again: it
    /// may have changed meanwhile); returns the file's size.
    pub fn finish(self) -> std::io::Result<usize> {
        check_destination(&self.path)?;
        self.temp.file.persist(&self.path).map_err(|e| e.error)?;
        Ok(self.len)
    }
}

/// Sizes `file` to `len` bytes with its disk blocks allocated now, so that
/// a full disk is an error here (and the temporary file is removed) rather
/// than a SIGBUS when a page of a sparse file's memory map is first written.
fn reserve(file: &std::fs::File, len: usize) -> std::io::Result<()> {
    #[cfg(unix)]
    if len > 0 {
        use std::os::unix::io::AsRawFd;
        let len = libc::off_t::try_from(len)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "file too large"))?;
        // SAFETY: a valid open descriptor and a non-negative length.
        // posix_fallocate returns the error number (it does not set errno);
        // glibc writes zeros itself where the filesystem has no fallocate.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
            0 => return Ok(()),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
    file.set_len(len as u64)
}

/// Writes two files that are only meaningful together — a model and its
/// external data — so that neither is ever left without the other: both
/// are written in full to temporary files beside their destinations
/// (removed on error and on SIGINT/SIGTERM/SIGHUP), then renamed, `first`
/// (the data) before `second` (the model that names it), as one step
/// ([`crate::signals::without_interruption`]): a signal meanwhile, on any
/// thread, waits for both renames. Should the second rename fail, the
/// first file is removed again. (Only SIGKILL within the microseconds of
/// the two renames can split them.)
pub fn write_atomic_pair(
    first: &Path,
    fill_first: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    second: &Path,
    fill_second: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    check_destination(first)?;
    check_destination(second)?;
    let (_guard_first, tmp_first) = guarded_temp_beside(first)?;
    let (_guard_second, tmp_second) = guarded_temp_beside(second)?;
    // Streamed through a buffer rather than a memory map: a full disk is
    // then an ordinary write error, not a SIGBUS.
    for (tmp, fill) in [
        (
            &tmp_first,
            Box::new(fill_first) as Box<dyn FnOnce(&mut dyn Write) -> _>,
        ),
        (&tmp_second, Box::new(fill_second)),
    ] {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
    }
    let rename_both = || -> std::io::Result<()> {
        tmp_first.persist(first).map_err(|e| e.error)?;
        if let Err(e) = tmp_second.persist(second) {
            let _ = std::fs::remove_file(first);
            return Err(e.error);
        }
        Ok(())
    };
    #[cfg(unix)]
    let renamed = crate::signals::without_interruption(rename_both);
    #[cfg(not(unix))]
    let renamed = rename_both();
    renamed
}

#[cfg(test)]
mod pair_tests {
    use super::*;

    #[test]
    fn both_files_or_neither() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = (dir.path().join("m.onnx_data"), dir.path().join("m.onnx"));
        write_atomic_pair(&data, |w| w.write_all(b"data"), &model, |w| w.write_all(b"model")).unwrap();
        assert_eq!(std::fs::read(&data).unwrap(), b"data");
        assert_eq!(std::fs::read(&model).unwrap(), b"model");
        // A failure while producing the model leaves the previous pair as it was.
        let err = write_atomic_pair(
            &data,
            |w| w.write_all(b"new data"),
            &model,
            |_| Err(std::io::Error::other("serialization failed")),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "serialization failed");
        assert_eq!(std::fs::read(&data).unwrap(), b"data");
        assert_eq!(std::fs::read(&model).unwrap(), b"model");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_data_path_that_is_not_a_regular_file_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = (dir.path().join("m.onnx_data"), dir.path().join("m.onnx"));
        std::os::unix::fs::symlink("/dev/null", &data).unwrap();
        let err = write_atomic_pair(&data, |w| w.write_all(b"d"), &model, |w| w.write_all(b"m")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!model.exists());
    }
}
