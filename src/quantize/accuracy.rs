//! The accuracy report of a reduced-precision graph: each output against
//! the f32 graph's, in tract, on validation inputs.

use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{export_bytes, ExportOptions};
use crate::runtime::{compare, worst_row_cosine, HostTensor, NamedTensors, TractSession};
use crate::session::Session;

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

/// Runs `reference` and `candidate` in tract on each input set and compares
/// every output the two share.
pub fn accuracy_report(
    session: &Session,
    reference: &Graph,
    candidate: &Graph,
    inputs: &[NamedTensors],
) -> Result<AccuracyReport, Error> {
    let load = |g: &Graph| -> Result<TractSession, Error> {
        Ok(TractSession::from_bytes(
            session,
            &export_bytes(g, ExportOptions::default())?,
        )?)
    };
    let expected = run_all(&mut load(reference)?, inputs)?;
    let actual = run_all(&mut load(candidate)?, inputs)?;
    compare_runs(&expected, &actual)
}

/// A session's outputs on every input set, in order.
pub fn run_all(session: &mut TractSession, inputs: &[NamedTensors]) -> Result<Vec<NamedTensors>, Error> {
    inputs.iter().map(|set| Ok(session.run(set)?)).collect()
}

/// The report of `actual` outputs against `expected` ones, input set by
/// input set (as [`run_all`] gives them).
pub fn compare_runs(expected: &[NamedTensors], actual: &[NamedTensors]) -> Result<AccuracyReport, Error> {
    let mut joined: std::collections::BTreeMap<String, (Vec<f32>, Vec<f32>, usize)> = Default::default();
    for (expected, actual) in expected.iter().zip(actual) {
        // The same rule as the equivalence check: every reference output
        // must be there, and something must be compared.
        crate::runtime::compare_outputs(expected, actual)?;
        for (name, e) in expected {
            let a = &actual[name];
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
            let min_row_cosine = worst_row_cosine(&a, &e, width);
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
