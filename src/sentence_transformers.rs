//! sentence-transformers model folders: `modules.json` lists the modules
//! `SentenceTransformer` chains after the transformer — Pooling
//! (`1_Pooling/config.json`), optionally Normalize — and
//! `sentence_bert_config.json` holds the truncation length. bertc builds
//! the same chain as the sentence-embedding head
//! ([`crate::builder::SentencePooling`]) and keeps `max_seq_length` in the
//! ONNX metadata (`bertc.max_seq_length`) for `run` to truncate at.
//!
//! A module bertc does not build (Dense, a weighted-mean or last-token
//! pooling, …) is refused by name: compiling without it would silently
//! give other vectors than sentence-transformers.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::builder::{Pooling, SentencePooling};
use crate::config::BertConfig;
use crate::model_folder::{regular_file_inside, FolderPathError};

/// The file that makes a folder a sentence-transformers model.
pub const MODULES_FILE: &str = "modules.json";
/// The Transformer module's settings (`max_seq_length`).
pub const SBERT_CONFIG_FILE: &str = "sentence_bert_config.json";
/// Versions and prompts; shipped with an export, not read.
pub const ST_CONFIG_FILE: &str = "config_sentence_transformers.json";

/// The settings file in a module's folder (`1_Pooling/config.json`).
pub const MODULE_CONFIG_FILE: &str = "config.json";

/// Module configs are a few hundred bytes; anything near this is not one.
const MAX_JSON_BYTES: u64 = 1 << 20;

