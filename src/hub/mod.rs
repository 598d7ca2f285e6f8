//! Models named by their hub id (`org/name`), as every tool of the
//! Hugging Face ecosystem names them: found in the local huggingface_hub
//! cache ([`cache`]), downloaded into it when absent ([`download`]).
//!
//! The cache is huggingface_hub's own, so a model fetched by Python is
//! used as it is and one fetched here is seen by Python: `HF_HUB_CACHE`,
//! else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.

pub mod cache;
pub mod download;
pub mod http;

use std::path::{Path, PathBuf};

pub use cache::{find_snapshot, Snapshot};

/// The revision a hub id names when none is given.
pub const DEFAULT_REVISION: &str = "main";
/// The hub's address unless `HF_ENDPOINT` names another.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Why a hub id could not be turned into a model folder.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "hub model `{id}` (revision {revision}) is not in the huggingface_hub cache at {} and \
         HF_HUB_OFFLINE=1 forbids downloading it",
        .cache.display()
    )]
    Offline {
        id: String,
        revision: String,
        cache: PathBuf,
    },
    #[error(
        "{}: a file of hub model `{id}` resolves to {}, outside its repository's cache folder {}; \
         files of a cached model must stay inside it",
        .file.display(), .resolved.display(), .repository.display()
    )]
    Escapes {
        id: String,
        file: PathBuf,
        resolved: PathBuf,
        repository: PathBuf,
    },
    #[error("{}: holds `{content}`, not a commit hash", .path.display())]
    BadRef { path: PathBuf, content: String },
    #[error("`{revision}` is not a revision name: it may not be empty, absolute or climb with `..`")]
    BadRevision { revision: String },
    #[error(
        "cannot download hub model `{id}` (revision {revision}) from {endpoint}: {message}; the \
         cache searched was {} (HF_HUB_OFFLINE=1 uses it alone)",
        .cache.display()
    )]
    Download {
        id: String,
        revision: String,
        endpoint: String,
        cache: PathBuf,
        message: String,
    },
    #[error("hub model `{id}` (revision {revision}) at {endpoint} {problem}")]
    Repository {
        id: String,
        revision: String,
        endpoint: String,
        problem: String,
    },
    #[error("no huggingface_hub cache folder: HF_HUB_CACHE, HF_HOME and HOME are all unset")]
    NoCacheFolder,
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: the hub token file {problem}", .path.display())]
    TokenFile { path: PathBuf, problem: String },
}

/// A model id `org/name` as the hub spells them: two parts of letters,
/// digits, `-`, `_` and `.`, without `--` or `..` (huggingface_hub's own
/// rule: `--` separates the parts in the cache's folder names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    pub org: String,
    pub name: String,
}

impl HubId {
    /// `text` as a hub id, or `None` when it cannot be one.
    pub fn parse(text: &str) -> Option<HubId> {
        let (org, name) = text.split_once('/')?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 96
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !p.contains("--")
                && !p.contains("..")
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        };
        // A file name bertc reads (`out/model.onnx`, `dir/config.json`) is
        // a missing path, not a repository: never looked up on the hub.
        let lower = name.to_ascii_lowercase();
        let file_like = [".onnx", ".json", ".safetensors", ".bin", ".txt", ".model", ".pt"]
            .iter()
            .any(|e| lower.ends_with(e));
        (part_ok(org) && part_ok(name) && !file_like).then(|| HubId {
            org: org.to_string(),
            name: name.to_string(),
        })
    }

    /// The repository's folder in the cache: `models--org--name`.
    pub fn folder_name(&self) -> String {
        format!("models--{}--{}", self.org, self.name)
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.org, self.name)
    }
}

/// Where the cache is and how the hub is reached, from the environment
/// as huggingface_hub reads it.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub cache: PathBuf,
    pub endpoint: String,
    /// `HF_HUB_OFFLINE` set to a true value: the cache alone, no network.
    pub offline: bool,
    /// `HF_TOKEN`, for gated and private repositories; when unset, the
    /// token file is read at download time ([`token_from_env`]), so a bad
    /// file never stands between a user and a cached model.
    pub token: Option<String>,
}

impl HubSettings {
    pub fn from_env() -> Result<HubSettings, HubError> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let cache = match (var("HF_HUB_CACHE"), var("HF_HOME"), var("HOME")) {
            (Some(cache), _, _) => PathBuf::from(cache),
            (None, Some(home), _) => PathBuf::from(home).join("hub"),
            (None, None, Some(home)) => PathBuf::from(home).join(".cache/huggingface/hub"),
            (None, None, None) => return Err(HubError::NoCacheFolder),
        };
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        // huggingface_hub's truth values for its boolean variables.
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "on" | "yes" | "true"
            )
        });
        let token = std::env::var("HF_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Ok(HubSettings {
            cache,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            offline,
            token,
        })
    }
}

