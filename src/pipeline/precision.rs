//! The precision and gate stages: the graph rewritten to fp16 or int8
//! ([`crate::quantize::apply`]), measured against the f32 graph on the
//! validation inputs, and refused below the `min_cosine` bar.

use crate::error::Error;
use crate::onnx::split_bytes;
use crate::passes::{PassRun, Target};
use crate::quantize::{
    self, compare_runs, run_all, validation_inputs, AccuracyReport, OutputAccuracy, Precision,
};
use crate::runtime::{NamedTensors, PlanMode, SharedWeights, TractSession};

use crate::session::Session;

use super::alongside::alongside;
use super::artifact::Artifact;
use super::check::{load_unwritten, CheckError};

/// What the precision stage did.
pub struct Reduced {
    pub runs: Vec<PassRun>,
    /// Each output of the reduced graph against the f32 one (measured
    /// even when the gate is off: the report is printed).
    pub accuracy: AccuracyReport,
}

/// Rewrites the artifact's graph to `precision` for `target` and measures
/// it against the f32 graph on the validation inputs. `fp32` is the f32
/// graph as the check loaded it, if the check ran; the reduced graph is
/// loaded from the bytes it is written as, serialized while the f32 side
/// runs — into the output's temporary file when `written` (no later stage
/// changes the graph) and the output is known.
pub fn reduce(
    session: &Session,
    artifact: &mut Artifact,
    precision: &Precision,
    target: Target,
    fp32: Option<TractSession>,
    written: bool,
) -> Result<Reduced, Error> {
    let reference = artifact.graph().clone();
    let runs = artifact.change(|g| -> Result<Vec<PassRun>, Error> {
        let runs = quantize::apply(session, g, precision, target)?;
        g.metadata
            .insert("bertc.precision".into(), precision.name().into());
        Ok(runs)
    })?;
    let inputs = validation_inputs(&reference);
    // The f32 side only supplies the expected numbers, so it runs
    // decluttered: no plan with every weight packed for the gate's shape
    // (and the check's plan, with its packed weights, is dropped here).
    let mut fp32 = match fp32 {
        Some(loaded) => loaded,
        None => load_unwritten(session, &reference, &mut SharedWeights::new())?,
    }
    .with_plan_mode(PlanMode::Decluttered);
    let (expected, actual) = alongside(
        || run_all(&mut fp32, &inputs),
        || -> Result<Vec<NamedTensors>, Error> {
            let bytes = artifact.serialize(written)?;
            let mut reduced =
                TractSession::from_split(session, &split_bytes(bytes)?, &mut SharedWeights::new())?;
            run_all(&mut reduced, &inputs)
        },
    );
    let actual = actual?;
    let accuracy = compare_runs(&inputs, &expected?, &actual)?;
    Ok(Reduced { runs, accuracy })
}

/// The accuracy gate: fails with the first output whose cosine against
/// f32 is below `min_cosine`, or, when `min_row_cosine` is held, one of
/// whose rows a pipeline reads is below that.
pub fn gate(
    accuracy: &AccuracyReport,
    min_cosine: f64,
    min_row_cosine: Option<f64>,
) -> Result<(), CheckError> {
    let failed = |o: &&OutputAccuracy| o.margin(min_cosine, min_row_cosine) < 0.0;
    match accuracy.outputs.iter().find(failed) {
        None => Ok(()),
        Some(o) if o.cosine.is_nan() || o.cosine < min_cosine => Err(CheckError::AccuracyBelow {
            output: o.name.clone(),
            cosine: o.cosine,
            min_cosine,
        }),
        Some(o) => Err(CheckError::RowAccuracyBelow {
            output: o.name.clone(),
            cosine: o.min_real_row_cosine,
            min_row_cosine: min_row_cosine.unwrap_or(1.0),
        }),
    }
}
