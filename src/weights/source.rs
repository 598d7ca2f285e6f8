//! Opening a checkpoint of any kind bertc reads — safetensors, PyTorch's
//! zip `pytorch_model.bin`, or a sharded `*.index.json` of either —
//! recognised by its first bytes, never by its extension (a misnamed file
//! is common; a wrong guess would report nonsense). Files of a kind that
//! is not a checkpoint (ONNX, a config JSON, the legacy torch format) get
//! an error saying what was found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use safetensors::{Dtype, SafeTensors};

use super::stored::{contiguous_strides, DType, StoredTensor};
use super::torch_bin::{self, TorchError};
use super::WeightsError;

/// What a file is, from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Safetensors,
    /// PyTorch's zip format (torch >= 1.6): a zip archive.
    TorchZip,
    /// PyTorch's legacy format: a bare pickle stream (or tar, before 0.4).
    TorchLegacy,
    /// A sharded checkpoint's `*.index.json` (a JSON object with `weight_map`).
    WeightIndex,
    Onnx,
    /// Any other JSON (a config, a tokenizer file).
    Json,
    /// Starts like JSON but does not parse (truncated or damaged).
    InvalidJson,
    Empty,
    Unknown,
}

impl FileKind {
    /// Recognises a file from its bytes.
    pub fn sniff(bytes: &[u8]) -> FileKind {
        if bytes.is_empty() {
            return FileKind::Empty;
        }
        // safetensors: u64 header length, then the JSON header. Checked
        // first: a header length of 123 starts with `{` like JSON does.
        if let Some(n) = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        {
            if n >= 2 && n.checked_add(8).is_some_and(|end| end <= bytes.len() as u64) && bytes[8] == b'{' {
                return FileKind::Safetensors;
            }
        }
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            return FileKind::TorchZip;
        }
        // Legacy torch.save: a pickle (protocol 2 opcode first) holding the
        // magic number; before 0.4, a tar archive.
        if bytes[0] == 0x80 || bytes.get(257..262) == Some(b"ustar") {
            return FileKind::TorchLegacy;
        }
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if let Some(&first) = text.iter().find(|b| !b.is_ascii_whitespace()) {
            if first == b'{' || first == b'[' {
                return match serde_json::from_slice::<serde_json::Value>(text) {
                    Ok(v) if v.get("weight_map").is_some_and(|m| m.is_object()) => FileKind::WeightIndex,
                    Ok(_) => FileKind::Json,
                    Err(_) => FileKind::InvalidJson,
                };
            }
        }
        // ONNX ModelProto: protobuf starting with ir_version (field 1,
        // varint), a small number, then another field of ModelProto.
        if bytes.len() > 3
            && bytes[0] == 0x08
            && (1..0x80).contains(&bytes[1])
            && [0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72].contains(&bytes[2])
        {
            return FileKind::Onnx;
        }
        FileKind::Unknown
    }

    /// What the file is, in words, for errors.
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Safetensors => "a safetensors checkpoint",
            FileKind::TorchZip => "a PyTorch checkpoint (zip)",
            FileKind::TorchLegacy => "a PyTorch checkpoint in the legacy (pre-1.6) format",
            FileKind::WeightIndex => "a sharded checkpoint index",
            FileKind::Onnx => "an ONNX model",
            FileKind::Json => "a JSON file (not a checkpoint index: no `weight_map`)",
            FileKind::InvalidJson => "a JSON file that does not parse (truncated or damaged)",
            FileKind::Empty => "an empty file",
            FileKind::Unknown => "a file of unknown kind",
        }
    }
}

/// The kind of the file at `path`, from its first bytes (JSON files are
/// parsed to tell an index from a config).
pub fn file_kind(path: &Path) -> Result<FileKind, WeightsError> {
    Ok(FileKind::sniff(&map_file(path)?))
}

