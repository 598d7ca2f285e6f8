//! Writing output files so that a failure never leaves a partial file:
//! the bytes go to a temporary file in the destination's folder, which is
//! renamed over the destination only once complete.

use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".bertc-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // No fsync: the guarantee is "complete file or none" against errors
    // and interruptions of bertc, which rename gives. Durability across a
    // power loss would cost a full disk flush (over a second for BERT-base)
    // on every compile of an artifact that can be rebuilt byte for byte.
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
