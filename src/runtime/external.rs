//! Reading a model's external data in tract: each data file is mapped once
//! (tract's own resolver maps the whole file again for every initializer),
//! and only files inside the model's folder are read, by the same rule as
//! bertc's importer ([`crate::input_file::resolve_inside`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tract_onnx::data_resolver::ModelDataResolver;
use tract_onnx::prelude::{TractError, TractResult};

/// The data files of one model being loaded, each mapped once.
pub(super) struct MappedFiles {
    /// The model's folder, canonical.
    folder: PathBuf,
    maps: Mutex<HashMap<PathBuf, Arc<memmap2::Mmap>>>,
}

impl MappedFiles {
    pub(super) fn new(model: &Path) -> std::io::Result<MappedFiles> {
        let dir = match model.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Ok(MappedFiles {
            folder: dir.canonicalize()?,
            maps: Mutex::new(HashMap::new()),
        })
    }

    /// Every external-data location of the model's initializers, checked
    /// by bertc's rule before tract reads any (so the error is bertc's,
    /// naming the initializer).
    pub(super) fn check_locations(&self, model: &tract_onnx::pb::ModelProto) -> Result<(), String> {
        let Some(graph) = &model.graph else { return Ok(()) };
        for t in &graph.initializer {
            if let Some(e) = t.external_data.iter().find(|e| e.key == "location") {
                crate::input_file::resolve_inside(&self.folder, &e.value)
                    .map_err(|e| format!("initializer `{}`: {e}", t.name))?;
            }
        }
        Ok(())
    }

    fn map(&self, path: &Path) -> TractResult<Arc<memmap2::Mmap>> {
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = maps.get(path) {
            return Ok(m.clone());
        }
        let file = std::fs::File::open(path)?;
        // SAFETY: read-only, private map, dropped once the model is loaded;
        // as every model reader that maps files, it assumes nobody
        // truncates the file meanwhile.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&file)? });
        maps.insert(path.to_path_buf(), map.clone());
        Ok(map)
    }
}

impl ModelDataResolver for MappedFiles {
    fn read_bytes_from_path(
        &self,
        buf: &mut Vec<u8>,
        p: &Path,
        offset: usize,
        length: Option<usize>,
    ) -> TractResult<()> {
        let location = p.strip_prefix(&self.folder).unwrap_or(p);
        let path = crate::input_file::resolve_inside(&self.folder, &location.to_string_lossy())
            .map_err(|e| TractError::msg(e.to_string()))?;
        let map = self.map(&path)?;
        let end = match length {
            Some(n) => offset.checked_add(n),
            None => Some(map.len()),
        }
        .filter(|&end| offset <= end && end <= map.len())
        .ok_or_else(|| {
            TractError::msg(format!(
                "external data {}: {length:?} bytes from offset {offset} are past its end ({} bytes)",
                path.display(),
                map.len()
            ))
        })?;
        buf.extend_from_slice(&map[offset..end]);
        Ok(())
    }
}
