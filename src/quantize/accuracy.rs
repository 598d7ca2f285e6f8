//! The accuracy report of a reduced-precision graph: each output against
//! the f32 graph's, in tract, on validation inputs.

use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{export_bytes, ExportOptions};
use crate::runtime::{compare, HostTensor, NamedTensors, TractSession};

/// `--min-cosine`'s default: the accuracy int8 BERTs are held to.
pub const DEFAULT_MIN_COSINE: f64 = 0.99;

/// How one output moved.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputAccuracy {
    pub name: String,
    /// Cosine similarity of the whole output (all batches flattened).
    pub cosine: f64,
    /// The lowest cosine of any single row (vector along the last axis).
    pub min_row_cosine: f64,
    pub max_abs: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyReport {
    pub outputs: Vec<OutputAccuracy>,
}

impl AccuracyReport {
    /// Fails with the first output whose cosine is below `min_cosine`.
    pub fn require(&self, min_cosine: f64) -> Result<(), Error> {
        match self
            .outputs
            .iter()
            .find(|o| o.cosine.is_nan() || o.cosine < min_cosine)
        {
            None => Ok(()),
            Some(o) => Err(Error::AccuracyBelow {
                output: o.name.clone(),
                cosine: o.cosine,
                min_cosine,
            }),
        }
    }
}

/// Runs `reference` and `candidate` in tract on each input set and compares
/// every output the two share.
pub fn accuracy_report(
    reference: &Graph,
    candidate: &Graph,
    inputs: &[NamedTensors],
) -> Result<AccuracyReport, Error> {
    let session = |g: &Graph| -> Result<TractSession, Error> {
        Ok(TractSession::from_bytes(&export_bytes(
            g,
            ExportOptions::default(),
        )?)?)
    };
    let (mut r, mut c) = (session(reference)?, session(candidate)?);
    let mut joined: std::collections::BTreeMap<String, (Vec<f32>, Vec<f32>, usize)> = Default::default();
    for set in inputs {
        let (expected, actual) = (r.run(set)?, c.run(set)?);
        for (name, a) in &actual {
            let Some(e) = expected.get(name) else { continue };
            let entry = joined.entry(name.clone()).or_default();
            entry.0.extend(a.to_f32());
            entry.1.extend(e.to_f32());
            entry.2 = *a.shape.last().unwrap_or(&1);
        }
    }
    let outputs = joined
        .into_iter()
        .map(|(name, (a, e, width))| {
            let whole = compare(
                &name,
                &HostTensor::f32(vec![a.len()], a.clone()),
                &HostTensor::f32(vec![e.len()], e.clone()),
            );
            let min_row_cosine = a
                .chunks(width.max(1))
                .zip(e.chunks(width.max(1)))
                .map(|(x, y)| cosine(x, y))
                .fold(1f64, |m, c| if c.is_nan() { c } else { m.min(c) });
            OutputAccuracy {
                name,
                cosine: whole.cosine,
                min_row_cosine,
                max_abs: whole.max_abs,
            }
        })
        .collect();
    Ok(AccuracyReport { outputs })
}

/// Cosine similarity of two vectors (1 when both are zero).
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
