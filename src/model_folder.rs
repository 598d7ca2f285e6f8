//! Files a model folder names by relative path (modules.json's module
//! paths, the tokenizer and module files an export copies): each must stay
//! inside the folder once symlinks are resolved, and be a regular file.
//! A folder from a stranger could otherwise point bertc at `../../.ssh`
//! or at a FIFO that blocks the read forever.
//!
//! A huggingface_hub snapshot (`models--org--name/snapshots/<rev>/`) is
//! the one folder whose files live elsewhere by design: each is a symlink
//! into `../../blobs/`. Its files must stay inside the repository's cache
//! folder `models--org--name/` instead ([`boundary`]).

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
    let canonical = folder.canonicalize().map_err(io(folder))?;
    let base = boundary(&canonical);
    // A dangling symlink fails here: it is reported, not skipped.
    let resolved = joined.canonicalize().map_err(io(&joined))?;
    if !resolved.starts_with(base) {
        return Err(outside(Some(resolved)));
    }
    Ok(Some(resolved))
}

/// What the files of the canonical `folder` must resolve inside: the
/// folder itself, or for a huggingface_hub snapshot the repository's
/// cache folder that holds its `blobs/`.
pub fn boundary(folder: &Path) -> &Path {
    let named =
        |p: &Path, test: &dyn Fn(&str) -> bool| p.file_name().and_then(|n| n.to_str()).is_some_and(test);
    folder
        .parent()
        .filter(|snapshots| named(snapshots, &|n| n == "snapshots"))
        .and_then(Path::parent)
        .filter(|repository| named(repository, &|n| n.starts_with("models--")))
        .unwrap_or(folder)
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

    #[cfg(unix)]
    #[test]
    fn a_hub_snapshot_reads_its_blobs_and_nothing_beyond_its_repository() {
        use std::os::unix::fs::symlink;
        let cache = tempfile::tempdir().unwrap();
        let repository = cache.path().join("models--org--name");
        let snapshot = repository.join("snapshots/abc");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repository.join("blobs")).unwrap();
        std::fs::write(repository.join("blobs/e1"), "v").unwrap();
        symlink("../../blobs/e1", snapshot.join("vocab.txt")).unwrap();
        let other = cache.path().join("models--org--other/blobs");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("e2"), "s").unwrap();
        symlink(
            "../../../models--org--other/blobs/e2",
            snapshot.join("tokenizer.json"),
        )
        .unwrap();
        assert!(regular_file_inside(&snapshot, "vocab.txt").unwrap().is_some());
        let e = regular_file_inside(&snapshot, "tokenizer.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("leaves the model folder") && e.contains("models--org--other"),
            "{e}"
        );
        // The same link from a folder not laid out as a snapshot is refused.
        let plain = cache.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        symlink("../models--org--name/blobs/e1", plain.join("vocab.txt")).unwrap();
        assert!(regular_file_inside(&plain, "vocab.txt").is_err());
    }

    #[test]
    fn only_a_snapshot_of_a_models_repository_widens_the_boundary() {
        let p = Path::new("/c/models--a--b/snapshots/h");
        assert_eq!(boundary(p), Path::new("/c/models--a--b"));
        for same in ["/c/datasets--a--b/snapshots/h", "/c/models--a--b/other/h", "/c/x"] {
            assert_eq!(boundary(Path::new(same)), Path::new(same));
        }
    }
}
