//! The source stage: what a model argument names — a preset, a
//! `config.json`, or a model folder — and where its weights come from.
//!
//! A folder (or the folder of a `config.json`) is searched for weights as
//! Hugging Face lays them out ([`find_weights`]); random weights are drawn
//! only for a preset or when asked for, so a config whose checkpoint was
//! forgotten is an error, never a silently random model.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::BertConfig;
use crate::error::Error;
use crate::locate::{locate, Location};
use crate::presets::{preset, PRESETS};
use crate::sentence_transformers::{read_modules, SentenceModules};
use crate::weights::{file_kind, find_weights, FileKind};

/// A resolved model argument.
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub config: BertConfig,
    /// The checkpoint to read; `None` for seeded random weights.
    pub weights: Option<PathBuf>,
    /// The folder the model came from (a folder argument, or a config's folder).
    pub folder: Option<PathBuf>,
    /// The config file read (`None` for a preset).
    pub config_file: Option<PathBuf>,
    /// A folder argument's sentence-transformers modules (modules.json):
    /// the sentence-embedding head by default. A config.json argument
    /// names the transformer alone, as transformers' AutoModel reads it.
    pub sentence: Option<SentenceModules>,
}

/// Where weights may come from when the argument does not name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingWeights {
    /// An error (compile): random weights only when asked for.
    Refuse,
    /// Seeded random weights (commands that measure speed or shapes).
    Random,
}

/// Resolves `arg` — a local path, a preset name or a hub id, in that
/// order ([`crate::locate`]) — with `revision` for a hub id, an explicit
/// `weights` override and whether random weights were asked for.
pub fn resolve(
    arg: &str,
    revision: Option<&str>,
    weights: Option<&Path>,
    random: bool,
    missing: MissingWeights,
) -> Result<ModelSource, Error> {
    let explicit = || weights.map(Path::to_path_buf);
    let location = locate(arg, revision)?;
    let path = match &location {
        Location::Preset(name) => {
            let text = preset(name).unwrap_or_default();
            let config = BertConfig::from_json_str(text, &format!("preset {name}"))?;
            return Ok(ModelSource {
                config,
                weights: explicit(),
                folder: None,
                config_file: None,
                sentence: None,
            });
        }
        Location::Path(path) => path.as_path(),
        Location::Hub(_, snapshot) => snapshot.folder.as_path(),
    };
    if !path.exists() {
        // A dangling symlink: nothing to read under that name.
        return Err(Error::UnknownModel {
            name: arg.to_string(),
            suggestion: closest_preset(arg),
        });
    }
    let (config_path, folder) = if path.is_dir() {
        let config = path.join("config.json");
        if !config.is_file() {
            return Err(Error::NotAModelFolder(path.to_path_buf()));
        }
        (config, path.to_path_buf())
    } else if !path.is_file() {
        // A device or FIFO (`/dev/zero`) would be read forever: refuse by type.
        return Err(Error::WrongKind {
            path: path.to_path_buf(),
            expected: "a config.json, a model folder or a preset name",
            found: "a device, FIFO or socket, not a regular file",
        });
    } else {
        match file_kind(path)? {
            // A damaged config is the config reader's to name (line, column).
            FileKind::Json | FileKind::InvalidJson => {}
            other => {
                return Err(Error::WrongKind {
                    path: path.to_path_buf(),
                    expected: "a config.json, a model folder or a preset name",
                    found: other.describe(),
                })
            }
        }
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (path.to_path_buf(), folder.to_path_buf())
    };
    let config = BertConfig::from_path(&config_path)?;
    let sentence = match path.is_dir() {
        true => read_modules(&folder)?,
        false => None,
    };
    if let Some(modules) = &sentence {
        modules.check(&folder, &config)?;
    }
    let weights = match (explicit(), random) {
        (Some(w), _) => Some(w),
        (None, true) => None,
        (None, false) => match (find_weights(&folder), missing) {
            (Some(found), _) => Some(found),
            (None, MissingWeights::Random) => None,
            (None, MissingWeights::Refuse) => return Err(Error::NoWeights(folder)),
        },
    };
    Ok(ModelSource {
        config,
        weights,
        folder: Some(folder),
        config_file: Some(config_path),
        sentence,
    })
}

impl ModelSource {
    /// The files this source reads, by role, for the output policy
    /// ([`crate::atomic_write::check_output`]): `arg` itself, its folder's
    /// config.json and the checkpoint.
    pub fn input_files(&self, arg: &str) -> Vec<(&'static str, PathBuf)> {
        let mut files = vec![("config", PathBuf::from(arg))];
        if let Some(folder) = &self.folder {
            files.push(("config", folder.join("config.json")));
        }
        if let Some(w) = &self.weights {
            files.push(("weights", w.clone()));
        }
        files
    }
}

/// The preset nearest to `name` by edit distance, if any is close.
pub(crate) fn closest_preset(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .map(|(p, _)| (edit_distance(name, p), *p))
        .filter(|(d, p)| *d <= (p.len() / 3).max(2))
        .min()
        .map(|(_, p)| p)
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The sha256 of a regular file, hex, streamed (checkpoints are hundreds
/// of MB). Anything else is refused before it is opened: a FIFO would
/// block the open, a device would never end.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    crate::input_file::require_regular(path)?;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("bert-base-uncased", "bert-base-uncased"), 0);
        assert_eq!(edit_distance("bert-base-uncase", "bert-base-uncased"), 1);
        assert_eq!(edit_distance("bert-bsae-uncased", "bert-base-uncased"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn a_near_miss_suggests_its_preset_and_nonsense_suggests_nothing() {
        assert_eq!(closest_preset("bert-base-uncase"), Some("bert-base-uncased"));
        assert_eq!(closest_preset("bert-tny"), Some("bert-tiny"));
        assert_eq!(closest_preset("gpt2-xl-something-else"), None);
    }
}
