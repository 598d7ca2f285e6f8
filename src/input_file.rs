//! Reading input files that strangers name: only regular files are opened.
//! A FIFO blocks the open itself, a device such as /dev/zero never ends, so
//! the kind is checked (with `stat`, which follows symlinks and never
//! blocks) before anything is opened or read.

use std::io::{Error, ErrorKind};
use std::path::Path;

/// Fails unless `path` is a regular file (or a symlink to one).
pub fn require_regular(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        "a device, FIFO or socket"
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{kind}, not a regular file"),
    ))
}

/// The whole content of a regular file.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    require_regular(path)?;
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_regular_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read_regular(&file).unwrap(), b"abc");
        let err = read_regular(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let err = read_regular(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(err.contains("a device, FIFO or socket"), "{err}");
    }
}
