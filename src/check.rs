//! The equivalence check behind `compile` and `optimize`: the optimized
//! graph must give the unoptimized graph's numbers, in tract, on realistic
//! inputs, before it is written.

use crate::error::Error;
use crate::ir::Graph;
use bytes::Bytes;

use crate::atomic_write::EarlyWrite;
use crate::onnx::{export_into, split_bytes, split_graph, ExportOptions, Sink};
use crate::runtime::{compare, NamedTensors, OutputComparison, PlanMode, SharedWeights, TractSession};
use crate::session::Session;

/// The default tolerance of fp32 pipelines (max-abs, every output element).
pub const CHECK_ATOL: f64 = 1e-4;

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
) -> Result<Vec<OutputComparison>, Error> {
    Ok(check_loaded(
        session,
        reference,
        candidate,
        ExportOptions::default(),
        inputs,
        CandidateForm::Serialized(Sink::Memory),
    )?
    .0)
}

/// A graph serialized once and loaded in tract from those bytes: what is
/// checked is then exactly what gets written, and later stages (the
/// accuracy gate) reuse the loaded model instead of serializing and parsing
/// it again — for BERT-base each of those costs about a second.
pub struct Loaded {
    /// `None` when the graph was loaded without being serialized (its
    /// bytes would never be written).
    pub bytes: Option<Bytes>,
    pub session: TractSession,
}

impl Loaded {
    pub fn new(session: &Session, g: &Graph, export: ExportOptions) -> Result<Loaded, Error> {
        Ok(Loaded::into_sink(session, g, export, Sink::Memory)?.0)
    }

    /// [`Loaded::new`] with the bytes serialized into `sink`; the file
    /// they went to, if they did. tract parses the graph of those bytes and
    /// takes their weights from them.
    pub fn into_sink(
        session: &Session,
        g: &Graph,
        export: ExportOptions,
        sink: Sink,
    ) -> Result<(Loaded, Option<EarlyWrite>), Error> {
        let (bytes, written) = export_into(g, export, sink)?;
        let session =
            TractSession::from_split(session, &split_bytes(bytes.clone())?, &mut SharedWeights::new())?;
        Ok((
            Loaded {
                bytes: Some(bytes),
                session,
            },
            written,
        ))
    }
}

/// `g` loaded in tract without being serialized: its graph is, its
/// weights are the IR's own buffers (for models that are never written).
pub fn load_unwritten(
    session: &Session,
    g: &Graph,
    weights: &mut SharedWeights,
) -> Result<TractSession, Error> {
    Ok(TractSession::from_split(
        session,
        &split_graph(g, ExportOptions::default())?,
        weights,
    )?)
}

/// What the check does with the candidate: how it is loaded in tract, and
/// how it is planned.
#[derive(Debug)]
pub enum CandidateForm<'a> {
    /// Serialized into the sink — the bytes that are written — and loaded
    /// from them: when that is a file, the check reads the file's own
    /// pages. Planned optimized, as users run it.
    Serialized(Sink<'a>),
    /// Written later in another layout (external data, whose graph tract
    /// cannot take from one buffer): loaded from the IR, sharing every
    /// weight, and planned optimized.
    WrittenLater,
    /// Never written (a later stage changes the graph): loaded from the IR
    /// and planned decluttered like the reference. The check then proves
    /// the passes' numbers; the model that is written is planned and run
    /// optimized by the stage that writes it (the precision gate).
    Unwritten,
}

/// [`check_equivalence`], keeping the candidate loaded in `form`
/// (serialized with `export`, the options it will be written with). The
/// reference is never serialized: tract gets its graph and the IR's
/// weights, made into tract tensors while the candidate is serialized on
/// this thread, and runs it decluttered ([`PlanMode::Decluttered`]: its
/// one run packs no weights into a plan). The candidate shares every
/// tensor whose bytes equal the reference's. The two models run side by
/// side.
pub fn check_loaded(
    session: &Session,
    reference: &Graph,
    candidate: &Graph,
    export: ExportOptions,
    inputs: &NamedTensors,
    form: CandidateForm<'_>,
) -> Result<(Vec<OutputComparison>, Loaded, Option<EarlyWrite>), Error> {
    let (mode, sink) = match form {
        CandidateForm::Serialized(sink) => (PlanMode::Optimized, Some(sink)),
        CandidateForm::WrittenLater => (PlanMode::Optimized, None),
        CandidateForm::Unwritten => (PlanMode::Decluttered, None),
    };
    let (reference, serialized) = alongside(
        || -> Result<(TractSession, SharedWeights), Error> {
            let mut weights = SharedWeights::new();
            let session = load_unwritten(session, reference, &mut weights)?;
            Ok((session.with_plan_mode(PlanMode::Decluttered), weights))
        },
        || sink.map(|sink| export_into(candidate, export, sink)).transpose(),
    );
    let (mut reference, mut weights) = reference?;
    let (mut loaded, writing) = match serialized? {
        Some((bytes, writing)) => {
            let session = TractSession::from_split(session, &split_bytes(bytes.clone())?, &mut weights)?;
            let bytes = Some(bytes);
            (Loaded { bytes, session }, writing)
        }
        None => {
            let session = load_unwritten(session, candidate, &mut weights)?.with_plan_mode(mode);
            (Loaded { bytes: None, session }, None)
        }
    };
    drop(weights);
    let (expected, actual) = alongside(
        || -> Result<NamedTensors, Error> { Ok(reference.run(inputs)?) },
        || loaded.session.run(inputs),
    );
    Ok((compare_outputs(&expected?, &actual?)?, loaded, writing))
}

