//! The huggingface_hub cache layout, read: `models--org--name/refs/<rev>`
//! holds a commit hash, `snapshots/<hash>/` the files, each a symlink into
//! `../../blobs/<etag>`. A snapshot is used only when every file in it
//! resolves inside the repository's cache folder: a cache is a folder
//! anyone may have written into, and a link to `~/.ssh/id_rsa` named
//! `vocab.txt` must not be read.

use std::path::{Path, PathBuf};

use super::{is_commit_hash, HubError, HubId};

/// The file whose presence makes a snapshot usable: downloads write it
/// last ([`super::download`]), so a snapshot with it is complete.
pub const COMPLETE_MARKER: &str = "config.json";

/// A snapshot folder of a cached repository.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `<cache>/models--org--name/snapshots/<hash>`: the model folder.
    pub folder: PathBuf,
    /// `<cache>/models--org--name`: what every file must resolve inside.
    pub repository: PathBuf,
    pub commit: String,
}

/// The snapshot of `id` at `revision` (a branch, a tag or a commit hash)
/// in `cache`, when it is there with its config.json; `Ok(None)` when it
/// is not (nothing cached, or an interrupted download).
pub fn find_snapshot(cache: &Path, id: &HubId, revision: &str) -> Result<Option<Snapshot>, HubError> {
    let repository = cache.join(id.folder_name());
    let commit = match is_commit_hash(revision) && repository.join("snapshots").join(revision).is_dir() {
        true => revision.to_string(),
        false => match read_ref(&repository.join("refs").join(revision))? {
            Some(commit) => commit,
            None => return Ok(None),
        },
    };
    let folder = repository.join("snapshots").join(&commit);
    if std::fs::symlink_metadata(folder.join(COMPLETE_MARKER)).is_err() {
        return Ok(None);
    }
    check_contained(id, &folder, &repository)?;
    Ok(Some(Snapshot {
        folder,
        repository,
        commit,
    }))
}

/// The commit hash a refs/ file holds; `None` when there is no such file.
fn read_ref(path: &Path) -> Result<Option<String>, HubError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(HubError::Io {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let commit = text.trim();
    // The hash becomes a path: anything else (`../..`) is refused.
    match is_commit_hash(commit) {
        true => Ok(Some(commit.to_string())),
        false => Err(HubError::BadRef {
            path: path.to_path_buf(),
            content: commit.chars().take(80).collect(),
        }),
    }
}

/// Every entry under `folder`, symlinks followed, must resolve inside
/// `repository`: the error names the first that does not.
pub fn check_contained(id: &HubId, folder: &Path, repository: &Path) -> Result<(), HubError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| HubError::Io { path, error }
    };
    let root = repository.canonicalize().map_err(io(repository))?;
    let mut pending = vec![folder.to_path_buf()];
    while let Some(path) = pending.pop() {
        // A dangling link fails here and is reported with its name.
        let resolved = path.canonicalize().map_err(io(&path))?;
        if !resolved.starts_with(&root) {
            return Err(HubError::Escapes {
                id: id.to_string(),
                file: path,
                resolved,
                repository: repository.to_path_buf(),
            });
        }
        // Real folders only: a link to a folder (even a looping one) is
        // checked above and not walked; what is read through it later is
        // checked again by crate::model_folder.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let mut entries = vec![];
            for entry in std::fs::read_dir(&path).map_err(io(&path))? {
                entries.push(entry.map_err(io(&path))?.path());
            }
            // Sorted: the same cache names the same offending file.
            entries.sort();
            pending.extend(entries.into_iter().rev());
        }
    }
    Ok(())
}
