//! Writing output files so that a failure never leaves a partial file:
//! the bytes go to a temporary file in the destination's folder, which is
//! renamed over the destination only once complete.

use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;

/// A temporary file beside `path`, created with the permissions an
/// ordinary new file gets (0666 less the umask), not tempfile's private
/// 0600: the renamed output must be as readable as any file the user writes.
fn temp_beside(path: &Path) -> std::io::Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".bertc-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = temp_beside(path)?;
    // No fsync: the guarantee is "complete file or none" against errors
    // and interruptions of bertc, which rename gives. Durability across a
    // power loss would cost a full disk flush (over a second for BERT-base)
    // on every compile of an artifact that can be rebuilt byte for byte.
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Like [`write_atomic`] for a file of known length produced in place:
/// `fill` writes straight into the file's pages through a memory map,
/// sparing a copy of the whole (possibly 1 GB) content through a buffer.
pub fn write_atomic_with(path: &Path, len: usize, fill: impl FnOnce(&mut [u8])) -> std::io::Result<()> {
    let tmp = temp_beside(path)?;
    tmp.as_file().set_len(len as u64)?;
    if len > 0 {
        // SAFETY: the file is ours alone (a fresh temporary file), sized
        // above, and the map is dropped before the file is renamed.
        let mut map = unsafe { memmap2::MmapMut::map_mut(tmp.as_file())? };
        fill(&mut map[..]);
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
