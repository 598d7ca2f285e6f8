//! Where the shared libraries of onnxruntime and OpenVINO are.
//!
//! bertc links neither: `ort` and `openvino` load the runtime's own C
//! library when a model first asks for it. That library is looked for, in
//! order: an explicit environment variable (a file, used as it is — a wrong
//! path is an error, never a silent fall-back), then the PyPI wheel that the
//! `python3` on PATH would import (its folder found without importing the
//! package, which takes a second for OpenVINO), else an error that names
//! what is missing and how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::backend::{BackendError, Runtime};

/// One runtime's shared library and how to find it.
#[derive(Debug, Clone, Copy)]
pub struct LibrarySpec {
    pub runtime: Runtime,
    /// Environment variables naming the library file, the first set wins.
    pub env_vars: &'static [&'static str],
    /// The Python package whose wheel ships the library.
    pub package: &'static str,
    /// The library's folder inside the package.
    pub folder: &'static str,
    /// The library's file name up to its first dot, without the platform's
    /// `lib` prefix: `onnxruntime` matches `libonnxruntime.so.1.32.0` and
    /// not `libonnxruntime_providers_shared.so`.
    pub stem: &'static str,
}

pub const ONNXRUNTIME: LibrarySpec = LibrarySpec {
    runtime: Runtime::Onnxruntime,
    // ORT_DYLIB_PATH is the `ort` crate's own variable: honoured so a set-up
    // made for other `ort` programs works here too.
    env_vars: &["BERTC_ONNXRUNTIME_LIB", "ORT_DYLIB_PATH"],
    package: "onnxruntime",
    folder: "capi",
    stem: "onnxruntime",
};

pub const OPENVINO: LibrarySpec = LibrarySpec {
    runtime: Runtime::Openvino,
    env_vars: &["BERTC_OPENVINO_LIB"],
    package: "openvino",
    folder: "libs",
    // The C API library: the wheel ships it versioned only
    // (libopenvino_c.so.2641), with its plugins beside it.
    stem: "openvino_c",
};

impl LibrarySpec {
    /// The library file to load (see the module doc for the order).
    pub fn locate(&self) -> Result<PathBuf, BackendError> {
        for var in self.env_vars {
            match std::env::var_os(var) {
                Some(v) if !v.is_empty() => return self.explicit(var, PathBuf::from(v)),
                _ => {}
            }
        }
        let folder = python_package_folder(self.package).map_err(|reason| self.unavailable(&reason))?;
        let libs = folder.join(self.folder);
        find_library(&libs, self.stem).ok_or_else(|| {
            self.unavailable(&format!(
                "the Python package `{}` at {} has no {} library in {}",
                self.package,
                folder.display(),
                self.file_pattern(),
                libs.display()
            ))
        })
    }

    /// A path given in an environment variable: it must be a file.
    fn explicit(&self, var: &str, path: PathBuf) -> Result<PathBuf, BackendError> {
        if path.is_file() {
            return Ok(path);
        }
        let what = if path.exists() {
            "is not a file"
        } else {
            "does not exist"
        };
        Err(self.unavailable(&format!("{var}={} {what}", path.display())))
    }

    fn unavailable(&self, reason: &str) -> BackendError {
        BackendError::Unavailable {
            runtime: self.runtime.name(),
            reason: format!(
                "{reason}; install it with `pip install {}`, or set {} to its {} file",
                pinned_requirement(self.package),
                self.env_vars[0],
                self.file_pattern()
            ),
        }
    }

    /// How the library file is named on this platform, for messages.
    fn file_pattern(&self) -> String {
        format!(
            "{}{}{}*",
            std::env::consts::DLL_PREFIX,
            self.stem,
            std::env::consts::DLL_SUFFIX
        )
    }
}

/// The set-up script's requirement for `package` (`onnxruntime==1.32.0`),
/// read from scripts/requirements.txt so that the advice names the version
/// the tests run; the bare name if the file has none.
fn pinned_requirement(package: &str) -> String {
    const REQUIREMENTS: &str = include_str!("../../scripts/requirements.txt");
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .find(|l| l.split("==").next() == Some(package))
        .unwrap_or(package)
        .to_string()
}

/// The folder of an installed Python package, as `python3` finds it
/// (`importlib.util.find_spec`: no import of the package itself).
fn python_package_folder(package: &str) -> Result<PathBuf, String> {
    let script = format!(
        "import importlib.util as u\ns = u.find_spec('{package}')\n\
         print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .map_err(|e| format!("no Python package `{package}`: python3 cannot be started ({e})"))?;
    let folder = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || folder.is_empty() {
        return Err(format!("python3 has no package `{package}`"));
    }
    Ok(PathBuf::from(folder))
}

/// The library named `stem` in `folder`: the file whose name up to its
/// first dot is the platform prefix + `stem` (any version suffix), the
/// shortest such name when there are several (`libx.so` before `libx.so.1`).
fn find_library(folder: &Path, stem: &str) -> Option<PathBuf> {
    let wanted = format!("{}{stem}", std::env::consts::DLL_PREFIX);
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split('.').next())
                    .is_some_and(|first| first == wanted)
        })
        .collect();
    found.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_versioned_library_and_not_its_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = std::env::consts::DLL_PREFIX;
        for name in [
            format!("{prefix}onnxruntime_providers_shared.so"),
            format!("{prefix}onnxruntime.so.1.32.0"),
            "onnxruntime_collect_build_info.py".to_string(),
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = find_library(dir.path(), "onnxruntime").unwrap();
        assert_eq!(
            found.file_name().unwrap().to_str().unwrap(),
            format!("{prefix}onnxruntime.so.1.32.0")
        );
        assert!(find_library(dir.path(), "openvino_c").is_none());
    }

    #[test]
    fn a_missing_explicit_path_is_an_error_naming_the_variable_and_the_fix() {
        let err = OPENVINO
            .explicit(
                "BERTC_OPENVINO_LIB",
                PathBuf::from("/nonexistent/libopenvino_c.so"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BERTC_OPENVINO_LIB=/nonexistent/libopenvino_c.so does not exist"),
            "{err}"
        );
        assert!(err.contains("pip install openvino==2026.4.1"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}