/// What a sentence-transformers folder asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceModules {
    pub pooling: SentencePooling,
    /// `max_seq_length` of sentence_bert_config.json, when given.
    pub max_seq_length: Option<usize>,
    /// `word_embedding_dimension` of the Pooling config, when given.
    pub dimension: Option<usize>,
    /// The Pooling config, relative to the folder (for messages).
    pub pooling_config: String,
    /// The files that describe the modules, relative to the folder
    /// (modules.json, sentence_bert_config.json, each module folder's
    /// config.json): what an export folder ships beside model.onnx.
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SentenceError {
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: not valid JSON: {error}", .path.display())]
    Json { path: PathBuf, error: serde_json::Error },
    #[error("{}: {size} bytes; a sentence-transformers module file is at most {MAX_JSON_BYTES}", .path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: field `{field}` is {value}; expected {expected}", .path.display())]
    Field {
        path: PathBuf,
        field: String,
        value: String,
        expected: String,
    },
    #[error(
        "{}: module {index} has type `{kind}`, which bertc does not build (it builds Transformer, \
         Pooling and Normalize); compiling without it would give other vectors than sentence-transformers",
        .path.display()
    )]
    UnsupportedModule {
        path: PathBuf,
        index: usize,
        kind: String,
    },
    #[error(
        "{}: pooling mode `{field}` is set, which bertc does not build; supported: {}",
        .path.display(),
        Pooling::ALL.map(|p| format!("{} ({})", p.config_field(), p.name())).join(", ")
    )]
    UnsupportedPooling { path: PathBuf, field: String },
    #[error(
        "{}: {} pooling modes are set ({}); sentence-transformers concatenates them, which bertc does not \
         build: set exactly one",
        .path.display(), .fields.len(), .fields.join(", ")
    )]
    SeveralPoolings { path: PathBuf, fields: Vec<String> },
    #[error(
        "{}: no pooling mode is set; expected exactly one of {}",
        .path.display(),
        Pooling::ALL.map(Pooling::config_field).join(", ")
    )]
    NoPooling { path: PathBuf },
    #[error("{}: lists no {what} module; bertc builds Transformer → Pooling (→ Normalize)", .path.display())]
    MissingModule { path: PathBuf, what: &'static str },
    #[error(transparent)]
    Path(#[from] FolderPathError),
}

/// Reads `folder`'s sentence-transformers modules; `Ok(None)` when it has
/// no modules.json (a plain transformers folder).
pub fn read_modules(folder: &Path) -> Result<Option<SentenceModules>, SentenceError> {
    let Some(modules_path) = regular_file_inside(folder, MODULES_FILE)? else {
        return Ok(None);
    };
    let modules = read_json(&modules_path)?;
    let list = modules.as_array().ok_or_else(|| SentenceError::Field {
        path: modules_path.clone(),
        field: "(top level)".into(),
        value: kind_of(&modules).into(),
        expected: "a list of modules".into(),
    })?;
    let mut files = vec![MODULES_FILE.to_string()];
    let mut pooling = None;
    let mut normalize = false;
    let mut transformer = false;
    for (index, module) in list.iter().enumerate() {
        let field = |name: &str| -> Result<&str, SentenceError> {
            module
                .get(name)
                .and_then(Json::as_str)
                .ok_or_else(|| SentenceError::Field {
                    path: modules_path.clone(),
                    field: format!("[{index}].{name}"),
                    value: module.get(name).map_or("missing".into(), |v| v.to_string()),
                    expected: "a string".into(),
                })
        };
        let kind = field("type")?;
        let module_path = field("path")?;
        match kind.rsplit('.').next().unwrap_or(kind) {
            "Transformer" => {
                // Older models keep the transformer in a subfolder
                // (`0_BERT/`); bertc reads config and weights from the folder.
                if !module_path.is_empty() {
                    return Err(SentenceError::Field {
                        path: modules_path.clone(),
                        field: format!("[{index}].path"),
                        value: format!("{module_path:?}"),
                        expected: "\"\" (the transformer's config and weights in the folder itself)".into(),
                    });
                }
                transformer = true;
            }
            "Pooling" => {
                let module_folder = module_folder(&modules_path, index, module_path)?;
                let (mode, dimension, config) = read_pooling(folder, module_folder)?;
                files.push(config.clone());
                pooling = Some((mode, dimension, config));
            }
            "Normalize" => {
                normalize = true;
                // Normalize has no settings; its config, when shipped, is copied.
                let config = module_config(module_folder(&modules_path, index, module_path)?);
                if regular_file_inside(folder, &config)?.is_some() {
                    files.push(config);
                }
            }
            _ => {
                return Err(SentenceError::UnsupportedModule {
                    path: modules_path,
                    index,
                    kind: kind.to_string(),
                })
            }
        }
    }
    let missing = |what| SentenceError::MissingModule {
        path: modules_path.clone(),
        what,
    };
    if !transformer {
        return Err(missing("Transformer"));
    }
    let (mode, dimension, pooling_config) = pooling.ok_or_else(|| missing("Pooling"))?;
    let mut max_seq_length = None;
    if let Some(path) = regular_file_inside(folder, SBERT_CONFIG_FILE)? {
        max_seq_length = read_max_seq_length(&path)?;
        files.push(SBERT_CONFIG_FILE.into());
    }
    if regular_file_inside(folder, ST_CONFIG_FILE)?.is_some() {
        files.push(ST_CONFIG_FILE.into());
    }
    files.sort();
    files.dedup();
    Ok(Some(SentenceModules {
        pooling: SentencePooling { mode, normalize },
        max_seq_length,
        dimension,
        pooling_config,
        files,
    }))
}

impl SentenceModules {
    /// Refuses settings that contradict the model's config.
    pub fn check(&self, folder: &Path, config: &BertConfig) -> Result<(), SentenceError> {
        if let Some(d) = self.dimension.filter(|&d| d != config.hidden_size) {
            return Err(SentenceError::Field {
                path: folder.join(&self.pooling_config),
                field: "word_embedding_dimension".into(),
                value: d.to_string(),
                expected: format!("the model's hidden_size, {}", config.hidden_size),
            });
        }
        if let Some(n) = self
            .max_seq_length
            .filter(|&n| n > config.max_position_embeddings)
        {
            return Err(SentenceError::Field {
                path: folder.join(SBERT_CONFIG_FILE),
                field: "max_seq_length".into(),
                value: n.to_string(),
                expected: format!(
                    "at most the model's max_position_embeddings, {}",
                    config.max_position_embeddings
                ),
            });
        }
        Ok(())
    }
}

/// The Pooling module's mode and dimension, and its config's relative path.
fn read_pooling(
    folder: &Path,
    module_folder: &str,
) -> Result<(Pooling, Option<usize>, String), SentenceError> {
    let relative = module_config(module_folder);
    let path = regular_file_inside(folder, &relative)?.ok_or_else(|| SentenceError::Io {
        path: folder.join(&relative),
        error: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the Pooling module's config is missing",
        ),
    })?;
    let config = read_json(&path)?;
    let object = config.as_object().ok_or_else(|| SentenceError::Field {
        path: path.clone(),
        field: "(top level)".into(),
        value: kind_of(&config).into(),
        expected: "an object".into(),
    })?;
    let mut set = vec![];
    for (key, value) in object.iter().filter(|(k, _)| k.starts_with("pooling_mode")) {
        let on = value.as_bool().ok_or_else(|| SentenceError::Field {
            path: path.clone(),
            field: key.clone(),
            value: value.to_string(),
            expected: "true or false".into(),
        })?;
        if on {
            let mode = Pooling::ALL.into_iter().find(|p| p.config_field() == key);
            set.push((key.clone(), mode));
        }
    }
    set.dedup_by(|a, b| a.0 == b.0);
    if let Some((field, _)) = set.iter().find(|(_, mode)| mode.is_none()) {
        return Err(SentenceError::UnsupportedPooling {
            path,
            field: field.clone(),
        });
    }
    let mode = match set.as_slice() {
        [] => return Err(SentenceError::NoPooling { path }),
        [(_, Some(mode))] => *mode,
        _ => {
            return Err(SentenceError::SeveralPoolings {
                path,
                fields: set.into_iter().map(|(f, _)| f).collect(),
            })
        }
    };
    let dimension = match object.get("word_embedding_dimension") {
        None => None,
        Some(v) => Some(positive(v, &path, "word_embedding_dimension")?),
    };
    Ok((mode, dimension, relative))
}