/// An opened checkpoint: its files mapped, its tensors indexed by name.
#[derive(Debug)]
pub struct Checkpoint {
    path: String,
    kind: FileKind,
    files: Vec<memmap2::Mmap>,
    tensors: BTreeMap<String, StoredTensor>,
}

impl Checkpoint {
    /// Opens a safetensors file, a `pytorch_model.bin`, or an index.json
    /// (whose shards may be either).
    pub fn open(path: &Path) -> Result<Checkpoint, WeightsError> {
        let shown = path.display().to_string();
        let map = map_file(path)?;
        let kind = FileKind::sniff(&map);
        let mut ck = Checkpoint {
            path: shown.clone(),
            kind,
            files: Vec::new(),
            tensors: BTreeMap::new(),
        };
        match kind {
            FileKind::WeightIndex => {
                let index =
                    serde_json::from_slice::<serde_json::Value>(&map).map_err(|e| index_error(&shown, e))?;
                ck.add_index(path, &index)?;
            }
            kind => {
                let tensors = read_tensors(&shown, kind, &map)?;
                ck.files.push(map);
                ck.tensors.extend(tensors);
            }
        }
        Ok(ck)
    }

    /// The path as given, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What the opened file is (`WeightIndex` for a sharded checkpoint).
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    /// The element type of tensor `name`, if present.
    pub fn dtype(&self, name: &str) -> Option<&DType> {
        self.tensors.get(name).map(|t| &t.dtype)
    }

    /// Tensor `name` widened to f32 (row-major, views materialized).
    /// Err: absent, or a dtype other than f32/f16/bf16 (named).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, String> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| format!("no tensor `{name}`"))?;
        t.to_f32(&self.files[t.file])
            .map_err(|e| format!("tensor `{name}` {e}"))
    }

    fn add_index(&mut self, path: &Path, index: &serde_json::Value) -> Result<(), WeightsError> {
        let shown = path.display().to_string();
        let bad = |reason: String| WeightsError::Index {
            path: shown.clone(),
            reason,
        };
        let map = index["weight_map"]
            .as_object()
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut by_shard: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| bad(format!("`{name}` maps to {shard}, not a file name")))?;
            by_shard.entry(shard).or_default().push(name);
        }
        if by_shard.is_empty() {
            return Err(bad("`weight_map` is empty".into()));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for (shard, names) in by_shard {
            // Shards sit beside the index: never read outside its folder.
            let rel = Path::new(shard);
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(bad(format!(
                    "shard `{shard}` is not a file in the index's folder"
                )));
            }
            let shard_path = dir.join(rel);
            let shard_shown = shard_path.display().to_string();
            let map = map_file(&shard_path)?;
            let kind = FileKind::sniff(&map);
            if kind == FileKind::WeightIndex {
                return Err(bad(format!("shard `{shard}` is itself an index")));
            }
            let tensors = read_tensors(&shard_shown, kind, &map)?;
            let held: BTreeSet<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
            if let Some(missing) = names.iter().find(|n| !held.contains(**n)) {
                return Err(bad(format!(
                    "`{missing}` is mapped to shard `{shard}`, which does not hold it"
                )));
            }
            let file = self.files.len();
            self.files.push(map);
            for (name, mut t) in tensors {
                t.file = file;
                if self.tensors.insert(name.clone(), t).is_some() {
                    return Err(bad(format!("tensor `{name}` is in more than one shard")));
                }
            }
        }
        Ok(())
    }
}

