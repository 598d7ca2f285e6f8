//! Downloads a hub repository's files into the huggingface_hub cache in
//! its layout, so Python sees them too: each file to `blobs/<etag>.part`,
//! renamed to `blobs/<etag>` once whole, linked from
//! `snapshots/<commit>/<file>` (a relative symlink), and a branch or tag's
//! commit written to `refs/<revision>`. Nothing is written outside
//! `models--org--name/`: the commit and etags the server sends are checked
//! to be plain tokens before they name anything ([`super::http`]).
//!
//! Only what bertc reads is fetched: the weights (safetensors preferred,
//! a sharded index with its shards), the tokenizer files, the
//! sentence-transformers module files, and config.json LAST: a snapshot
//! with config.json is complete ([`super::cache::COMPLETE_MARKER`]), so an
//! interrupted download is fetched again rather than read half.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use super::cache::COMPLETE_MARKER;
use super::http::HubClient;
use super::{is_commit_hash, HubError, HubId, HubSettings};
use crate::sentence_transformers::{MODULES_FILE, SBERT_CONFIG_FILE, ST_CONFIG_FILE};
use crate::tokenize::TOKENIZER_FILES;
use crate::weights::WEIGHT_FILES;

/// A shard index or modules.json is a few hundred kB at most.
const MAX_LIST_BYTES: u64 = 64 << 20;

/// Fetches `id` at `revision` into `settings.cache`, sending `token` (if
/// any) to the hub alone.
pub fn download(
    id: &HubId,
    revision: &str,
    settings: &HubSettings,
    token: Option<String>,
) -> Result<(), HubError> {
    let repository = settings.cache.join(id.folder_name());
    let failed = |message: String| HubError::Download {
        id: id.to_string(),
        revision: revision.to_string(),
        endpoint: settings.endpoint.clone(),
        cache: repository.clone(),
        message,
    };
    let client = HubClient::new(&settings.endpoint, token);
    let info = client.info(&id.to_string(), revision).map_err(failed)?;
    let listed: BTreeSet<String> = info.files.into_iter().collect();
    let writer = CacheWriter {
        repository: &repository,
        commit: &info.commit,
    };
    let fetch = |name: &str| -> Result<PathBuf, HubError> {
        if !is_plain_relative(name) {
            return Err(HubError::Repository {
                id: id.to_string(),
                revision: revision.to_string(),
                endpoint: settings.endpoint.clone(),
                problem: format!("lists the file `{name}`, which would leave the snapshot folder"),
            });
        }
        writer.fetch(&client, &id.to_string(), name).map_err(|e| match e {
            Fetch::Server(message) => failed(message),
            Fetch::Io(e) => e,
        })
    };
    if !listed.contains(COMPLETE_MARKER) {
        return Err(HubError::Repository {
            id: id.to_string(),
            revision: revision.to_string(),
            endpoint: settings.endpoint.clone(),
            problem: "has no config.json: it is not a transformers model".into(),
        });
    }
    let mut wanted: Vec<String> = vec![];
    if let Some(weights) = WEIGHT_FILES.iter().find(|w| listed.contains(**w)) {
        wanted.push(weights.to_string());
        if weights.ends_with(".index.json") {
            let index = read_small(&fetch(weights)?)?;
            wanted.extend(shards(&index).into_iter().filter(|s| listed.contains(s)));
        }
    }
    if listed.contains(MODULES_FILE) {
        let modules = read_small(&fetch(MODULES_FILE)?)?;
        wanted.push(MODULES_FILE.to_string());
        for module in module_paths(&modules) {
            let prefix = format!("{module}/");
            // The module folder's own files, as an export copies them.
            wanted.extend(
                listed
                    .iter()
                    .filter(|f| f.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('/')))
                    .cloned(),
            );
        }
    }
    let extra = [SBERT_CONFIG_FILE, ST_CONFIG_FILE]
        .into_iter()
        .chain(TOKENIZER_FILES);
    wanted.extend(extra.filter(|f| listed.contains(*f)).map(str::to_string));
    let mut seen = BTreeSet::new();
    for name in wanted.iter().filter(|n| seen.insert(n.as_str())) {
        fetch(name)?;
    }
    fetch(COMPLETE_MARKER)?;
    // A branch or tag points at its commit, as huggingface_hub records it
    // (a commit hash needs no ref).
    if !is_commit_hash(revision) {
        writer.write_ref(revision)?;
    }
    Ok(())
}

/// Why a file could not be fetched: the server, or the local disk.
enum Fetch {
    Server(String),
    Io(HubError),
}

/// Writes one repository's files into its cache folder.
struct CacheWriter<'a> {
    repository: &'a Path,
    commit: &'a str,
}