/// Runs `a` on a scoped thread while `b` runs on this one; both results.
/// A panic on the other thread (tract's are caught inside the session, so
/// this is a bug) becomes an error rather than tearing down the process.
pub fn alongside<A: Send, B>(
    a: impl FnOnce() -> Result<A, Error> + Send,
    b: impl FnOnce() -> B,
) -> (Result<A, Error>, B) {
    std::thread::scope(|s| {
        let handle = s.spawn(a);
        let b = b();
        let a = handle.join().unwrap_or_else(|payload| {
            Err(crate::runtime::RuntimeError::Panic {
                stage: "check",
                message: crate::runtime::panic_message(payload.as_ref()),
            }
            .into())
        });
        (a, b)
    })
}

/// Compares each expected output with the actual one of the same name;
/// fails when one is missing or there is nothing to compare.
pub fn compare_outputs(
    expected: &NamedTensors,
    actual: &NamedTensors,
) -> Result<Vec<OutputComparison>, Error> {
    if expected.is_empty() {
        return Err(Error::NothingCompared);
    }
    expected
        .iter()
        .map(|(name, e)| match actual.get(name) {
            Some(a) => Ok(compare(name, a, e)),
            None => Err(Error::MissingOutput {
                output: name.clone(),
                found: actual.keys().cloned().collect(),
            }),
        })
        .collect()
}

/// Fails with the first output beyond `atol`, or when nothing was compared.
pub fn require_within(comparisons: &[OutputComparison], atol: f64) -> Result<(), Error> {
    if comparisons.is_empty() {
        return Err(Error::NothingCompared);
    }
    match comparisons.iter().find(|c| !c.within(atol)) {
        None => Ok(()),
        Some(c) => Err(Error::CheckFailed {
            output: c.name.clone(),
            max_abs: c.max_abs,
            atol,
        }),
    }
}

/// Realistic inputs for any BERT-like graph: the vocabulary and number of
/// token types are read off the embedding tables its id inputs index.
pub fn inputs_for(g: &Graph, batch: usize, seq: usize) -> NamedTensors {
    inputs_for_seed(g, batch, seq, 0)
}

/// The longest sequence the graph's position tables cover: the rows of a
/// relative distance table (2·max − 1 rows) when it has one — relative
/// models keep an unused absolute table — else the rows of the absolute
/// position table, less the rows RoBERTa-style position ids skip
/// ([`crate::family::position_offset`]). `None` when it has neither (by
/// these names).
pub fn max_sequence(g: &Graph) -> Option<usize> {
    let rows = |suffix: &str| {
        g.node_ids().find_map(|id| {
            let n = g.node(id);
            match &n.op {
                crate::ir::Op::Constant(t) if n.name.ends_with(suffix) && t.dims().len() == 2 => {
                    Some(t.dims()[0])
                }
                _ => None,
            }
        })
    };
    match rows("distance_embedding.weight") {
        Some(r) => Some(r.div_ceil(2)),
        None => rows("position_embeddings.weight")
            .map(|r| r.saturating_sub(crate::family::position_offset(g)).max(1)),
    }
}

/// The one rule for how long generated inputs may be: `wanted` tokens,
/// or the longest sequence the position tables cover when that is less.
pub fn sequence_length(g: &Graph, wanted: usize) -> usize {
    max_sequence(g).map_or(wanted, |m| wanted.min(m))
}

/// [`inputs_for`] with another seed (calibration draws several batches).
pub fn inputs_for_seed(g: &Graph, batch: usize, seq: usize, seed: u64) -> NamedTensors {
    let table_rows = |input: &str| crate::runtime::table_rows(g, input);
    let vocab = table_rows("input_ids").unwrap_or(100);
    let types = table_rows("token_type_ids").unwrap_or(1);
    crate::runtime::realistic_inputs(vocab, types, batch, seq, seed)
}
