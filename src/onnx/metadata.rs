//! An ONNX file's `metadata_props` alone, read without decoding its graph:
//! enough to recognise a file bertc wrote (its `bertc.*` keys) before
//! replacing it, at the cost of skipping the graph field by its length.

use std::collections::BTreeMap;
use std::path::Path;

use super::proto::StringStringEntryProto;
use super::OnnxError;

/// ModelProto with every field but `metadata_props` skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct MetadataOnly {
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

/// The metadata of the ONNX file at `path` (a regular file, memory-mapped).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, OnnxError> {
    let m: MetadataOnly = decode_partial(path)?;
    Ok(m.metadata_props.into_iter().map(|p| (p.key, p.value)).collect())
}

/// The file at `path` decoded as `M`, a ModelProto with most fields left
/// out (prost skips them by length without copying); an empty file is
/// `M::default()`.
fn decode_partial<M: prost::Message + Default>(path: &Path) -> Result<M, OnnxError> {
    let io = |error| OnnxError::Io {
        path: path.display().to_string(),
        error,
    };
    crate::input_file::require_regular(path).map_err(io)?;
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Ok(M::default());
    }
    // SAFETY: read-only map of a regular file, dropped before returning;
    // a concurrent truncation could fault, as for every mmap reader.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    M::decode(&map[..]).map_err(|e| OnnxError::Decode(e.to_string()))
}

/// ModelProto → GraphProto → TensorProto with only the external-data
/// entries decoded.
#[derive(Clone, PartialEq, prost::Message)]
struct ExternalOnly {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphInitializers>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphInitializers {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorLocation>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorLocation {
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
}

/// The external data files the ONNX file at `path` names (their
/// `location`s joined to its folder, each once), without decoding the
/// weights: a command's output must not replace them while they are read.
pub fn external_data_files(path: &Path) -> Result<Vec<std::path::PathBuf>, OnnxError> {
    let m: ExternalOnly = decode_partial(path)?;
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut files: Vec<std::path::PathBuf> = m
        .graph
        .into_iter()
        .flat_map(|g| g.initializer)
        .flat_map(|t| t.external_data)
        .filter(|e| e.key == "location")
        .map(|e| folder.join(e.value))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}
