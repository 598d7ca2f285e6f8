//! Realistic model inputs for checks and benchmarks: valid token ids, a
//! [CLS]-like first token, token types, and padding on both sides, from a
//! fixed seed so that runs repeat — sized for a graph by its own tables
//! ([`inputs_for`], [`sequence_length`]).

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::host::{HostTensor, NamedTensors};
use crate::ir::{Graph, Op};

/// `batch` sequences of length `seq`: the first full, then alternately
/// right- and left-padded to shorter lengths (bertc must not assume a side).
/// Every id is below `vocab` and every type below `type_vocab` (an empty
/// table gets 0, the only index there is to give); `seq` 0 gives empty rows.
pub fn realistic_inputs(
    vocab: usize,
    type_vocab: usize,
    batch: usize,
    seq: usize,
    seed: u64,
) -> NamedTensors {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut ids, mut mask, mut types) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..batch {
        let len = if b == 0 {
            seq
        } else {
            (seq - seq * b / (2 * batch)).clamp(seq.min(1), seq)
        };
        let left_pad = b % 2 == 0 && b > 0;
        let start = if left_pad { seq - len } else { 0 };
        // Ordinary tokens are drawn from 1..vocab (0 is padding), or are 0
        // when the table has no other row.
        let last = vocab.saturating_sub(1) as u64;
        for s in 0..seq {
            let real = (start..start + len).contains(&s);
            let token = match (real, s == start) {
                (false, _) => 0,
                (true, true) => 101.min(last) as i64,
                (true, false) if last == 0 => 0,
                (true, false) => 1 + (rng.next_u64() % last) as i64,
            };
            ids.push(token);
            mask.push(real as i64);
            types.push(if type_vocab > 1 && real && s >= start + len / 2 {
                1
            } else {
                0
            });
        }
    }
    let shape = vec![batch, seq];
    NamedTensors::from([
        ("input_ids".to_string(), HostTensor::i64(shape.clone(), ids)),
        ("attention_mask".to_string(), HostTensor::i64(shape.clone(), mask)),
        ("token_type_ids".to_string(), HostTensor::i64(shape, types)),
    ])
}

/// Realistic inputs for any BERT-like graph: the vocabulary and number of
/// token types are read off the embedding tables its id inputs index.
pub fn inputs_for(g: &Graph, batch: usize, seq: usize) -> NamedTensors {
    inputs_for_seed(g, batch, seq, 0)
}

/// [`inputs_for`] with another seed (calibration draws several batches).
pub fn inputs_for_seed(g: &Graph, batch: usize, seq: usize, seed: u64) -> NamedTensors {
    let table_rows = |input: &str| super::table_rows(g, input);
    let vocab = table_rows("input_ids").unwrap_or(100);
    let types = table_rows("token_type_ids").unwrap_or(1);
    realistic_inputs(vocab, types, batch, seq, seed)
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
            // An fp16 file stores the table as `<name>.f16` (passes/to_fp16):
            // the same table, so the same length (issue 25, N8).
            let name = n.name.strip_suffix(".f16").unwrap_or(&n.name);
            match &n.op {
                Op::Constant(t) if name.ends_with(suffix) && t.dims().len() == 2 => Some(t.dims()[0]),
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
