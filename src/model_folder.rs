//! Files a model folder names by relative path (modules.json's module
//! paths, the tokenizer and module files an export copies): each must stay
//! inside the folder once symlinks are resolved, and be a regular file.
//! A folder from a stranger could otherwise point bertc at `../../.ssh`
//! or at a FIFO that blocks the read forever.

use std::path::{Component, Path, PathBuf};

/// A path a model folder names that bertc refuses to read.
#[derive(Debug, thiserror::Error)]
pub enum FolderPathError {
    #[error(
        "{}: `{relative}` leaves the model folder{}; files a model names must stay inside its folder",
        .folder.display(),
        .resolved.as_ref().map(|r| format!(" (it resolves to {})", r.display())).unwrap_or_default()
    )]
    Outside {
        folder: PathBuf,
        relative: String,
        resolved: Option<PathBuf>,
    },
    #[error("{}: is {kind}, not a regular file", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

/// `folder/relative` when it exists, resolves inside `folder` and is a
/// regular file; `Ok(None)` when there is nothing at that path.
pub fn regular_file_inside(folder: &Path, relative: &str) -> Result<Option<PathBuf>, FolderPathError> {
    let Some(path) = resolve_inside(folder, relative)? else {
        return Ok(None);
    };
    let meta = std::fs::metadata(&path).map_err(|error| FolderPathError::Io {
        path: path.clone(),
        error,
    })?;
    if !meta.is_file() {
        return Err(FolderPathError::NotRegular {
            path,
            kind: if meta.is_dir() {
                "a folder"
            } else {
                "a device, FIFO or socket"
            },
        });
    }
    Ok(Some(folder.join(relative)))
}

/// `folder/relative` resolved (symlinks followed) when it exists and stays
/// inside the resolved `folder`; `Ok(None)` when nothing is there. The
/// relative path itself may not be absolute or climb with `..`.
pub fn resolve_inside(folder: &Path, relative: &str) -> Result<Option<PathBuf>, FolderPathError> {
    let outside = |resolved: Option<PathBuf>| FolderPathError::Outside {
        folder: folder.to_path_buf(),
        relative: relative.to_string(),
        resolved,
    };
    let rel = Path::new(relative);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside(None));
    }
    let joined = folder.join(rel);
    if std::fs::symlink_metadata(&joined).is_err() {
        return Ok(None);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| FolderPathError::Io { path, error }
    };
    let base = folder.canonicalize().map_err(io(folder))?;
    // A dangling symlink fails here: it is reported, not skipped.
    let resolved = joined.canonicalize().map_err(io(&joined))?;
    if !resolved.starts_with(&base) {
        return Err(outside(Some(resolved)));
    }
    Ok(Some(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climbing_absolute_and_symlinked_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("vocab.txt"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        assert!(regular_file_inside(&model, "vocab.txt").unwrap().is_some());
        assert!(regular_file_inside(&model, "tokenizer.json").unwrap().is_none());
        for bad in ["../secret", "/etc/passwd", "a/../../secret"] {
            let e = regular_file_inside(&model, bad).unwrap_err().to_string();
            assert!(e.contains("leaves the model folder"), "{bad}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), model.join("tokenizer.json")).unwrap();
            let e = regular_file_inside(&model, "tokenizer.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains("resolves to"), "{e}");
            std::os::unix::fs::symlink("/dev/zero", model.join("special_tokens_map.json")).unwrap();
            assert!(regular_file_inside(&model, "special_tokens_map.json").is_err());
        }
        std::fs::create_dir(model.join("1_Pooling")).unwrap();
        let e = regular_file_inside(&model, "1_Pooling").unwrap_err().to_string();
        assert!(e.contains("a folder, not a regular file"), "{e}");
    }
}
