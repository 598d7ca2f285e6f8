//! `bertc_export.json`: the list of model files an export folder holds
//! when one compile wrote several forms of the model (`compile --target
//! tract,onnxruntime -o DIR/`), each with its target, precision, packing
//! and the runtimes that load it, so that `bertc run` can pick the file
//! that fits the runtime it is asked for ([`crate::run::form`]).
//!
//! The first form is always `model.onnx` (what Optimum, sentence-
//! transformers and bertc without this file read); every other form is
//! `model_<target>[_<precision>][_packed].onnx`, the precision left out
//! for fp32. Optimum ignores files it does not know, so the folder stays
//! an Optimum export.
//!
//! The manifest is read from folders anyone may have written: every field
//! is checked, and an error names the field and the value it refuses.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::model_folder::regular_file_inside;
use crate::passes::Target;
use crate::runtime::Runtime;

pub const MANIFEST_FILE: &str = "bertc_export.json";
/// What the `format` field says: the file is bertc's, whatever its name.
pub const MANIFEST_FORMAT: &str = "bertc-export";
/// The largest manifest read (every form bertc writes fits in a few KB).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The manifest version this bertc writes and reads.
pub const MANIFEST_VERSION: u64 = 1;

const TARGETS: [Target; 4] = [
    Target::Portable,
    Target::Tract,
    Target::Onnxruntime,
    Target::Openvino,
];

/// The precision names a manifest uses: [`crate::quantize::Precision::name`].
pub const PRECISIONS: [&str; 4] = ["fp32", "fp16", "int8-dynamic", "int8-static"];

/// One model file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormEntry {
    /// The file's path in the folder: its name, or `onnx/` and its name
    /// ([`crate::export_folder::Layout`]).
    pub file: String,
    pub target: Target,
    /// One of [`PRECISIONS`].
    pub precision: &'static str,
    pub packed: bool,
    /// The runtimes that load the file.
    pub runtimes: Vec<Runtime>,
}

impl FormEntry {
    /// The entry of a form compiled for `target` at `precision` (a
    /// [`crate::quantize::Precision::name`]); `first` names it `model.onnx`.
    pub fn new(first: bool, target: Target, precision: &'static str, packed: bool) -> FormEntry {
        let file = match first {
            true => crate::export_folder::MODEL_FILE.to_string(),
            false => form_file_name(target, precision, packed),
        };
        FormEntry {
            file,
            target,
            precision,
            packed,
            runtimes: runtimes_of(target),
        }
    }

    /// "target onnxruntime, int8-dynamic, packed".
    pub fn describe(&self) -> String {
        let packed = if self.packed { ", packed" } else { "" };
        format!("target {}, {}{packed}", self.target.name(), self.precision)
    }
}

/// `model_<target>[_<precision>][_packed].onnx`: the precision is the
/// short one (`fp16`, `int8`: one compile quantizes one way) and is left
/// out for fp32.
pub fn form_file_name(target: Target, precision: &str, packed: bool) -> String {
    let mut name = format!("model_{}", target.name());
    if precision != "fp32" {
        name.push('_');
        name.push_str(short_precision(precision));
    }
    if packed {
        name.push_str("_packed");
    }
    name.push_str(".onnx");
    name
}

/// `int8-dynamic` and `int8-static` are `int8`; the rest are themselves.
pub fn short_precision(precision: &str) -> &str {
    precision.split('-').next().unwrap_or(precision)
}

/// The runtimes that load a file compiled for `target`: onnxruntime's
/// form holds its contrib ops, which only it runs; every other form is
/// standard ONNX (OpenVINO's int8 as QuantizeLinear/DequantizeLinear).
pub fn runtimes_of(target: Target) -> Vec<Runtime> {
    match target {
        Target::Onnxruntime => vec![Runtime::Onnxruntime],
        Target::Portable | Target::Tract | Target::Openvino => Runtime::ALL.to_vec(),
    }
}

