//! Loading parameters from a checkpoint: safetensors (memory-mapped),
//! `pytorch_model.bin` (PyTorch's zip format, read without executing its
//! pickle) or a sharded `*.index.json` of either — see [`Checkpoint`].
//!
//! Accepts names with or without the `bert.` prefix, f32, f16 and bf16
//! sources (widened to f32), and ignores the buffers BertEmbeddings
//! registers (`position_ids`, `token_type_ids`). Every missing tensor, wrong
//! shape or dtype, and unexpected tensor is reported together, by name.

use std::collections::BTreeSet;
use std::path::Path;

use rayon::prelude::*;

use super::source::Checkpoint;
use super::{finish, ParamSpec, Weights, WeightsError};

/// The tensor names a checkpoint holds (to see, say, whether it has a pooler).
pub fn checkpoint_names(path: &Path) -> Result<Vec<String>, WeightsError> {
    Ok(Checkpoint::open(path)?.names())
}

/// The same as [`from_checkpoint`]; the name predates `pytorch_model.bin`
/// support and is kept for existing callers.
pub fn from_safetensors(path: &Path, specs: &[ParamSpec]) -> Result<Weights, WeightsError> {
    from_checkpoint(path, specs)
}

/// Reads the parameters `specs` from the checkpoint at `path`, whatever its
/// kind (recognised from its bytes).
pub fn from_checkpoint(path: &Path, specs: &[ParamSpec]) -> Result<Weights, WeightsError> {
    from_checkpoint_with(path, specs, false)
}

/// [`from_checkpoint`], refusing NaN and ±Inf values unless
/// `allow_nonfinite`: a trained checkpoint never holds them, and once in
/// the graph they surface only as NaN outputs far from their cause.
pub fn from_checkpoint_with(
    path: &Path,
    specs: &[ParamSpec],
    allow_nonfinite: bool,
) -> Result<Weights, WeightsError> {
    let ck = Checkpoint::open(path)?;
    let shown = ck.path().to_string();
    let names = ck.names();

    // Name missing tensors the way this checkpoint names the others.
    let prefixed = |prefix: &str| names.iter().any(|n| n.starts_with(&format!("{prefix}.")));
    // Err((problem, is_nonfinite)).
    let results: Vec<Result<(String, super::Tensor), (String, bool)>> = specs
        .par_iter()
        .map(|spec| {
            let under = format!("{}.{}", spec.prefix, spec.name);
            let candidates = match (spec.under_bert_prefix, prefixed(spec.prefix)) {
                (true, true) => vec![under, spec.name.clone()],
                (true, false) => vec![spec.name.clone(), under],
                (false, _) => vec![spec.name.clone()],
            };
            // Both spellings present: which copy is meant cannot be known.
            if candidates.len() == 2 && candidates.iter().all(|n| ck.shape(n).is_some()) {
                return Err((
                    format!(
                        "both `{}` and `{}` are present: two copies of one parameter; \
                         remove one of them",
                        candidates[0], candidates[1]
                    ),
                    false,
                ));
            }
            let Some((found, shape)) = candidates.iter().find_map(|n| ck.shape(n).map(|s| (n, s))) else {
                return Err((
                    format!("missing tensor `{}` (expected shape {:?})", candidates[0], spec.shape),
                    false,
                ));
            };
            // The shape is checked before reading: a checkpoint cannot make
            // us allocate more than the model needs.
            if shape != spec.shape.as_slice() {
                return Err((
                    format!("tensor `{found}` has shape {shape:?}, expected {:?}", spec.shape),
                    false,
                ));
            }
            let values = ck.to_f32(found).map_err(|e| (e, false))?;
            if !allow_nonfinite {
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    let count = values.iter().filter(|v| !v.is_finite()).count();
                    return Err((
                        format!(
                            "tensor `{found}` holds {} at element {i} (index in its stored layout {shape:?}); \
                             {count} of its {} values are NaN or infinite",
                            values[i],
                            values.len()
                        ),
                        true,
                    ));
                }
            }
            Ok((spec.name.clone(), finish(spec, values)))
        })
        .collect();

    let mut problems = Vec::new();
    let mut nonfinite = Vec::new();
    let mut weights = Weights::default();
    for r in results {
        match r {
            Ok((name, t)) => {
                weights.tensors.insert(name, t);
            }
            Err((p, false)) => problems.push(p),
            Err((p, true)) => nonfinite.push(p),
        }
    }
    let expected: BTreeSet<String> = specs
        .iter()
        .flat_map(|s| {
            let prefixed = s.under_bert_prefix.then(|| format!("{}.{}", s.prefix, s.name));
            prefixed.into_iter().chain([s.name.clone()])
        })
        .collect();
    for name in names {
        if expected.contains(&name) || is_buffer(&name) {
            continue;
        }
        if crate::family::is_head_or_pooler_tensor(&name) {
            // Another head's (or the pooler's) weights: not this model's.
            weights.ignored.push(name);
        } else {
            let shape = ck.shape(&name).unwrap_or_default();
            problems.push(format!(
                "unexpected tensor `{name}` with shape {shape:?} (not part of this model)"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch {
            path: shown,
            problems,
        });
    }
    if !nonfinite.is_empty() {
        return Err(WeightsError::NonFinite {
            path: shown,
            problems: nonfinite,
        });
    }
    Ok(weights)
}

/// Buffers BertEmbeddings registers and saves; they are not weights.
fn is_buffer(name: &str) -> bool {
    name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids")
}
