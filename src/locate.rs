//! What a model argument names, decided in one order for every command:
//! an existing local path wins (a folder named like a preset is that
//! folder), then a preset name, then a hub id `org/name` found in — or
//! downloaded into — the huggingface_hub cache ([`crate::hub`]).
//! A hub id may carry its revision as `org/name@rev`, the one way a model
//! list (`bench`, `sweep`) can pin a revision per model.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::hub::{HubId, HubSettings, Snapshot, DEFAULT_REVISION};

/// The order, for help texts and messages.
pub const ORDER: &str = "an existing path first, then a preset name, then a hub id org/name \
                         (from the huggingface_hub cache, downloaded into it when absent)";

/// Where a model argument points.
#[derive(Debug, Clone)]
pub enum Location {
    /// A file or folder on disk, as given.
    Path(PathBuf),
    /// A config shipped in the binary.
    Preset(&'static str),
    /// A hub repository's snapshot folder in the cache.
    Hub(HubId, Snapshot),
}

/// Locates `arg`; `revision` applies to hub ids alone (default `main`)
/// and is refused for anything else, where it would be silently ignored.
pub fn locate(arg: &str, revision: Option<&str>) -> Result<Location, Error> {
    let path = Path::new(arg);
    if let Some((id, at)) = hub_id_at_revision(path) {
        let revision = one_revision(arg, at, revision)?;
        let snapshot = crate::hub::model_folder(&id, revision, &HubSettings::from_env()?)?;
        return Ok(Location::Hub(id, snapshot));
    }
    // symlink_metadata: a dangling link is a path (reported as one), not
    // a preset or hub id of the same spelling.
    // A missing file in an existing folder (`out/model`) is a path too:
    // only an id whose first part is no local folder goes to the hub.
    let location = if std::fs::symlink_metadata(path).is_ok() || in_local_folder(path) {
        Location::Path(path.to_path_buf())
    } else if let Some((name, _)) = crate::presets::PRESETS.iter().find(|(n, _)| *n == arg) {
        Location::Preset(name)
    } else if let Some(id) = HubId::parse(arg) {
        let revision = revision.unwrap_or(DEFAULT_REVISION);
        let snapshot = crate::hub::model_folder(&id, revision, &HubSettings::from_env()?)?;
        return Ok(Location::Hub(id, snapshot));
    } else {
        return Err(Error::UnknownModel {
            name: arg.to_string(),
            suggestion: crate::source::closest_preset(arg),
        });
    };
    match revision {
        Some(r) => Err(Error::RevisionWithoutHubId {
            model: arg.to_string(),
            revision: r.to_string(),
        }),
        None => Ok(location),
    }
}

impl Location {
    /// The path a command reads: the argument's own, or the snapshot
    /// folder of a hub id; `None` for a preset.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::Path(p) => Some(p),
            Location::Preset(_) => None,
            Location::Hub(_, s) => Some(&s.folder),
        }
    }
}

/// For commands that read files only (`run`: an export folder, a model
/// folder or an .onnx file): an existing path as it is, a hub id's
/// snapshot folder, and anything else as given, for the command's own
/// "not found" to name it.
pub fn locate_path(arg: &Path, revision: Option<&str>) -> Result<PathBuf, Error> {
    if let Some((id, at)) = hub_id_at_revision(arg) {
        let revision = one_revision(&arg.display().to_string(), at, revision)?;
        return Ok(crate::hub::model_folder(&id, revision, &HubSettings::from_env()?)?.folder);
    }
    let exists = std::fs::symlink_metadata(arg).is_ok() || in_local_folder(arg);
    match arg.to_str().and_then(HubId::parse) {
        Some(id) if !exists => {
            let revision = revision.unwrap_or(DEFAULT_REVISION);
            Ok(crate::hub::model_folder(&id, revision, &HubSettings::from_env()?)?.folder)
        }
        _ => match revision {
            Some(r) => Err(Error::RevisionWithoutHubId {
                model: arg.display().to_string(),
                revision: r.to_string(),
            }),
            None => Ok(arg.to_path_buf()),
        },
    }
}

/// `org/name@rev` as a hub id and its revision, unless the whole spelling
/// is a local path (a local path always wins).
fn hub_id_at_revision(arg: &Path) -> Option<(HubId, &str)> {
    let (id, revision) = arg.to_str()?.rsplit_once('@')?;
    let local = std::fs::symlink_metadata(arg).is_ok() || in_local_folder(arg);
    match local {
        true => None,
        false => Some((HubId::parse(id)?, revision)),
    }
}

/// The revision of `org/name@rev`, refused when `--revision` names one too
/// (two answers to one question); the hub checks the revision itself.
fn one_revision<'a>(model: &str, at: &'a str, flag: Option<&str>) -> Result<&'a str, Error> {
    match flag {
        Some(r) => Err(Error::TwoRevisions {
            model: model.to_string(),
            revision: r.to_string(),
        }),
        None => Ok(at),
    }
}

/// Whether `path` names something inside an existing local folder: then it
/// is a (missing) path, whatever its spelling, and reaches no network.
fn in_local_folder(path: &Path) -> bool {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .is_some_and(|p| std::fs::symlink_metadata(p).is_ok())
}
