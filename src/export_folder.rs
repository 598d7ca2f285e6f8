//! Export folders (`-o DIR/`): the layout Optimum's `ORTModelFor*`,
//! sentence-transformers' ONNX backend and fastembed load — `model.onnx`,
//! `config.json`, the tokenizer files the model folder has and, for
//! sentence-transformers models, their module files (modules.json,
//! `1_Pooling/config.json`, …). With [`Layout::OnnxSubfolder`] the model
//! files go in `onnx/`, as the hub's ONNX repositories hold them: the one
//! place transformers.js looks.
//!
//! The folder is written beside its destination under a hidden temporary
//! name, then renamed into place: a failed compile leaves no partial
//! folder. An existing destination is replaced only when it is empty or a
//! previous bertc export — every entry one an export writes, and its
//! `model.onnx` carrying bertc's metadata (`bertc.config`) — so nothing a
//! user put there is ever deleted; the swap is one atomic exchange on
//! Linux. The destination may not be, contain, or lie inside a folder the
//! model is read from. Files copied from the model folder must resolve
//! inside it and be regular files ([`crate::model_folder`]).
//!
//! One compile may write several forms of the model into the folder
//! ([`write_export_forms`]): `model.onnx` is the first, the others and the
//! manifest listing them are [`crate::export_manifest`]'s.
//!
//! An interruption (SIGINT, SIGTERM, SIGHUP) during the write removes the
//! hidden `.bertc-export-*` folder: it and every path written in it are
//! registered with [`crate::signals`] before they are created. The
//! destination itself is untouched.

use std::path::{Path, PathBuf};

use crate::export_manifest::{is_plain_model_name, FormEntry, Manifest, MANIFEST_FILE};
use crate::model_folder::{regular_file_inside, FolderPathError};
use crate::pipeline::{Compiled, PipelineOptions, Sourced};
use crate::sentence_transformers::{
    is_module_folder_name, MODULES_FILE, MODULE_CONFIG_FILE, SBERT_CONFIG_FILE, ST_CONFIG_FILE,
};
use crate::session::Session;
use crate::source::ModelSource;

pub const MODEL_FILE: &str = "model.onnx";
/// The folder [`Layout::OnnxSubfolder`] puts the model files in.
pub const ONNX_SUBFOLDER: &str = "onnx";

/// Where an export folder's model files go; config.json, the tokenizer and
/// module files stay at the top either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Beside config.json: where Optimum's `ORTModelFor*` and
    /// sentence-transformers' `backend="onnx"` look first.
    #[default]
    Flat,
    /// In `onnx/`: where transformers.js looks (only there), and
    /// sentence-transformers next (Optimum with `subfolder="onnx"`).
    OnnxSubfolder,
}