impl CacheWriter<'_> {
    /// Downloads `name` (unless its blob is already there) and links it
    /// into the snapshot; returns the snapshot's path of it.
    fn fetch(&self, client: &HubClient, id: &str, name: &str) -> Result<PathBuf, Fetch> {
        let meta = client.metadata(id, self.commit, name).map_err(Fetch::Server)?;
        let blobs = self.repository.join("blobs");
        create_dir(&blobs).map_err(Fetch::Io)?;
        let blob = blobs.join(&meta.etag);
        if !blob.is_file() {
            let part = blobs.join(format!("{}.part", meta.etag));
            // An interrupted download's part is ours by its name: drop it
            // (a link there is removed, never followed).
            match std::fs::symlink_metadata(&part) {
                Ok(m) if m.is_dir() => {
                    return Err(Fetch::Io(io_error(
                        &part,
                        std::io::Error::other("is a folder, not a partial download: left alone"),
                    )))
                }
                Ok(_) => std::fs::remove_file(&part).map_err(|e| Fetch::Io(io_error(&part, e)))?,
                Err(_) => {}
            }
            let bar = progress_bar(name, meta.size);
            let fetched = client.fetch(id, self.commit, name, &meta, &part, &mut |n| bar.set_position(n));
            bar.finish_and_clear();
            if let Err(message) = fetched {
                // The partial file is ours: never leave it to be read.
                let _ = std::fs::remove_file(&part);
                return Err(Fetch::Server(message));
            }
            std::fs::rename(&part, &blob).map_err(|e| Fetch::Io(io_error(&blob, e)))?;
        }
        let pointer = self.repository.join("snapshots").join(self.commit).join(name);
        if let Some(parent) = pointer.parent() {
            create_dir(parent).map_err(Fetch::Io)?;
        }
        // snapshots/<commit>/a/b → ../../../blobs/<etag>: one `..` per folder.
        let depth = name.split('/').count() + 1;
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(&meta.etag);
        match std::fs::symlink_metadata(&pointer) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::remove_file(&pointer).map_err(|e| Fetch::Io(io_error(&pointer, e)))?
            }
            Ok(_) => {
                return Err(Fetch::Io(io_error(
                    &pointer,
                    std::io::Error::other("exists and is not a link into blobs/: left alone"),
                )))
            }
            Err(_) => {}
        }
        symlink(&target, &pointer).map_err(|e| Fetch::Io(io_error(&pointer, e)))?;
        Ok(pointer)
    }

    fn write_ref(&self, revision: &str) -> Result<(), HubError> {
        let path = self.repository.join("refs").join(revision);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        // Whole or not at all, and never through a link planted there.
        crate::atomic_write::write_atomic(&path, self.commit.as_bytes()).map_err(|e| io_error(&path, e))
    }
}

fn io_error(path: &Path, error: std::io::Error) -> HubError {
    HubError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn create_dir(path: &Path) -> Result<(), HubError> {
    std::fs::create_dir_all(path).map_err(|e| io_error(path, e))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    // huggingface_hub copies where links are not allowed.
    let blob = link.parent().unwrap_or(link).join(target);
    std::fs::copy(blob, link).map(|_| ())
}

/// A byte bar on a terminal, nothing in a pipe.
fn progress_bar(name: &str, size: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size.unwrap_or(0));
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {bytes}/{total_bytes} {bar:30} {eta}") {
        bar.set_style(style);
    }
    bar.set_message(name.to_string());
    bar
}

/// A path inside the snapshot: plain names joined by `/`.
fn is_plain_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn read_small(path: &Path) -> Result<serde_json::Value, HubError> {
    let io = |error| HubError::Io {
        path: path.to_path_buf(),
        error,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_LIST_BYTES {
        return Err(io(std::io::Error::other(format!(
            "{size} bytes; a file listing other files is at most {MAX_LIST_BYTES}"
        ))));
    }
    let text = std::fs::read(path).map_err(io)?;
    serde_json::from_slice(&text).map_err(|e| io(std::io::Error::other(format!("not valid JSON: {e}"))))
}

/// The shard files a sharded checkpoint's index names (`weight_map`).
fn shards(index: &serde_json::Value) -> BTreeSet<String> {
    index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The non-empty module folders modules.json names.
fn module_paths(modules: &serde_json::Value) -> Vec<String> {
    let Some(list) = modules.as_array() else {
        return vec![];
    };
    list.iter()
        .filter_map(|m| m.get("path")?.as_str())
        .map(|p| p.trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_may_not_leave_the_snapshot() {
        assert!(is_plain_relative("1_Pooling/config.json"));
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "a\\b", "./a"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }

    #[test]
    fn indexes_and_modules_name_their_files() {
        let index = serde_json::json!({"weight_map": {"a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}});
        assert_eq!(shards(&index).len(), 2);
        let modules = serde_json::json!([{"path": ""}, {"path": "1_Pooling"}, {"path": "2_Normalize/"}]);
        assert_eq!(module_paths(&modules), ["1_Pooling", "2_Normalize"]);
    }
}