/// The longest token file read: hub tokens are ~40 characters.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The hub token as huggingface_hub finds it: `HF_TOKEN`, else the file at
/// `HF_TOKEN_PATH`, else `$HF_HOME/token` (`~/.cache/huggingface/token`,
/// where `huggingface-cli login` writes it). No file is no token; a file
/// that cannot be a token is refused by name rather than sent.
pub fn token_from_env() -> Result<Option<String>, HubError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token.trim().to_string()));
    }
    let path = match (var("HF_TOKEN_PATH"), var("HF_HOME"), var("HOME")) {
        (Some(path), _, _) => PathBuf::from(path),
        (None, Some(home), _) => PathBuf::from(home).join("token"),
        (None, None, Some(home)) => PathBuf::from(home).join(".cache/huggingface/token"),
        (None, None, None) => return Ok(None),
    };
    let io = |error| HubError::Io {
        path: path.clone(),
        error,
    };
    let refused = |problem: String| HubError::TokenFile {
        path: path.clone(),
        problem,
    };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() {
        return Err(refused("is not a regular file (a device, FIFO or folder)".into()));
    }
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(refused(format!(
            "holds {} bytes; a token file holds at most {MAX_TOKEN_FILE_BYTES}",
            meta.len()
        )));
    }
    let text = std::fs::read(&path).map_err(io)?;
    let token = String::from_utf8(text)
        .map_err(|_| refused("is not UTF-8 text".into()))?
        .trim()
        .to_string();
    // It goes into an Authorization header: one word of visible ASCII.
    match token.bytes().all(|b| b.is_ascii_graphic()) {
        _ if token.is_empty() => Ok(None),
        true => Ok(Some(token)),
        false => Err(refused(
            "holds more than one word of visible ASCII characters; a token is one".into(),
        )),
    }
}

/// The snapshot folder of `id` at `revision`: from the cache, else (unless
/// offline) downloaded into it first. Every file of the snapshot is checked
/// to resolve inside the repository's cache folder.
pub fn model_folder(id: &HubId, revision: &str, settings: &HubSettings) -> Result<Snapshot, HubError> {
    check_revision(revision)?;
    if let Some(snapshot) = find_snapshot(&settings.cache, id, revision)? {
        return Ok(snapshot);
    }
    if settings.offline {
        return Err(HubError::Offline {
            id: id.to_string(),
            revision: revision.to_string(),
            cache: settings.cache.join(id.folder_name()),
        });
    }
    let token = match &settings.token {
        Some(token) => Some(token.clone()),
        None => token_from_env()?,
    };
    download::download(id, revision, settings, token)?;
    find_snapshot(&settings.cache, id, revision)?.ok_or_else(|| HubError::Repository {
        id: id.to_string(),
        revision: revision.to_string(),
        endpoint: settings.endpoint.clone(),
        problem: "was downloaded, yet its snapshot has no config.json".into(),
    })
}

/// Branch and tag names may hold `/` (`refs/pr/1`), but no part of one may
/// climb out of `refs/` or `snapshots/`.
fn check_revision(revision: &str) -> Result<(), HubError> {
    let ok = !revision.is_empty()
        && !revision.contains('\\')
        && Path::new(revision)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        && !revision.split('/').any(str::is_empty);
    match ok {
        true => Ok(()),
        false => Err(HubError::BadRevision {
            revision: revision.to_string(),
        }),
    }
}

/// A 40-digit hexadecimal commit hash, as refs/ files hold them.
pub fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_two_plain_parts() {
        let id = HubId::parse("sentence-transformers/all-MiniLM-L6-v2").unwrap();
        assert_eq!(
            id.folder_name(),
            "models--sentence-transformers--all-MiniLM-L6-v2"
        );
        for bad in [
            "bert-base-uncased",
            "a/b/c",
            "../x",
            "a/..",
            "a--b/c",
            "/etc",
            "a/",
            "a/b c",
            ".a/b",
        ] {
            assert_eq!(HubId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn revisions_may_not_climb() {
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(check_revision(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/../../b", "/abs", "a//b", "a\\b", "."] {
            assert!(check_revision(bad).is_err(), "{bad}");
        }
    }
}
