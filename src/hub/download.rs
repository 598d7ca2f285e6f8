//! Downloads a hub repository's files into the huggingface_hub cache
//! through the `hf-hub` crate, which writes huggingface_hub's layout: each
//! file to `blobs/<etag>.part`, renamed to `blobs/<etag>` once whole, then
//! linked from `snapshots/<commit>/` and the revision's commit written to
//! `refs/`. Nothing is written outside `models--org--name/`.
//!
//! Only what bertc reads is fetched: the weights (safetensors preferred,
//! a sharded index with its shards), the tokenizer files, the
//! sentence-transformers module files, and config.json LAST: a snapshot
//! with config.json is complete ([`super::cache::COMPLETE_MARKER`]), so an
//! interrupted download is fetched again rather than read half.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use super::cache::COMPLETE_MARKER;
use super::{HubError, HubId, HubSettings};
use crate::sentence_transformers::{MODULES_FILE, SBERT_CONFIG_FILE, ST_CONFIG_FILE};
use crate::tokenize::TOKENIZER_FILES;
use crate::weights::WEIGHT_FILES;

/// A shard index or modules.json is a few hundred kB at most.
const MAX_LIST_BYTES: u64 = 64 << 20;

/// Fetches `id` at `revision` into `settings.cache`.
pub fn download(id: &HubId, revision: &str, settings: &HubSettings) -> Result<(), HubError> {
    let failed = |message: String| HubError::Download {
        id: id.to_string(),
        revision: revision.to_string(),
        endpoint: settings.endpoint.clone(),
        cache: settings.cache.join(id.folder_name()),
        message,
    };
    let api = ApiBuilder::from_cache(Cache::new(settings.cache.clone()))
        .with_endpoint(settings.endpoint.clone())
        .with_token(settings.token.clone())
        .with_progress(std::io::stderr().is_terminal())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    let info = repo.info().map_err(|e| failed(e.to_string()))?;
    let listed: BTreeSet<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let fetch = |name: &str| -> Result<PathBuf, HubError> {
        if !is_plain_relative(name) {
            return Err(HubError::Repository {
                id: id.to_string(),
                revision: revision.to_string(),
                endpoint: settings.endpoint.clone(),
                problem: format!("lists the file `{name}`, which would leave the snapshot folder"),
            });
        }
        repo_download(&repo, name).map_err(|e| failed(format!("{name}: {e}")))
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
    Ok(())
}

/// One file through hf-hub (its errors are turned into text by the caller).
fn repo_download(repo: &ApiRepo, name: &str) -> Result<PathBuf, hf_hub::api::sync::ApiError> {
    repo.download(name)
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
