//! ONNX external data: initializers stored in one file beside the model
//! (`model.onnx` → `model.onnx_data`), as Optimum and onnxruntime write
//! them, for models over protobuf's 2 GB limit.
//!
//! Reading maps each data file once and hands out zero-copy slices of it:
//! a 2 GB file is neither read once per initializer nor copied into memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::proto;
use super::tensors::tensor_from_proto;
use crate::ir::Tensor;

/// protobuf's limit on one message: 2^31 − 1 bytes. A model that would
/// encode larger is written with external data whatever was asked.
pub const PROTOBUF_LIMIT: usize = i32::MAX as usize;

/// Initializers smaller than this stay inline, as onnxruntime's default
/// (`session.optimized_model_external_initializers_min_size_in_bytes`,
/// 1024) and onnx's `size_threshold` (1024) choose: shapes, axes and
/// scalars stay readable in the model itself.
pub const INLINE_BELOW: usize = 1024;

/// Initializers larger than this start at a multiple of [`ALIGNMENT`], so a
/// runtime can map them in place (onnxruntime's `align_threshold`, 1 MiB).
pub const ALIGN_ABOVE: usize = 1 << 20;

/// 64 KiB: the mmap allocation granularity of Windows, a multiple of every
/// page size, so the file maps in place everywhere (onnxruntime uses 4 KiB
/// on Linux, 64 KiB on Windows; the larger works for both).
pub const ALIGNMENT: u64 = 1 << 16;

/// The data file of a model: its file name with `_data` appended.
pub fn data_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push("_data");
    model.with_file_name(name)
}

/// Where each externalized initializer's bytes go in the data file.
pub(super) struct Layout {
    chunks: Vec<(u64, Bytes)>,
    /// The data file's length.
    pub len: u64,
}

/// Moves every initializer of at least [`INLINE_BELOW`] bytes out of
/// `model` into a data file named `location` (relative to the model's
/// folder), in initializer order; returns where the bytes go.
pub(super) fn externalize(model: &mut proto::ModelProto, location: &str) -> Layout {
    let mut chunks = Vec::new();
    let mut end = 0u64;
    let Some(graph) = model.graph.as_mut() else {
        return Layout { chunks, len: 0 };
    };
    for t in &mut graph.initializer {
        let len = t.raw_data.len();
        if len < INLINE_BELOW {
            continue;
        }
        let offset = if len > ALIGN_ABOVE {
            end.next_multiple_of(ALIGNMENT)
        } else {
            end
        };
        let entry = |key: &str, value: String| proto::StringStringEntryProto {
            key: key.into(),
            value,
        };
        t.external_data = vec![
            entry("location", location.into()),
            entry("offset", offset.to_string()),
            entry("length", len.to_string()),
        ];
        t.data_location = 1; // EXTERNAL
        chunks.push((offset, std::mem::take(&mut t.raw_data)));
        end = offset + len as u64;
    }
    Layout { chunks, len: end }
}

impl Layout {
    /// Writes the data file: every chunk at its offset, zeros between.
    pub(super) fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        static ZEROS: [u8; ALIGNMENT as usize] = [0; ALIGNMENT as usize];
        let mut at = 0u64;
        for (offset, bytes) in &self.chunks {
            // Padding is always shorter than ALIGNMENT.
            w.write_all(&ZEROS[..(offset - at) as usize])?;
            w.write_all(bytes)?;
            at = offset + bytes.len() as u64;
        }
        Ok(())
    }
}

/// The external data files of one model being read, each mapped once.
pub(super) struct ExternalFiles<'a> {
    dir: Option<&'a Path>,
    files: HashMap<PathBuf, Bytes>,
}

impl<'a> ExternalFiles<'a> {
    /// `dir`: the model's folder (`None` for a model read from bytes).
    pub(super) fn new(dir: Option<&'a Path>) -> Self {
        ExternalFiles {
            dir,
            files: HashMap::new(),
        }
    }

    /// An initializer stored outside the model: `location` (which must
    /// resolve inside the model's folder, symlinks included), optional
    /// `offset` and `length`.
    pub(super) fn tensor(&mut self, t: &proto::TensorProto) -> Result<Tensor, String> {
        let dir = self
            .dir
            .ok_or("external data needs the model's folder; load the model from its path")?;
        let field = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.as_str())
        };
        let location = field("location").ok_or("external data without a location")?;
        let number = |k: &str| -> Result<Option<usize>, String> {
            field(k)
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| format!("external data {k} `{v}` is not a number"))
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        let path = crate::input_file::resolve_inside(dir, location).map_err(|e| e.to_string())?;
        let data = match self.files.get(&path) {
            Some(d) => d.clone(),
            None => {
                let d =
                    map(&path).map_err(|e| format!("cannot read external data {}: {e}", path.display()))?;
                self.files.insert(path.clone(), d.clone());
                d
            }
        };
        let length = length.unwrap_or(data.len().saturating_sub(offset));
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                format!(
                    "external data `{location}`: {length} bytes from offset {offset} are past its end ({} bytes)",
                    data.len()
                )
            })?;
        let mut inline = proto::TensorProto {
            external_data: vec![],
            data_location: 0,
            ..t.clone()
        };
        inline.raw_data = data.slice(offset..end);
        tensor_from_proto(&inline)
    }
}

/// The whole file, memory-mapped and shared by every tensor sliced from it.
fn map(path: &Path) -> std::io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new()); // mmap refuses empty files
    }
    // SAFETY: the map is read-only and private to bertc. Like every reader
    // that maps model files (tract, onnxruntime), it assumes the file is
    // not truncated while the model is in use; bertc's own writes never do
    // that (they rename a new file over the old one).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, len: usize) -> proto::TensorProto {
        proto::TensorProto {
            name: name.into(),
            raw_data: vec![7u8; len].into(),
            ..Default::default()
        }
    }

    #[test]
    fn small_initializers_stay_inline_and_large_ones_are_aligned() {
        let mut model = proto::ModelProto {
            graph: Some(proto::GraphProto {
                initializer: vec![
                    tensor("axes", 8),
                    tensor("bias", 4096),
                    tensor("weight", ALIGN_ABOVE + 4),
                    tensor("small", 1024),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let layout = externalize(&mut model, "m.onnx_data");
        let offsets: Vec<u64> = layout.chunks.iter().map(|c| c.0).collect();
        assert_eq!(offsets, [0, ALIGNMENT, ALIGNMENT + ALIGN_ABOVE as u64 + 4]);
        assert_eq!(layout.len, ALIGNMENT + ALIGN_ABOVE as u64 + 4 + 1024);
        let g = model.graph.unwrap();
        assert_eq!(
            g.initializer[0].raw_data.len(),
            8,
            "below 1024 bytes stays inline"
        );
        assert!(g.initializer[0].external_data.is_empty());
        assert!(g.initializer[1].raw_data.is_empty());
        assert_eq!(g.initializer[2].data_location, 1);
        let mut file = Vec::new();
        layout.write_to(&mut file).unwrap();
        assert_eq!(file.len() as u64, layout.len);
        assert!(
            file[4096..ALIGNMENT as usize].iter().all(|&b| b == 0),
            "padding is zeros"
        );
    }

    #[test]
    fn data_file_is_named_after_the_model() {
        assert_eq!(
            data_path(Path::new("out/bert.onnx")),
            Path::new("out/bert.onnx_data")
        );
        assert_eq!(data_path(Path::new("m.onnx")), Path::new("m.onnx_data"));
    }
}
