//! Which model file of an export folder `bertc run` loads.
//!
//! A folder whose manifest ([`crate::export_manifest`]) lists several
//! forms gets, for runtime R, the one rule:
//!
//! 1. `--model-file NAME` names the file (it must be listed, and run in R);
//! 2. otherwise the precision is `--precision`, else `model.onnx`'s — never
//!    one the user did not name, whatever the runtime;
//! 3. among the forms at that precision that R loads: R's own target
//!    (tract → tract, onnxruntime → onnxruntime, openvino → openvino), then
//!    portable, then the first listed.
//!
//! A folder without a manifest loads `model.onnx`, as before forms existed.

use std::path::{Path, PathBuf};

use crate::export_folder::{Layout, MODEL_FILE};
use crate::export_manifest::{short_precision, FormEntry, Manifest, ManifestError};
use crate::model_folder::regular_file_inside;
use crate::passes::Target;
use crate::runtime::Runtime;

/// What the user said about the file to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormChoice {
    /// A model file of the folder, by name (`--model-file`); it wins
    /// over `precision` (the command line refuses both).
    pub model_file: Option<String>,
    /// `fp32`, `fp16` or `int8` (`--precision`).
    pub precision: Option<String>,
}

impl FormChoice {
    fn is_given(&self) -> bool {
        self.model_file.is_some() || self.precision.is_some()
    }
}

/// The file chosen, and the form the manifest lists it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenFile {
    pub path: PathBuf,
    /// Its manifest entry (`None` in a folder without one).
    pub form: Option<FormEntry>,
    /// Whether it was chosen among several, or named: then `run` says
    /// which it uses.
    pub announced: bool,
}

impl ChosenFile {
    /// "using model_onnxruntime.onnx (target onnxruntime, fp32) for
    /// onnxruntime", when the choice is worth a line.
    pub fn note(&self, runtime: Runtime) -> Option<String> {
        if !self.announced {
            return None;
        }
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        Some(match &self.form {
            // The manifest's path: `onnx/…` in the onnx-subfolder layout.
            Some(f) => format!("using {} ({}) for {runtime}", f.file, f.describe()),
            None => format!("using {name} for {runtime}"),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Path(#[from] crate::model_folder::FolderPathError),
    #[error("--model-file {file}: {} lists no such form (it lists: {})", .folder.display(), .listed.join(", "))]
    NotListed {
        folder: PathBuf,
        file: String,
        listed: Vec<String>,
    },
    #[error("--model-file {file}: {} has no file of that name", .folder.display())]
    NoSuchFile { folder: PathBuf, file: String },
    #[error(
        "--model-file {file}: {runtime} cannot load it (its manifest says it runs in: {}); choose another \
         form or runtime",
        .runtimes.join(", ")
    )]
    NotForRuntime {
        file: String,
        runtime: Runtime,
        runtimes: Vec<String>,
    },
    #[error(
        "{}: no form at {precision} runs in {runtime} (the folder holds: {}); name another with --precision \
         or --model-file, or choose another --runtime",
        .folder.display(), .forms.join("; ")
    )]
    NoForm {
        folder: PathBuf,
        runtime: Runtime,
        precision: String,
        forms: Vec<String>,
    },
    #[error("{flag} chooses among the forms an export folder's bertc_export.json lists; {} has none", .folder.display())]
    NoManifest { folder: PathBuf, flag: &'static str },
    #[error("{flag} chooses a file of an export folder; {} is not a folder", .path.display())]
    NotAFolder { path: PathBuf, flag: &'static str },
}

/// The model file of `folder` to load in `runtime`, by the rule above;
/// `None` when the folder has neither a manifest nor `model.onnx` (a model
/// folder, compiled in memory) and no file was named.
pub fn choose(folder: &Path, runtime: Runtime, choice: &FormChoice) -> Result<Option<ChosenFile>, FormError> {
    let Some(manifest) = Manifest::read(folder)? else {
        return choose_without_manifest(folder, choice);
    };
    let forms = &manifest.forms;
    let entry = match &choice.model_file {
        Some(name) => {
            let entry = forms
                .iter()
                .find(|f| &f.file == name)
                .ok_or_else(|| FormError::NotListed {
                    folder: folder.to_path_buf(),
                    file: name.clone(),
                    listed: forms.iter().map(|f| f.file.clone()).collect(),
                })?;
            if !entry.runtimes.contains(&runtime) {
                return Err(FormError::NotForRuntime {
                    file: name.clone(),
                    runtime,
                    runtimes: entry.runtimes.iter().map(|r| r.name().to_string()).collect(),
                });
            }
            entry
        }
        None => {
            // Read has refused an empty list: there is a first form.
            let primary = forms.first().map_or("fp32", |f| short_precision(f.precision));
            let precision = choice.precision.as_deref().unwrap_or(primary);
            pick(forms, runtime, precision).ok_or_else(|| FormError::NoForm {
                folder: folder.to_path_buf(),
                runtime,
                precision: precision.to_string(),
                forms: forms
                    .iter()
                    .map(|f| {
                        let runs: Vec<&str> = f.runtimes.iter().map(|r| r.name()).collect();
                        format!("{} ({}; runs in {})", f.file, f.describe(), runs.join(", "))
                    })
                    .collect(),
            })?
        }
    };
    Ok(Some(ChosenFile {
        path: folder.join(&entry.file),
        form: Some(entry.clone()),
        announced: true,
    }))
}

/// The form `runtime` loads at `precision` (`fp32`, `fp16`, `int8`): its
/// own target's first, then portable, then the first listed.
pub fn pick<'a>(forms: &'a [FormEntry], runtime: Runtime, precision: &str) -> Option<&'a FormEntry> {
    let own = match runtime {
        Runtime::Tract => Target::Tract,
        Runtime::Onnxruntime => Target::Onnxruntime,
        Runtime::Openvino => Target::Openvino,
    };
    let rank = |f: &FormEntry| match f.target {
        t if t == own => 0,
        Target::Portable => 1,
        _ => 2,
    };
    forms
        .iter()
        .filter(|f| f.runtimes.contains(&runtime) && short_precision(f.precision) == precision)
        .min_by_key(|f| rank(f))
}