impl Layout {
    /// The path in the folder of the model file `name`.
    pub fn place(self, name: &str) -> String {
        match self {
            Layout::Flat => name.to_string(),
            Layout::OnnxSubfolder => format!("{ONNX_SUBFOLDER}/{name}"),
        }
    }
}
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer files an export copies, whichever exist (Optimum's, plus
/// DeBERTa's spm.model and added_tokens.json): the ones `run` reads.
pub use crate::tokenize::TOKENIZER_FILES;

/// What was written.
#[derive(Debug, Clone)]
pub struct ExportedFolder {
    pub path: PathBuf,
    /// Every file, relative to the folder, sorted.
    pub files: Vec<String>,
    /// Bytes of model.onnx.
    pub model_size: usize,
    /// Whether a previous export was replaced.
    pub replaced: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportFolderError {
    #[error(
        "{}: exists and is not a previous bertc export ({reason}); an export folder replaces only an \
         empty folder or one bertc wrote: choose a new path",
        .path.display()
    )]
    NotAnExport { path: PathBuf, reason: String },
    #[error("{}: is a {kind}; -o DIR/ writes a folder there", .path.display())]
    NotAFolder { path: PathBuf, kind: &'static str },
    #[error(
        "{}: the export folder would {relation} the {role} {} of this command; choose a path outside the \
         model's folder",
        .path.display(), .input.display()
    )]
    Overlaps {
        path: PathBuf,
        relation: &'static str,
        role: String,
        input: PathBuf,
    },
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Path(#[from] FolderPathError),
    /// Writing model.onnx.
    #[error(transparent)]
    Model(#[from] crate::onnx::OnnxError),
    #[error("{}: an export folder needs at least one form of the model", .0.display())]
    NoForms(PathBuf),
    /// Compiling one of the forms.
    #[error(transparent)]
    Compile(Box<crate::Error>),
}

impl From<crate::Error> for ExportFolderError {
    fn from(e: crate::Error) -> Self {
        ExportFolderError::Compile(Box::new(e))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportFolderError + '_ {
    move |error| ExportFolderError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Whether `-o PATH` asks for an export folder: a trailing path separator,
/// or an existing directory (not a symlink to one).
pub fn is_folder_output(path: &Path) -> bool {
    let text = path.as_os_str().to_string_lossy();
    text.ends_with('/')
        || text.ends_with(std::path::MAIN_SEPARATOR)
        || std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The files an export of `source` copies from its folder, relative to it:
/// the tokenizer files that exist and the sentence-transformers module
/// files. Each is checked to resolve inside the folder and be regular.
pub fn shipped_files(source: &ModelSource) -> Result<Vec<String>, ExportFolderError> {
    let Some(folder) = &source.folder else {
        return Ok(vec![]);
    };
    let mut files = vec![];
    for name in TOKENIZER_FILES {
        if regular_file_inside(folder, name)?.is_some() {
            files.push(name.to_string());
        }
    }
    if let Some(modules) = &source.sentence {
        for f in &modules.files {
            regular_file_inside(folder, f)?;
            files.push(f.clone());
        }
    }
    Ok(files)
}

/// The checks an export to `out` must pass, run before compiling: `out`
/// is new, empty or a previous export, and neither holds nor lies inside
/// any of `inputs` (role, path) or the model's folder.
pub fn check_destination(
    out: &Path,
    source: &ModelSource,
    inputs: &[(&str, &Path)],
) -> Result<(), ExportFolderError> {
    let target = absolute(out)?;
    let mut read: Vec<(String, PathBuf)> = inputs
        .iter()
        .map(|(r, p)| (r.to_string(), p.to_path_buf()))
        .collect();
    if let Some(folder) = &source.folder {
        read.push(("model folder".into(), folder.clone()));
    }
    for (role, input) in read {
        let Ok(input_abs) = input.canonicalize() else {
            continue;
        };
        let relation = if input_abs == target {
            "be"
        } else if target.starts_with(&input_abs) {
            "lie inside"
        } else if input_abs.starts_with(&target) {
            "replace"
        } else {
            continue;
        };
        return Err(ExportFolderError::Overlaps {
            path: out.to_path_buf(),
            relation,
            role,
            input,
        });
    }
    // Without its trailing separator: `stat("file/")` fails with ENOTDIR,
    // which would hide that `out` is a file (issue 25: "Not a directory",
    // after the whole compile).
    let bare: PathBuf = out.components().collect();
    match std::fs::symlink_metadata(&bare) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ExportFolderError::Io {
            path: out.to_path_buf(),
            error,
        }),
        Ok(meta) if meta.is_dir() => previous_export(out),
        Ok(meta) => Err(ExportFolderError::NotAFolder {
            path: out.to_path_buf(),
            kind: if meta.file_type().is_symlink() {
                "symbolic link"
            } else if meta.is_file() {
                "regular file"
            } else {
                "special file"
            },
        }),
    }
}

/// `out` with its existing ancestors resolved: the folder itself, and any
/// parents of it, may not exist yet (they are made when it is written, as
/// Optimum makes `-o new/sub/`).
fn absolute(out: &Path) -> Result<PathBuf, ExportFolderError> {
    if out.file_name().is_none() {
        return Err(ExportFolderError::NotAFolder {
            path: out.to_path_buf(),
            kind: "path without a final name (`.`, `..` or `/`)",
        });
    }
    let mut existing = parent_of(out).to_path_buf();
    let mut missing = vec![out.file_name().unwrap_or_default().to_os_string()];
    while std::fs::symlink_metadata(&existing).is_err() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(up)) => {
                missing.push(name);
                existing = match up.as_os_str().is_empty() {
                    true => PathBuf::from("."),
                    false => up.to_path_buf(),
                };
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().map_err(io(&existing))?;
    resolved.extend(missing.iter().rev());
    Ok(resolved)
}

fn parent_of(out: &Path) -> &Path {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Ok when `dir` is empty or holds a previous bertc export and nothing else:
/// the files an export writes, each model file (`model.onnx` and the other
/// forms' `model_*.onnx`) carrying bertc's metadata, an external data file
/// only beside its model.
fn previous_export(dir: &Path) -> Result<(), ExportFolderError> {
    let not = |reason: String| ExportFolderError::NotAnExport {
        path: dir.to_path_buf(),
        reason,
    };
    let mut empty = true;
    let mut models = vec![];
    let mut data_files = vec![];
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        empty = false;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if kind.is_dir() && name == ONNX_SUBFOLDER {
            // Layout::OnnxSubfolder's folder holds model files alone.
            for inner in std::fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
                let inner = inner.map_err(io(&entry.path()))?;
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                let is_file = inner.file_type().map_err(io(&inner.path()))?.is_file();
                let placed = format!("{name}/{inner_name}");
                match model_or_data(&inner_name) {
                    Some(None) if is_file => models.push(placed),
                    Some(Some(model)) if is_file => data_files.push((placed, format!("{name}/{model}"))),
                    _ => {
                        return Err(not(format!(
                            "it holds `{placed}`, which an export does not write"
                        )))
                    }
                }
            }
            continue;
        }
        let model_file = is_plain_model_name(&name);
        let data_of = name.strip_suffix("_data").filter(|m| is_plain_model_name(m));
        let known_file = model_file
            || data_of.is_some()
            || name == CONFIG_FILE
            || name == MANIFEST_FILE
            || TOKENIZER_FILES.contains(&name.as_str())
            || [MODULES_FILE, SBERT_CONFIG_FILE, ST_CONFIG_FILE].contains(&name.as_str());
        if kind.is_file() && known_file {
            match data_of {
                Some(model) => data_files.push((name.clone(), model.to_string())),
                None if model_file => models.push(name),
                None => {}
            }
            continue;
        }
        if kind.is_dir() && is_module_folder_name(&name) {
            // A module folder an export wrote holds its config.json alone:
            // anything else there is the user's, and replacing the folder
            // would delete it (issue 25, N2).
            for inner in std::fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
                let inner = inner.map_err(io(&entry.path()))?;
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if inner_name != MODULE_CONFIG_FILE
                    || !inner.file_type().map_err(io(&inner.path()))?.is_file()
                {
                    return Err(not(format!(
                        "it holds `{name}/{inner_name}`, which an export does not write"
                    )));
                }
            }
            continue;
        }
        return Err(not(format!("it holds `{name}`, which an export does not write")));
    }
    if empty {
        return Ok(());
    }
    let main_files = [MODEL_FILE.to_string(), Layout::OnnxSubfolder.place(MODEL_FILE)];
    if !models.iter().any(|m| main_files.contains(m)) {
        return Err(not(format!("it has no {MODEL_FILE}")));
    }
    if let Some((data, model)) = data_files.iter().find(|(_, m)| !models.contains(m)) {
        return Err(not(format!("it holds `{data}` without `{model}`")));
    }
    models.sort();
    for model in models {
        match crate::onnx::read_metadata(&dir.join(&model)) {
            Ok(meta) if meta.contains_key("bertc.config") => {}
            Ok(_) => return Err(not(format!("its {model} was not written by bertc"))),
            Err(e) => return Err(not(format!("its {model} cannot be read: {e}"))),
        }
    }
    Ok(())
}

