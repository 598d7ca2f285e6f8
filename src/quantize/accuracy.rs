//! The accuracy report of a reduced-precision graph: each output against
//! the f32 graph's, in tract, on validation inputs.

use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{export_bytes, ExportOptions};
use crate::runtime::{compare, worst_row_cosine, worst_token_cosine, HostTensor, NamedTensors, TractSession};
use crate::session::Session;

/// How one output moved.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputAccuracy {
    pub name: String,
    /// Cosine similarity of the whole output (all batches flattened).
    pub cosine: f64,
    /// The lowest cosine of any single row (vector along the last axis).
    pub min_row_cosine: f64,
    /// The lowest cosine of a row a pipeline reads: in a per-token output
    /// `[B, S, W]`, the rows at real tokens of the inputs' attention mask
    /// (padding positions are read by nothing, and reduced precision moves
    /// them most); in any other output, every row.
    pub min_real_row_cosine: f64,
    pub max_abs: f64,
}

impl OutputAccuracy {
    /// How far above the gate's bars this output is: the whole cosine
    /// against `min_cosine`, the worst real row against `min_row_cosine`
    /// when held. Negative when a bar is missed; NaN (an overflow to inf
    /// or NaN) counts as infinitely below.
    pub fn margin(&self, min_cosine: f64, min_row_cosine: Option<f64>) -> f64 {
        let whole = self.cosine - min_cosine;
        let rows = min_row_cosine.map_or(f64::INFINITY, |bar| self.min_real_row_cosine - bar);
        if whole.is_nan() || rows.is_nan() {
            f64::NEG_INFINITY
        } else {
            whole.min(rows)
        }
    }
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
    compare_runs(inputs, &expected, &actual)
}

/// A session's outputs on every input set, in order.
pub fn run_all(session: &mut TractSession, inputs: &[NamedTensors]) -> Result<Vec<NamedTensors>, Error> {
    inputs.iter().map(|set| Ok(session.run(set)?)).collect()
}

/// The report of `actual` outputs against `expected` ones, input set by
/// input set (as [`run_all`] gives them for `inputs`).
pub fn compare_runs(
    inputs: &[NamedTensors],
    expected: &[NamedTensors],
    actual: &[NamedTensors],
) -> Result<AccuracyReport, Error> {
    let mut joined: std::collections::BTreeMap<String, Joined> = Default::default();
    for ((set, expected), actual) in inputs.iter().zip(expected).zip(actual) {
        // The same rule as the equivalence check: every reference output
        // must be there, and something must be compared.
        crate::runtime::compare_outputs(expected, actual)?;
        for (name, e) in expected {
            let a = &actual[name];
            let width = *a.shape.last().unwrap_or(&1);
            let real_rows = match set.get("attention_mask") {
                Some(mask) => worst_token_cosine(a, e, mask),
                None => None,
            };
            let (a, e) = (a.to_f32(), e.to_f32());
            let real_rows = real_rows.unwrap_or_else(|| worst_row_cosine(&a, &e, width));
            let entry = joined.entry(name.clone()).or_insert_with(|| Joined {
                real_rows: 1.0,
                ..Default::default()
            });
            entry.actual.extend(a);
            entry.expected.extend(e);
            entry.width = width;
            entry.real_rows = nan_min(entry.real_rows, real_rows);
        }
    }
    let outputs = joined
        .into_iter()
        .map(|(name, j)| {
            let Joined {
                actual: a,
                expected: e,
                width,
                real_rows,
            } = j;
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
                min_real_row_cosine: real_rows,
                max_abs: whole.max_abs,
            }
        })
        .collect();
    Ok(AccuracyReport { outputs })
}

/// One output over every input set.
#[derive(Default)]
struct Joined {
    actual: Vec<f32>,
    expected: Vec<f32>,
    width: usize,
    /// The lowest real-row cosine so far (see [`OutputAccuracy`]).
    real_rows: f64,
}

/// The smaller of two cosines, NaN when either is.
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected and actual runs of a per-token output [1, 3, 2] and a
    /// pooled one [1, 2] on one input set of B=1, S=3 whose last position
    /// is padding.
    fn runs(padding_row: [f32; 2], pooled: [f32; 2]) -> (Vec<NamedTensors>, Vec<NamedTensors>) {
        let outputs = |pad: [f32; 2], pooled: [f32; 2]| -> NamedTensors {
            [
                (
                    "tokens".to_string(),
                    HostTensor::f32(vec![1, 3, 2], vec![1.0, 0.0, 0.0, 1.0, pad[0], pad[1]]),
                ),
                ("pooled".to_string(), HostTensor::f32(vec![1, 2], pooled.to_vec())),
            ]
            .into_iter()
            .collect()
        };
        let expected = vec![outputs([1.0, 1.0], [1.0, 0.0])];
        let actual = vec![outputs(padding_row, pooled)];
        (expected, actual)
    }

    #[test]
    fn real_rows_leave_padding_positions_out() {
        let set: NamedTensors = [(
            "attention_mask".to_string(),
            HostTensor::i64(vec![1, 3], vec![1, 1, 0]),
        )]
        .into_iter()
        .collect();
        // The padding row turned by 90 degrees, the pooled row by 45.
        let (expected, actual) = runs([1.0, -1.0], [1.0, 1.0]);
        let report = compare_runs(&[set], &expected, &actual).unwrap();
        let by_name = |n: &str| report.outputs.iter().find(|o| o.name == n).unwrap().clone();
        let tokens = by_name("tokens");
        assert!(tokens.min_row_cosine.abs() < 1e-12, "{tokens:?}");
        assert_eq!(tokens.min_real_row_cosine, 1.0);
        // Not per-token: every row is a row a pipeline reads.
        let pooled = by_name("pooled");
        assert!(
            (pooled.min_real_row_cosine - 0.5f64.sqrt()).abs() < 1e-9,
            "{pooled:?}"
        );
        assert_eq!(pooled.min_real_row_cosine, pooled.min_row_cosine);
        // Margins: the whole cosine against its bar, the real rows against
        // theirs only when held.
        assert!((pooled.margin(0.5, None) - (0.5f64.sqrt() - 0.5)).abs() < 1e-9);
        assert!(pooled.margin(0.5, Some(0.9)) < 0.0);
        // The tokens' whole cosine is 0.5 (2 / (2 · 2)); their real rows
        // hold any row bar.
        assert!((tokens.cosine - 0.5).abs() < 1e-9, "{tokens:?}");
        assert!((tokens.margin(0.4, Some(0.95)) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn a_nan_output_misses_every_bar() {
        let nan = OutputAccuracy {
            name: "x".into(),
            cosine: f64::NAN,
            min_row_cosine: f64::NAN,
            min_real_row_cosine: f64::NAN,
            max_abs: f64::NAN,
        };
        assert_eq!(nan.margin(0.0, None), f64::NEG_INFINITY);
        assert_eq!(nan.margin(0.0, Some(0.0)), f64::NEG_INFINITY);
    }
}