fn choose_without_manifest(folder: &Path, choice: &FormChoice) -> Result<Option<ChosenFile>, FormError> {
    if choice.precision.is_some() {
        return Err(FormError::NoManifest {
            folder: folder.to_path_buf(),
            flag: "--precision",
        });
    }
    if let Some(name) = &choice.model_file {
        return match regular_file_inside(folder, name)? {
            Some(path) => Ok(Some(ChosenFile {
                path,
                form: None,
                announced: true,
            })),
            None => Err(FormError::NoSuchFile {
                folder: folder.to_path_buf(),
                file: name.clone(),
            }),
        };
    }
    // model.onnx at the top, else where Layout::OnnxSubfolder puts it.
    for candidate in [MODEL_FILE.to_string(), Layout::OnnxSubfolder.place(MODEL_FILE)] {
        if let Some(path) = regular_file_inside(folder, &candidate)? {
            return Ok(Some(ChosenFile {
                path,
                form: None,
                announced: false,
            }));
        }
    }
    Ok(None)
}

/// Refuses a choice of file for an argument that is not a folder.
pub fn refuse_for_file(path: &Path, choice: &FormChoice) -> Result<(), FormError> {
    if !choice.is_given() {
        return Ok(());
    }
    Err(FormError::NotAFolder {
        path: path.to_path_buf(),
        flag: match choice.model_file {
            Some(_) => "--model-file",
            None => "--precision",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(list: &[(Target, &'static str)]) -> Vec<FormEntry> {
        list.iter()
            .enumerate()
            .map(|(i, &(t, p))| FormEntry::new(i == 0, t, p, false))
            .collect()
    }

    #[test]
    fn each_runtime_takes_its_own_target_then_portable() {
        let f = forms(&[
            (Target::Portable, "fp32"),
            (Target::Onnxruntime, "fp32"),
            (Target::Tract, "fp32"),
        ]);
        let file = |r| pick(&f, r, "fp32").map(|e| e.file.as_str());
        assert_eq!(file(Runtime::Onnxruntime), Some("model_onnxruntime.onnx"));
        assert_eq!(file(Runtime::Tract), Some("model_tract.onnx"));
        assert_eq!(file(Runtime::Openvino), Some("model.onnx"));
    }

    #[test]
    fn the_precision_is_never_switched() {
        let f = forms(&[(Target::Onnxruntime, "int8-dynamic"), (Target::Portable, "fp32")]);
        // tract cannot load the int8 onnxruntime form: no fp32 fallback.
        assert_eq!(pick(&f, Runtime::Tract, "int8"), None);
        assert_eq!(
            pick(&f, Runtime::Tract, "fp32").map(|e| e.file.as_str()),
            Some("model_portable.onnx")
        );
        assert_eq!(
            pick(&f, Runtime::Onnxruntime, "int8").map(|e| e.file.as_str()),
            Some("model.onnx")
        );
    }
}