/// `Some(None)` for a model file's name, `Some(Some(model))` for the
/// external data file of `model`, `None` for anything else.
fn model_or_data(name: &str) -> Option<Option<&str>> {
    match name.strip_suffix("_data") {
        Some(model) if is_plain_model_name(model) => Some(Some(model)),
        _ => is_plain_model_name(name).then_some(None),
    }
}

/// Writes the export folder of `compiled` (compiled from `source`) at
/// `out`. [`check_destination`] is run again here, so the library call is
/// safe on its own.
pub fn write_export_folder(
    out: &Path,
    compiled: &Compiled,
    source: &ModelSource,
    inputs: &[(&str, &Path)],
) -> Result<ExportedFolder, ExportFolderError> {
    let mut staging = ExportStaging::begin(out, source, inputs)?;
    staging.add_model(MODEL_FILE, compiled)?;
    staging.finish()
}

/// A form of the model to compile into an export folder, and the entry
/// the folder's manifest lists it under.
pub struct FolderForm {
    pub options: PipelineOptions,
    pub entry: FormEntry,
}

/// The forms `options` ask for, in order, with their manifest entries: the
/// first is `model.onnx`, each other `model_<target>[_<precision>][_packed].onnx`,
/// placed by `layout`.
pub fn folder_forms(options: Vec<PipelineOptions>, layout: Layout) -> Vec<FolderForm> {
    options
        .into_iter()
        .enumerate()
        .map(|(i, options)| {
            let mut entry = FormEntry::new(i == 0, options.target, options.precision.name(), options.packed);
            entry.file = layout.place(&entry.file);
            FolderForm { options, entry }
        })
        .collect()
}

