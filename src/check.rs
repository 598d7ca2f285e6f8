//! The equivalence check behind `compile` and `optimize`: the optimized
//! graph must give the unoptimized graph's numbers, in tract, on realistic
//! inputs, before it is written.

use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{export_bytes, ExportOptions};
use crate::runtime::{compare, NamedTensors, OutputComparison, TractSession};

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
    reference: &Graph,
    candidate: &Graph,
    inputs: &NamedTensors,
) -> Result<Vec<OutputComparison>, Error> {
    Ok(check_loaded(reference, candidate, ExportOptions::default(), inputs)?.0)
}

/// A graph serialized once and loaded in tract from those bytes: what is
/// checked is then exactly what gets written, and later stages (the
/// accuracy gate) reuse the loaded model instead of serializing and parsing
/// it again — for BERT-base each of those costs about a second.
pub struct Loaded {
    pub bytes: Vec<u8>,
    pub session: TractSession,
}

impl Loaded {
    pub fn new(g: &Graph, export: ExportOptions) -> Result<Loaded, Error> {
        let bytes = export_bytes(g, export)?;
        let session = TractSession::from_bytes(&bytes)?;
        Ok(Loaded { bytes, session })
    }
}

/// [`check_equivalence`], keeping the candidate loaded (serialized with
/// `export`, the options it will be written with). The reference is
/// serialized, parsed and run on a second thread meanwhile: parsing is
/// single-threaded in tract, and the two models are independent.
pub fn check_loaded(
    reference: &Graph,
    candidate: &Graph,
    export: ExportOptions,
    inputs: &NamedTensors,
) -> Result<(Vec<OutputComparison>, Loaded), Error> {
    let (expected, loaded) = alongside(
        || -> Result<NamedTensors, Error> {
            // Its bytes are not kept: the two models' peak memory is the
            // price of checking them side by side.
            let bytes = export_bytes(reference, ExportOptions::default())?;
            let mut session = TractSession::from_bytes(&bytes)?;
            drop(bytes);
            Ok(session.run(inputs)?)
        },
        || -> Result<(NamedTensors, Loaded), Error> {
            let mut c = Loaded::new(candidate, export)?;
            Ok((c.session.run(inputs)?, c))
        },
    );
    let (actual, loaded) = loaded?;
    Ok((compare_outputs(&expected?, &actual)?, loaded))
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
