//! The equivalence check behind `compile` and `optimize`: the graph after
//! the fp32 passes must give the numbers of the graph before them, in
//! tract, on realistic inputs, before it is written. Also the verdicts of
//! both checks — this one's tolerance and the accuracy gate's bar — as
//! [`CheckError`].
//!
//! This stage returns its own error (no `crate::Error`): the library's
//! error type holds it without an import cycle.

use crate::ir::Graph;
use crate::onnx::{split_bytes, split_graph, ExportOptions, OnnxError};
use crate::passes::PACKED_METADATA;
use crate::runtime::{
    at_real_positions, compare_outputs, inputs_for, sequence_length, CompareError, NamedTensors,
    OutputComparison, PlanMode, RuntimeError, SharedWeights, TractSession,
};

use crate::session::Session;

use super::alongside::alongside;
use super::artifact::Artifact;

/// The input whose zeros are padding.
const ATTENTION_MASK: &str = "attention_mask";

/// The default tolerance of fp32 pipelines (max-abs, every output element).
pub const CHECK_ATOL: f64 = 1e-4;

/// Why a candidate failed a check, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "the optimized model's `{output}` moved by {max_abs:e} from the unoptimized one (tolerance {atol:e}); \
         nothing was written (--no-check writes it anyway)"
    )]
    Failed { output: String, max_abs: f64, atol: f64 },
    #[error(
        "the reduced-precision model's `{output}` has cosine {cosine:.7} against the f32 model, \
         below --min-cosine {min_cosine}; nothing was written (--quantize-skip auto keeps the most \
         sensitive layers f32)"
    )]
    AccuracyBelow {
        output: String,
        cosine: f64,
        min_cosine: f64,
    },
    #[error(
        "a row of the reduced-precision model's `{output}` (at a real token, or one sequence's) has \
         cosine {cosine:.7} against the f32 model, below --min-row-cosine {min_row_cosine}; nothing \
         was written (--quantize-skip auto keeps the most sensitive layers f32)"
    )]
    RowAccuracyBelow {
        output: String,
        cosine: f64,
        min_row_cosine: f64,
    },
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// Serializing the candidate (boxed, as below: the library's error
    /// holds this one, and stays small by it).
    #[error(transparent)]
    Onnx(Box<OnnxError>),
    /// Loading or running either model in tract.
    #[error(transparent)]
    Runtime(Box<RuntimeError>),
}

impl From<OnnxError> for CheckError {
    fn from(e: OnnxError) -> Self {
        CheckError::Onnx(Box::new(e))
    }
}

impl From<RuntimeError> for CheckError {
    fn from(e: RuntimeError) -> Self {
        CheckError::Runtime(Box::new(e))
    }
}

/// The inputs of the equivalence check: batch 3 — one full sequence, one
/// right- and one left-padded — of 16 tokens, or fewer when the position
/// tables are shorter.
pub fn check_inputs(g: &Graph) -> NamedTensors {
    inputs_for(g, 3, sequence_length(g, 16))
}

/// Runs both graphs in tract on `inputs` and compares every output of
/// `reference` with the same-named output of `candidate`. An output of
/// the reference that the candidate lacks is an error, as is a reference
/// with no outputs: a check that compares nothing proves nothing.
pub fn check_equivalence(
    session: &Session,
    reference: &Graph,
    candidate: &Graph,
    inputs: &NamedTensors,
) -> Result<Vec<OutputComparison>, CheckError> {
    let mut candidate = Artifact::new(candidate.clone(), ExportOptions::default(), None);
    Ok(check_candidate(session, reference, &mut candidate, true, inputs)?.0)
}

/// [`check_equivalence`] on the pipeline's candidate; `written` says
/// whether it is the graph written (no later stage changes it). Also the
/// candidate as loaded, for the accuracy gate to run as its f32 side.
///
/// How the candidate is loaded:
/// - written as one file: serialized once ([`Artifact::serialize`], which
///   keeps the bytes for the write and may put them in the output's
///   temporary file) and loaded from those bytes, so what is checked is
///   exactly what is written; planned optimized, as users run it;
/// - written with external data (whose graph tract cannot take from one
///   buffer): loaded from the IR, planned optimized;
/// - not written (a later stage changes it): loaded from the IR and
///   planned decluttered like the reference. The check then proves the
///   passes' numbers; the stage that writes the model runs it optimized.
///
/// The reference is never serialized: tract gets its graph and the IR's
/// weights, made into tract tensors while the candidate is serialized on
/// this thread, and runs it decluttered (its one run packs no weights into
/// a plan). The candidate shares every tensor whose bytes equal the
/// reference's. The two models run side by side.
pub fn check_candidate(
    session: &Session,
    reference: &Graph,
    candidate: &mut Artifact,
    written: bool,
    inputs: &NamedTensors,
) -> Result<(Vec<OutputComparison>, TractSession), CheckError> {
    let serialized = written && !candidate.written_with_external_data()?;
    let mode = match written {
        true => PlanMode::Optimized,
        false => PlanMode::Decluttered,
    };
    let (reference, bytes) = alongside(
        || -> Result<(TractSession, SharedWeights), CheckError> {
            let mut weights = SharedWeights::new();
            let loaded = load_unwritten(session, reference, &mut weights)?;
            Ok((loaded.with_plan_mode(PlanMode::Decluttered), weights))
        },
        || serialized.then(|| candidate.serialize(true)).transpose(),
    );
    let (mut reference, mut weights) = reference?;
    let mut loaded = match bytes? {
        Some(bytes) => TractSession::from_split(session, &split_bytes(bytes)?, &mut weights)?,
        None => load_unwritten(session, candidate.graph(), &mut weights)?.with_plan_mode(mode),
    };
    drop(weights);
    let (expected, actual) = alongside(
        || -> Result<NamedTensors, CheckError> { Ok(reference.run(inputs)?) },
        || loaded.run(inputs),
    );
    let (expected, actual) = (expected?, actual?);
    // A packed graph computes no padding positions: compare the rest.
    let packed = candidate.graph().metadata.contains_key(PACKED_METADATA);
    let comparisons = match (packed, inputs.get(ATTENTION_MASK)) {
        (true, Some(mask)) => compare_outputs(
            &at_real_positions(&expected, mask),
            &at_real_positions(&actual, mask),
        )?,
        _ => compare_outputs(&expected, &actual)?,
    };
    Ok((comparisons, loaded))
}

/// `g` loaded in tract without being serialized: its graph is, its
/// weights are the IR's own buffers (for models that are never written).
pub fn load_unwritten(
    session: &Session,
    g: &Graph,
    weights: &mut SharedWeights,
) -> Result<TractSession, CheckError> {
    Ok(TractSession::from_split(
        session,
        &split_graph(g, ExportOptions::default())?,
        weights,
    )?)
}

/// Fails with the first output beyond `atol`, or when nothing was compared.
pub fn require_within(comparisons: &[OutputComparison], atol: f64) -> Result<(), CheckError> {
    if comparisons.is_empty() {
        return Err(CompareError::NothingCompared.into());
    }
    match comparisons.iter().find(|c| !c.within(atol)) {
        None => Ok(()),
        Some(c) => Err(CheckError::Failed {
            output: c.name.clone(),
            max_abs: c.max_abs,
            atol,
        }),
    }
}