/// Writes an export folder holding every form of `forms` (at least one),
/// each compiled by [`crate::pipeline::run_sourced`] from a clone of
/// `sourced` (the graph is built once); with more than one, the manifest
/// ([`crate::export_manifest`]) lists them. `each` sees every form once it
/// is compiled and written (the CLI prints its report). Atomic like
/// [`write_export_folder`]: a form that fails leaves nothing written.
pub fn write_export_forms(
    session: &Session,
    out: &Path,
    sourced: &Sourced,
    forms: &[FolderForm],
    source: &ModelSource,
    inputs: &[(&str, &Path)],
    mut each: impl FnMut(WrittenForm),
) -> Result<ExportedFolder, ExportFolderError> {
    if forms.is_empty() {
        return Err(ExportFolderError::NoForms(out.to_path_buf()));
    }
    for form in forms {
        crate::pipeline::check_options(&form.options)?;
    }
    let mut staging = ExportStaging::begin(out, source, inputs)?;
    for form in forms {
        let compiled = crate::pipeline::run_sourced(session, sourced.clone(), &form.options)?;
        let start = std::time::Instant::now();
        let size = staging.add_model(&form.entry.file, &compiled)?;
        each(WrittenForm {
            entry: &form.entry,
            compiled: &compiled,
            size,
            write_time: start.elapsed(),
        });
    }
    if forms.len() > 1 {
        let manifest = Manifest {
            forms: forms.iter().map(|f| f.entry.clone()).collect(),
        };
        staging.add_file(MANIFEST_FILE, manifest.to_json().as_bytes())?;
    }
    staging.finish()
}

/// One form as [`write_export_forms`] wrote it.
pub struct WrittenForm<'a> {
    pub entry: &'a FormEntry,
    pub compiled: &'a Compiled,
    /// Bytes written (with external data).
    pub size: usize,
    pub write_time: std::time::Duration,
}

/// An export folder being written under a hidden name beside its
/// destination: [`ExportStaging::finish`] swaps it into place; dropped
/// before that, it is removed.
struct ExportStaging {
    // Declared before `guards` so that it drops first: the folder is gone
    // before its guards stop covering it.
    folder: StagingFolder,
    /// Every path created in the folder, registered before it exists, so
    /// a signal at any point finds it.
    guards: Vec<crate::signals::TempGuard>,
    out: PathBuf,
    /// The files written, relative to the folder.
    files: Vec<String>,
    /// Bytes of model.onnx.
    model_size: usize,
}