/// The forms of a folder, in the order they were compiled (the first is
/// `model.onnx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub forms: Vec<FormEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}", .path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: not JSON: {message}", .path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: field `{field}` is {value}: expected {expected}", .path.display())]
    Field {
        path: PathBuf,
        field: String,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Path(#[from] crate::model_folder::FolderPathError),
}

impl Manifest {
    /// The manifest's JSON, pretty-printed with a final newline.
    pub fn to_json(&self) -> String {
        let forms: Vec<Value> = self
            .forms
            .iter()
            .map(|f| {
                json!({
                    "file": f.file,
                    "target": f.target.name(),
                    "precision": f.precision,
                    "packed": f.packed,
                    "runtimes": f.runtimes.iter().map(|r| r.name()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "forms": forms,
        });
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The manifest of `folder`; `None` when it has none. Every listed
    /// file must be a regular file inside the folder.
    pub fn read(folder: &Path) -> Result<Option<Manifest>, ManifestError> {
        let Some(path) = regular_file_inside(folder, MANIFEST_FILE)? else {
            return Ok(None);
        };
        let io = |error| ManifestError::Io {
            path: path.clone(),
            error,
        };
        // Checked before reading: the folder may come from anyone, and a
        // few forms' manifest is a few hundred bytes.
        let size = std::fs::metadata(&path).map_err(io)?.len();
        if size > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path, size });
        }
        let bytes = crate::input_file::read_regular(&path).map_err(io)?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| ManifestError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let manifest = Manifest::parse(&doc, &path)?;
        for (i, form) in manifest.forms.iter().enumerate() {
            let expected = match regular_file_inside(folder, &form.file) {
                Ok(Some(_)) => continue,
                Ok(None) => "a model file in the folder (there is none of that name)".to_string(),
                // A symbolic link out of the folder, a folder, a device.
                Err(e) => format!("a regular file inside the folder ({e})"),
            };
            return Err(field_error(
                &path,
                format!("forms[{i}].file"),
                &json!(form.file),
                &expected,
            ));
        }
        Ok(Some(manifest))
    }

    /// The manifest `doc` says (read from `path`), every field checked.
    pub fn parse(doc: &Value, path: &Path) -> Result<Manifest, ManifestError> {
        let bad = |field: &str, value: &Value, expected: &str| {
            field_error(path, field.to_string(), value, expected)
        };
        let missing = Value::Null;
        let get = |v: &'_ Value, key: &str| v.get(key).cloned().unwrap_or_else(|| missing.clone());
        if !doc.is_object() {
            return Err(bad("(document)", doc, "an object"));
        }
        let format = get(doc, "format");
        if format.as_str() != Some(MANIFEST_FORMAT) {
            return Err(bad("format", &format, &format!("\"{MANIFEST_FORMAT}\"")));
        }
        let version = get(doc, "version");
        if version.as_u64() != Some(MANIFEST_VERSION) {
            return Err(bad(
                "version",
                &version,
                &format!("{MANIFEST_VERSION} (the manifest version this bertc reads)"),
            ));
        }
        let list = get(doc, "forms");
        let entries = match list.as_array() {
            Some(a) if !a.is_empty() => a,
            _ => return Err(bad("forms", &list, "a non-empty list of model files")),
        };
        let mut forms: Vec<FormEntry> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let field = |name: &str| format!("forms[{i}].{name}");
            let file = get(entry, "file");
            let name =
                match file.as_str() {
                    Some(n) if is_model_path(n) => n.to_string(),
                    _ => return Err(bad(
                        &field("file"),
                        &file,
                        "a file name in the folder or its onnx/ folder ending in .onnx (letters, digits, `_`, `-`, `.`)",
                    )),
                };
            if forms.iter().any(|f| f.file == name) {
                return Err(bad(&field("file"), &file, "a file no other form lists"));
            }
            let target = get(entry, "target");
            let target_names: Vec<&str> = TARGETS.iter().map(|t| t.name()).collect();
            let target = TARGETS
                .into_iter()
                .find(|t| Some(t.name()) == target.as_str())
                .ok_or_else(|| {
                    bad(
                        &field("target"),
                        &target,
                        &format!("one of {}", target_names.join(", ")),
                    )
                })?;
            let precision = get(entry, "precision");
            let precision = PRECISIONS
                .into_iter()
                .find(|p| Some(*p) == precision.as_str())
                .ok_or_else(|| {
                    bad(
                        &field("precision"),
                        &precision,
                        &format!("one of {}", PRECISIONS.join(", ")),
                    )
                })?;
            let packed = get(entry, "packed");
            let packed = packed
                .as_bool()
                .ok_or_else(|| bad(&field("packed"), &packed, "true or false"))?;
            let runtimes = get(entry, "runtimes");
            let runtime_names: Vec<&str> = Runtime::ALL.iter().map(|r| r.name()).collect();
            let expected = format!("a list of runtimes among {}", runtime_names.join(", "));
            let list = runtimes
                .as_array()
                .ok_or_else(|| bad(&field("runtimes"), &runtimes, &expected))?;
            let runtimes = list
                .iter()
                .map(|r| {
                    r.as_str()
                        .and_then(Runtime::parse)
                        .ok_or_else(|| bad(&field("runtimes"), r, &expected))
                })
                .collect::<Result<Vec<_>, _>>()?;
            forms.push(FormEntry {
                file: name,
                target,
                precision,
                packed,
                runtimes,
            });
        }
        Ok(Manifest { forms })
    }
}

fn field_error(path: &Path, field: String, value: &Value, expected: &str) -> ManifestError {
    let value = match value {
        Value::Null => "missing".to_string(),
        v => {
            // A hostile value may be huge: its first characters name it.
            let text = v.to_string();
            match text.char_indices().nth(80) {
                Some((at, _)) => format!("{}…", &text[..at]),
                None => text,
            }
        }
    };
    ManifestError::Field {
        path: path.to_path_buf(),
        field,
        value,
        expected: expected.to_string(),
    }
}

/// Where an export writes a model: a plain model name ([`is_plain_model_name`]),
/// at the top or in the `onnx/` folder.
pub fn is_model_path(path: &str) -> bool {
    let subfolder = format!("{}/", crate::export_folder::ONNX_SUBFOLDER);
    is_plain_model_name(path.strip_prefix(&subfolder).unwrap_or(path))
}

/// A name an export writes a model under: `model*.onnx` made of letters,
/// digits, `_`, `-` and `.`, so it cannot leave the folder or name a
/// hidden file.
pub fn is_plain_model_name(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with("model")
        && name.ends_with(".onnx")
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_files_are_named_by_target_precision_and_packing() {
        assert_eq!(
            form_file_name(Target::Onnxruntime, "fp32", false),
            "model_onnxruntime.onnx"
        );
        assert_eq!(
            form_file_name(Target::Onnxruntime, "int8-dynamic", true),
            "model_onnxruntime_int8_packed.onnx"
        );
        assert_eq!(
            form_file_name(Target::Tract, "fp16", false),
            "model_tract_fp16.onnx"
        );
        assert_eq!(
            FormEntry::new(true, Target::Tract, "int8-static", false).file,
            "model.onnx"
        );
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let manifest = Manifest {
            forms: vec![
                FormEntry::new(true, Target::Tract, "fp32", false),
                FormEntry::new(false, Target::Onnxruntime, "int8-dynamic", false),
            ],
        };
        let doc: Value = serde_json::from_str(&manifest.to_json()).unwrap();
        assert_eq!(Manifest::parse(&doc, Path::new("m.json")).unwrap(), manifest);
        assert_eq!(manifest.forms[1].runtimes, vec![Runtime::Onnxruntime]);
        assert_eq!(manifest.forms[0].runtimes.len(), 3);
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        for bad in [
            "../model.onnx",
            "/tmp/model.onnx",
            "model/x.onnx",
            ".model.onnx",
            "model..onnx",
            "x.onnx",
            "model.txt",
        ] {
            assert!(!is_plain_model_name(bad), "{bad}");
        }
        assert!(is_plain_model_name("model_tract_int8_packed.onnx"));
        assert!(is_model_path("onnx/model.onnx") && is_model_path("model.onnx"));
        for bad in [
            "onnx/../model.onnx",
            "onnx/onnx/model.onnx",
            "other/model.onnx",
            "/onnx/model.onnx",
        ] {
            assert!(!is_model_path(bad), "{bad}");
        }
    }
}
