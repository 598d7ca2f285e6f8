//! Comparing outputs against references: max-abs, max-rel and cosine, one
//! output or every named output of a run.

use super::host::{HostData, HostTensor, NamedTensors};

/// Why two runs could not be compared output by output.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(
        "the checked model lacks the output `{output}` of the reference (it has: {}); \
         a pass dropped or renamed it",
        .found.join(", ")
    )]
    MissingOutput { output: String, found: Vec<String> },
    #[error("the check compared nothing: the reference model has no outputs")]
    NothingCompared,
}

/// Compares each expected output with the actual one of the same name;
/// fails when one is missing or there is nothing to compare (a check that
/// compares nothing proves nothing).
pub fn compare_outputs(
    expected: &NamedTensors,
    actual: &NamedTensors,
) -> Result<Vec<OutputComparison>, CompareError> {
    if expected.is_empty() {
        return Err(CompareError::NothingCompared);
    }
    expected
        .iter()
        .map(|(name, e)| match actual.get(name) {
            Some(a) => Ok(compare(name, a, e)),
            None => Err(CompareError::MissingOutput {
                output: name.clone(),
                found: actual.keys().cloned().collect(),
            }),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputComparison {
    pub name: String,
    pub max_abs: f64,
    /// max |a − b| / max(|b|, 1e-6) over elements.
    pub max_rel: f64,
    /// Cosine similarity of the flattened tensors.
    pub cosine: f64,
    /// The lowest cosine of any row (vector along the last axis).
    pub worst_row_cosine: f64,
    pub shape_matches: bool,
}

impl OutputComparison {
    pub fn within(&self, atol: f64) -> bool {
        self.shape_matches && self.max_abs <= atol
    }
}

/// Compares `actual` to `expected` (element-wise; shapes must match).
pub fn compare(name: &str, actual: &HostTensor, expected: &HostTensor) -> OutputComparison {
    let (a, b) = (actual.to_f32(), expected.to_f32());
    let shape_matches = actual.shape == expected.shape && a.len() == b.len();
    if !shape_matches {
        return OutputComparison {
            name: name.into(),
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            cosine: 0.0,
            worst_row_cosine: 0.0,
            shape_matches,
        };
    }
    let (mut max_abs, mut max_rel) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(&b) {
        let (x, y) = (x as f64, y as f64);
        let d = (x - y).abs();
        // NaN anywhere must fail, so propagate it instead of max() hiding it.
        max_abs = if d.is_nan() || d > max_abs { d } else { max_abs };
        let r = d / y.abs().max(1e-6);
        max_rel = if r.is_nan() || r > max_rel { r } else { max_rel };
    }
    OutputComparison {
        name: name.into(),
        max_abs,
        max_rel,
        cosine: cosine(&a, &b),
        worst_row_cosine: worst_row_cosine(&a, &b, actual.shape.last().copied().unwrap_or(1)),
        shape_matches,
    }
}

/// `outputs` with what a packed graph does not compute set to zero, for
/// comparing it with the padded graph (both sides masked alike): in an
/// output `[B, S, …]`, the padding positions of `mask` (`[B, S]`); in an
/// output `[B, …]`, the sequences whose first position is padding (a
/// first-token head reads a pad token there, which the packed graph never
/// computes). Everything else is compared as it is.
pub fn at_real_positions(outputs: &NamedTensors, mask: &HostTensor) -> NamedTensors {
    let (keep, m) = (mask.to_f32(), &mask.shape);
    let mut masked = outputs.clone();
    for t in masked.values_mut() {
        let HostData::F32(data) = &mut t.data else {
            continue;
        };
        let (per_position, per_sequence) = match (t.shape.as_slice(), m.as_slice()) {
            ([b, s, ..], [mb, ms]) if b == mb && s == ms => (true, false),
            ([b, ..], [mb, _]) if b == mb => (false, true),
            _ => (false, false),
        };
        let seq_len = m.get(1).copied().unwrap_or(1).max(1);
        let rows = m.first().copied().unwrap_or(1).max(1);
        if per_position {
            let width = data.len() / keep.len().max(1);
            for (row, &k) in data.chunks_mut(width.max(1)).zip(&keep) {
                if k == 0.0 {
                    row.fill(0.0);
                }
            }
        } else if per_sequence {
            let width = data.len() / rows;
            for (b, row) in data.chunks_mut(width.max(1)).enumerate() {
                if keep.get(b * seq_len) == Some(&0.0) {
                    row.fill(0.0);
                }
            }
        }
    }
    masked
}

/// The lowest cosine over the real tokens' rows of a per-token output
/// `[B, S, W]`, given the `[B, S]` attention mask: padding positions have
/// outputs no pipeline reads (and reduced precision moves them most).
/// `None` when the shapes are not per-token.
pub fn worst_token_cosine(actual: &HostTensor, expected: &HostTensor, mask: &HostTensor) -> Option<f64> {
    let (shape, m) = (&actual.shape, &mask.shape);
    if shape.len() != 3 || m.len() != 2 || shape[..2] != m[..] || expected.shape != *shape {
        return None;
    }
    let width = shape[2].max(1);
    let (a, b, keep) = (actual.to_f32(), expected.to_f32(), mask.to_f32());
    Some(
        a.chunks(width)
            .zip(b.chunks(width))
            .zip(&keep)
            .filter(|(_, &k)| k != 0.0)
            .map(|((x, y), _)| cosine(x, y))
            .fold(1f64, |m, c| {
                if c.is_nan() || m.is_nan() {
                    f64::NAN
                } else {
                    m.min(c)
                }
            }),
    )
}

/// The lowest cosine of the rows of `width` elements (NaN if any is NaN).
pub fn worst_row_cosine(a: &[f32], b: &[f32], width: usize) -> f64 {
    let width = width.max(1);
    a.chunks(width)
        .zip(b.chunks(width))
        .map(|(x, y)| cosine(x, y))
        .fold(1f64, |m, c| {
            if c.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.min(c)
            }
        })
}

/// Cosine similarity of two vectors, in f64 (1 when both are zero; NaN
/// when either holds a NaN).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}
