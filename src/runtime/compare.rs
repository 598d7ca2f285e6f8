//! Comparing outputs against references: max-abs, max-rel and cosine.

use super::host::HostTensor;

#[derive(Debug, Clone, PartialEq)]
pub struct OutputComparison {
    pub name: String,
    pub max_abs: f64,
    /// max |a − b| / max(|b|, 1e-6) over elements.
    pub max_rel: f64,
    /// Cosine similarity of the flattened tensors.
    pub cosine: f64,
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
            shape_matches,
        };
    }
    let (mut max_abs, mut max_rel, mut dot, mut na, mut nb) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(&b) {
        let (x, y) = (x as f64, y as f64);
        let d = (x - y).abs();
        // NaN anywhere must fail, so propagate it instead of max() hiding it.
        max_abs = if d.is_nan() || d > max_abs { d } else { max_abs };
        let r = d / y.abs().max(1e-6);
        max_rel = if r.is_nan() || r > max_rel { r } else { max_rel };
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let cosine = if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    };
    OutputComparison {
        name: name.into(),
        max_abs,
        max_rel,
        cosine,
        shape_matches,
    }
}