fn index_error(path: &str, e: serde_json::Error) -> WeightsError {
    WeightsError::Index {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// The tensors of one checkpoint file of a known kind.
fn read_tensors(
    shown: &str,
    kind: FileKind,
    bytes: &[u8],
) -> Result<Vec<(String, StoredTensor)>, WeightsError> {
    match kind {
        FileKind::Safetensors => read_safetensors(shown, bytes),
        FileKind::TorchZip => torch_bin::read(bytes).map_err(|e| match e {
            TorchError::RefusedGlobal(global) => WeightsError::RefusedGlobal {
                path: shown.to_string(),
                global,
            },
            TorchError::Malformed(reason) => WeightsError::Torch {
                path: shown.to_string(),
                reason,
            },
        }),
        FileKind::TorchLegacy => Err(WeightsError::LegacyTorch {
            path: shown.to_string(),
        }),
        // A truncated index is a parse error, with serde's line and column,
        // not "not a checkpoint index".
        FileKind::InvalidJson => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => Err(index_error(shown, e)),
            Ok(_) => Err(WeightsError::WrongKind {
                path: shown.to_string(),
                found: FileKind::Json.describe(),
            }),
        },
        other => Err(WeightsError::WrongKind {
            path: shown.to_string(),
            found: other.describe(),
        }),
    }
}

fn read_safetensors(shown: &str, bytes: &[u8]) -> Result<Vec<(String, StoredTensor)>, WeightsError> {
    let format = |reason: String| WeightsError::Format {
        path: shown.to_string(),
        reason,
    };
    // read_metadata validates every tensor's offsets against its shape and
    // dtype and the buffer's length.
    let (n, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let data_start = 8 + n;
    Ok(metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let dtype = match info.dtype {
                Dtype::F32 => DType::F32,
                Dtype::F16 => DType::F16,
                Dtype::BF16 => DType::BF16,
                other => DType::Other {
                    name: format!("{other:?}"),
                    size: other.bitsize().div_ceil(8),
                },
            };
            let t = StoredTensor {
                file: 0,
                dtype,
                strides: contiguous_strides(&info.shape),
                shape: info.shape.clone(),
                start: data_start + info.data_offsets.0,
                offset: 0,
            };
            (name, t)
        })
        .collect())
}

fn map_file(path: &Path) -> Result<memmap2::Mmap, WeightsError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(WeightsError::WrongKind {
            path: shown,
            found: "a directory (use find_weights to pick the checkpoint in a model folder)",
        });
    }
    // Devices and FIFOs first: opening a FIFO blocks, /dev/zero never ends.
    if let Err(error) = crate::input_file::require_regular(path) {
        return match error.kind() {
            std::io::ErrorKind::InvalidInput => Err(WeightsError::WrongKind {
                path: shown,
                found: "a device, FIFO or socket, not a regular file",
            }),
            _ => Err(WeightsError::Io { path: shown, error }),
        };
    }
    let file = std::fs::File::open(path).map_err(|error| WeightsError::Io {
        path: shown.clone(),
        error,
    })?;
    // SAFETY: the map is read-only; a file truncated underneath us by
    // another process is outside our contract.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|error| WeightsError::Io { path: shown, error })
}

/// The tensors of a checkpoint held in memory — safetensors or PyTorch's
/// zip format, recognised from the bytes as [`Checkpoint::open`] does —
/// as (name, shape, values widened to f32). Tensors of a non-float dtype,
/// or of more than `max_elements` elements, are listed without values.
/// The entry point for bytes from anywhere (the fuzz targets use it).
pub fn read_checkpoint_bytes(
    bytes: &[u8],
    max_elements: usize,
) -> Result<Vec<CheckpointTensor>, WeightsError> {
    const SHOWN: &str = "(bytes)";
    let tensors = read_tensors(SHOWN, FileKind::sniff(bytes), bytes)?;
    Ok(tensors
        .into_iter()
        .map(|(name, t)| {
            let values = match t.numel() {
                Some(n) if n <= max_elements => t.to_f32(bytes).ok(),
                _ => None,
            };
            CheckpointTensor {
                name,
                shape: t.shape,
                values,
            }
        })
        .collect())
}

/// One tensor read by [`read_checkpoint_bytes`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointTensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// The values as f32; `None` for a non-float dtype or a tensor over the bound.
    pub values: Option<Vec<f32>>,
}
