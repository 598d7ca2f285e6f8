//! Loading parameters from a safetensors checkpoint (memory-mapped).
//!
//! Accepts names with or without the `bert.` prefix, f32, f16 and bf16
//! sources (widened to f32), and ignores the buffers BertEmbeddings
//! registers (`position_ids`, `token_type_ids`). Every missing tensor, wrong
//! shape or dtype, and unexpected tensor is reported together, by name.

use std::collections::BTreeSet;
use std::path::Path;

use half::{bf16, f16};
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};

use super::{finish, ParamSpec, Weights, WeightsError};

/// The tensor names a checkpoint holds (to see, say, whether it has a pooler).
pub fn checkpoint_names(path: &Path) -> Result<Vec<String>, WeightsError> {
    let shown = path.display().to_string();
    let map = map_file(path)?;
    let st = SafeTensors::deserialize(&map).map_err(|e| WeightsError::Format {
        path: shown,
        reason: e.to_string(),
    })?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    Ok(names)
}

fn map_file(path: &Path) -> Result<memmap2::Mmap, WeightsError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(WeightsError::Format {
            path: shown,
            reason: "is a directory, not a safetensors file".into(),
        });
    }
    let file = std::fs::File::open(path).map_err(|error| WeightsError::Io {
        path: shown.clone(),
        error,
    })?;
    // SAFETY: the map is read-only and lives only for this call; a file
    // truncated underneath us by another process is outside our contract.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|error| WeightsError::Io { path: shown, error })
}

pub fn from_safetensors(path: &Path, specs: &[ParamSpec]) -> Result<Weights, WeightsError> {
    let shown = path.display().to_string();
    let map = map_file(path)?;
    let st = SafeTensors::deserialize(&map).map_err(|e| WeightsError::Format {
        path: shown.clone(),
        reason: e.to_string(),
    })?;

    // Name missing tensors the way this checkpoint names the others.
    let prefixed = st.names().iter().any(|n| n.starts_with("bert."));
    let results: Vec<Result<(String, super::Tensor), String>> = specs
        .par_iter()
        .map(|spec| {
            let candidates = match (spec.under_bert_prefix, prefixed) {
                (true, true) => vec![format!("bert.{}", spec.name), spec.name.clone()],
                (true, false) => vec![spec.name.clone(), format!("bert.{}", spec.name)],
                (false, _) => vec![spec.name.clone()],
            };
            let Some((found, view)) = candidates.iter().find_map(|n| st.tensor(n).ok().map(|v| (n, v)))
            else {
                return Err(format!(
                    "missing tensor `{}` (expected shape {:?})",
                    candidates[0], spec.shape
                ));
            };
            if view.shape() != spec.shape.as_slice() {
                return Err(format!(
                    "tensor `{found}` has shape {:?}, expected {:?}",
                    view.shape(),
                    spec.shape
                ));
            }
            let values = widen(view.dtype(), view.data()).ok_or_else(|| {
                format!(
                    "tensor `{found}` has dtype {:?}; expected F32, F16 or BF16",
                    view.dtype()
                )
            })?;
            Ok((spec.name.clone(), finish(spec, values)))
        })
        .collect();

    let mut problems = Vec::new();
    let mut weights = Weights::default();
    for r in results {
        match r {
            Ok((name, t)) => {
                weights.tensors.insert(name, t);
            }
            Err(p) => problems.push(p),
        }
    }
    let expected: BTreeSet<String> = specs
        .iter()
        .flat_map(|s| {
            let prefixed = s.under_bert_prefix.then(|| format!("bert.{}", s.name));
            prefixed.into_iter().chain([s.name.clone()])
        })
        .collect();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        if expected.contains(&name) || is_buffer(&name) {
            continue;
        }
        if crate::builder::is_head_or_pooler_tensor(&name) {
            // Another head's (or the pooler's) weights: not this model's.
            weights.ignored.push(name);
        } else {
            let shape = st.tensor(&name).map(|v| v.shape().to_vec()).unwrap_or_default();
            problems.push(format!(
                "unexpected tensor `{name}` with shape {shape:?} (not part of this model)"
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(weights),
        false => Err(WeightsError::Mismatch {
            path: shown,
            problems,
        }),
    }
}

/// Buffers BertEmbeddings registers and saves; they are not weights.
fn is_buffer(name: &str) -> bool {
    name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids")
}

fn widen(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}