/// `max_seq_length` of a folder's sentence_bert_config.json: none when the
/// file or the field is absent (the one reader; `run` truncates with it).
pub fn max_seq_length(folder: &Path) -> Result<Option<usize>, SentenceError> {
    match regular_file_inside(folder, SBERT_CONFIG_FILE)? {
        Some(path) => read_max_seq_length(&path),
        None => Ok(None),
    }
}

fn read_max_seq_length(path: &Path) -> Result<Option<usize>, SentenceError> {
    let config = read_json(path)?;
    match config.get("max_seq_length") {
        None | Some(Json::Null) => Ok(None),
        Some(v) => Ok(Some(positive(v, path, "max_seq_length")?)),
    }
}

/// A field that must be a positive integer.
fn positive(v: &Json, path: &Path, field: &str) -> Result<usize, SentenceError> {
    v.as_u64()
        .filter(|&n| n > 0 && n <= u32::MAX as u64)
        .map(|n| n as usize)
        .ok_or_else(|| SentenceError::Field {
            path: path.to_path_buf(),
            field: field.into(),
            value: v.to_string(),
            expected: "a positive integer".into(),
        })
}

/// The folder a module's `path` names, without its trailing `/`: one
/// sub-folder named as sentence-transformers names them (`1_Pooling`,
/// `2_Normalize`). `.`, `./`, `""` or a nested path would make the model
/// folder itself (or something else) the module's, and an export would
/// then copy whatever lies there (issue 25, N1).
fn module_folder<'a>(
    modules_path: &Path,
    index: usize,
    module_path: &'a str,
) -> Result<&'a str, SentenceError> {
    let name = module_path.strip_suffix('/').unwrap_or(module_path);
    if is_module_folder_name(name) {
        return Ok(name);
    }
    Err(SentenceError::Field {
        path: modules_path.to_path_buf(),
        field: format!("[{index}].path"),
        value: format!("{module_path:?}"),
        expected: "one sub-folder named `<index>_<Module>` (as sentence-transformers saves it, `1_Pooling`)"
            .into(),
    })
}

/// The one file of a module folder bertc reads and an export ships: its
/// settings. Anything else found there (notes, `desktop.ini`, weights of a
/// module bertc does not build) is not part of the model's layout.
pub fn module_config(module_folder: &str) -> String {
    format!("{module_folder}/{MODULE_CONFIG_FILE}")
}

/// sentence-transformers' module folder names: `<index>_<Module>`
/// (`1_Pooling`, `2_Normalize`, `2_Dense`).
pub fn is_module_folder_name(name: &str) -> bool {
    match name.split_once('_') {
        Some((n, rest)) => {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && !rest.is_empty()
                && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        None => false,
    }
}

fn read_json(path: &Path) -> Result<Json, SentenceError> {
    let io = |error| SentenceError::Io {
        path: path.to_path_buf(),
        error,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_JSON_BYTES {
        return Err(SentenceError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = crate::input_file::read_regular(path).map_err(io)?;
    serde_json::from_slice(&bytes).map_err(|error| SentenceError::Json {
        path: path.to_path_buf(),
        error,
    })
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_folder_names_are_sentence_transformers_ones() {
        for ok in ["1_Pooling", "2_Normalize", "3_Dense"] {
            assert!(is_module_folder_name(ok), "{ok}");
        }
        for bad in [
            "Pooling",
            "_x",
            "1_",
            "x_Pooling",
            "1_../a",
            ".git",
            ".",
            "",
            "1_Pooling/x",
        ] {
            assert!(!is_module_folder_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_module_path_must_name_one_module_folder() {
        let modules = Path::new("modules.json");
        assert_eq!(module_folder(modules, 1, "1_Pooling/").unwrap(), "1_Pooling");
        for bad in [".", "./", "", "/", "1_Pooling/sub", "../1_Pooling", "1_Pooling//"] {
            let e = module_folder(modules, 1, bad).unwrap_err().to_string();
            assert!(
                e.contains("field `[1].path`") && e.contains("one sub-folder"),
                "{bad}: {e}"
            );
        }
    }
}