impl ExportStaging {
    /// Checks `out` ([`check_destination`]) and starts its folder with
    /// config.json and the files copied from the model's folder.
    fn begin(
        out: &Path,
        source: &ModelSource,
        inputs: &[(&str, &Path)],
    ) -> Result<ExportStaging, ExportFolderError> {
        check_destination(out, source, inputs)?;
        let shipped = shipped_files(source)?;
        let parent = parent_of(out);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let (staging_guard, folder) = temp_dir_beside(parent, ".bertc-export-")?;
        let mut staging = ExportStaging {
            folder,
            guards: vec![staging_guard],
            out: out.to_path_buf(),
            files: vec![],
            model_size: 0,
        };
        let config = match &source.config_file {
            Some(path) => crate::input_file::read_regular(path).map_err(io(path))?,
            None => source.config.to_canonical_json().into_bytes(),
        };
        staging.add_file(CONFIG_FILE, &config)?;
        let from_folder = source.folder.as_deref().unwrap_or(Path::new("."));
        for relative in &shipped {
            let from = regular_file_inside(from_folder, relative)?.ok_or_else(|| ExportFolderError::Io {
                path: from_folder.join(relative),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "vanished while exporting"),
            })?;
            let bytes = crate::input_file::read_regular(&from).map_err(io(&from))?;
            staging.add_file(relative, &bytes)?;
        }
        Ok(staging)
    }

    fn guard(&mut self, path: &Path) {
        self.guards.push(crate::signals::TempGuard::register(path));
    }

    /// Writes `bytes` as `relative` (a module file may sit one folder deep,
    /// `1_Pooling/config.json`).
    fn add_file(&mut self, relative: &str, bytes: &[u8]) -> Result<(), ExportFolderError> {
        let root = self.folder.path().to_path_buf();
        let to = root.join(relative);
        if let Some(dir) = to.parent().filter(|d| *d != root && !d.exists()) {
            self.guard(dir);
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        self.guard(&to);
        std::fs::write(&to, bytes).map_err(io(&to))?;
        self.files.push(relative.to_string());
        Ok(())
    }

    /// Writes `compiled` as the model file `name` (with its external data
    /// file when it has one); returns the bytes written.
    fn add_model(&mut self, name: &str, compiled: &Compiled) -> Result<usize, ExportFolderError> {
        let root = self.folder.path().to_path_buf();
        let path = root.join(name);
        if let Some(dir) = path.parent().filter(|d| *d != root && !d.exists()) {
            self.guard(dir);
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        self.guard(&path);
        self.guard(&crate::onnx::data_path(&path));
        let size = compiled.write(&path)?;
        if Path::new(name).file_name() == Some(MODEL_FILE.as_ref()) {
            self.model_size = size;
        }
        self.files.push(name.to_string());
        // The summary lists every file written, the data file too (issue
        // 25, N6: an --external-data folder's summary omitted it).
        let data = crate::onnx::data_path(&path);
        if data.exists() {
            let relative = data.strip_prefix(&root).unwrap_or(&data);
            self.files.push(relative.to_string_lossy().into_owned());
        }
        Ok(size)
    }

    /// Moves the folder into place, replacing a previous export.
    fn finish(self) -> Result<ExportedFolder, ExportFolderError> {
        let ExportStaging {
            folder,
            guards,
            out,
            mut files,
            model_size,
        } = self;
        let replaced = std::fs::symlink_metadata(&out).is_ok();
        if replaced {
            swap_into_place(folder.path(), &out)?;
            // `folder` now holds the previous export; dropping it removes it.
            drop(folder);
        } else {
            let kept = folder.keep();
            std::fs::rename(&kept, &out).map_err(|error| {
                let _ = std::fs::remove_dir_all(&kept);
                ExportFolderError::Io {
                    path: out.clone(),
                    error,
                }
            })?;
        }
        drop(guards);
        files.sort();
        files.dedup();
        Ok(ExportedFolder {
            path: out,
            files,
            model_size,
            replaced,
        })
    }
}

/// A fresh hidden folder in `parent`, with the permissions an ordinary
/// new folder gets (0777 less the umask), registered for removal on a
/// signal before it is created ([`crate::signals::create_registered`]).
fn temp_dir_beside(
    parent: &Path,
    prefix: &str,
) -> Result<(crate::signals::TempGuard, StagingFolder), ExportFolderError> {
    let create = |path: &Path| {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o777);
        }
        builder.create(path)
    };
    let (guard, made) = crate::signals::create_registered(parent, prefix, "", create).map_err(io(parent))?;
    // Disarm tempfile's own removal (a file's); the folder's is StagingFolder's.
    let ((), path) = made.keep().map_err(|e| e.error).map_err(io(parent))?;
    Ok((guard, StagingFolder { path, kept: false }))
}

/// A folder bertc is filling, removed with its contents when dropped
/// unless kept.
struct StagingFolder {
    path: PathBuf,
    kept: bool,
}

impl StagingFolder {
    fn path(&self) -> &Path {
        &self.path
    }

    /// The folder, no longer removed on drop.
    fn keep(mut self) -> PathBuf {
        self.kept = true;
        self.path.clone()
    }
}

impl Drop for StagingFolder {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Exchanges the new folder `new` with the existing `out`: atomically with
/// renameat2(RENAME_EXCHANGE) on Linux; elsewhere (or where the file system
/// refuses it) by two renames, the old folder moved back if the second fails.
fn swap_into_place(new: &Path, out: &Path) -> Result<(), ExportFolderError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
        if let (Some(a), Some(b)) = (c(new), c(out)) {
            // SAFETY: two valid NUL-terminated paths; renameat2 only reads them.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            if rc == 0 {
                return Ok(());
            }
        }
    }
    let parent = parent_of(out);
    let aside = temp_dir_beside(parent, ".bertc-old-")?.1.keep();
    // Renaming a folder onto an empty folder replaces it.
    std::fs::rename(out, &aside).map_err(io(out))?;
    if let Err(error) = std::fs::rename(new, out) {
        let _ = std::fs::rename(&aside, out);
        return Err(ExportFolderError::Io {
            path: out.to_path_buf(),
            error,
        });
    }
    std::fs::remove_dir_all(&aside).map_err(io(&aside))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_or_an_existing_folder_asks_for_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_folder_output(Path::new("out/")));
        assert!(!is_folder_output(Path::new("out.onnx")));
        assert!(is_folder_output(dir.path()));
    }
}
