//! Reading input files that strangers name: only regular files are opened.
//! A FIFO blocks the open itself, a device such as /dev/zero never ends, so
//! the kind is checked (with `stat`, which follows symlinks and never
//! blocks) before anything is opened or read.

use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};

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

/// A path named inside a model (ONNX external data) that bertc refuses.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("external data location `{location}` must be a relative path inside the model's folder")]
    NotRelative { location: String },
    #[error("cannot resolve the model's folder {}: {error}", .folder.display())]
    Folder { folder: PathBuf, error: Error },
    #[error("cannot read external data `{location}` ({}): {error}", .path.display())]
    Unreadable {
        location: String,
        path: PathBuf,
        error: Error,
    },
    #[error(
        "external data `{location}` resolves to {} (through a symbolic link), outside the model's \
         folder {}: refused",
        .real.display(), .folder.display()
    )]
    Outside {
        location: String,
        real: PathBuf,
        folder: PathBuf,
    },
}

/// Resolves `location`, a path a model names relative to its own folder
/// `dir` (ONNX external data), and refuses anything that leaves the folder:
/// an absolute path, `..`, or a symlink — of the file or of a folder on the
/// way — that points outside. Both sides are canonicalized, so the check is
/// on where the bytes really are, not on how the path is spelled. The
/// result is the canonical path of a regular file.
pub fn resolve_inside(dir: &Path, location: &str) -> Result<PathBuf, LocationError> {
    use std::path::Component;
    let rel = Path::new(location);
    if location.is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(LocationError::NotRelative {
            location: location.into(),
        });
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let folder = dir.canonicalize().map_err(|error| LocationError::Folder {
        folder: dir.to_path_buf(),
        error,
    })?;
    let unreadable = |path: &Path, error| LocationError::Unreadable {
        location: location.into(),
        path: path.to_path_buf(),
        error,
    };
    let joined = folder.join(rel);
    let real = joined.canonicalize().map_err(|e| unreadable(&joined, e))?;
    if !real.starts_with(&folder) {
        return Err(LocationError::Outside {
            location: location.into(),
            real,
            folder,
        });
    }
    require_regular(&real).map_err(|e| unreadable(&real, e))?;
    Ok(real)
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

    #[cfg(unix)]
    #[test]
    fn locations_stay_inside_the_folder_through_symlinks() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let model = root.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("w.bin"), b"inside").unwrap();
        std::fs::write(root.path().join("secret"), b"outside").unwrap();
        symlink("w.bin", model.join("inside-link")).unwrap();
        symlink("../secret", model.join("outside-link")).unwrap();
        symlink(root.path(), model.join("outside-dir")).unwrap();
        let inside = model.join("w.bin").canonicalize().unwrap();
        assert_eq!(resolve_inside(&model, "w.bin").unwrap(), inside);
        assert_eq!(resolve_inside(&model, "./inside-link").unwrap(), inside);
        for bad in ["outside-link", "outside-dir/secret"] {
            let err = resolve_inside(&model, bad).unwrap_err();
            assert!(matches!(err, LocationError::Outside { .. }), "{err}");
            assert!(err.to_string().contains(&format!("`{bad}` resolves to")), "{err}");
        }
        for bad in ["../secret", "/etc/passwd", "", "a/../w.bin"] {
            let err = resolve_inside(&model, bad).unwrap_err().to_string();
            assert!(err.contains("must be a relative path inside"), "{bad}: {err}");
        }
    }
}
