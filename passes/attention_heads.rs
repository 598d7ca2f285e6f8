//! Q, K and V split into heads as attention's scores read them, and the
//! forms exporters give Kᵀ: what `fuse_attention` matches on each side of
//! the scores' product.
//!
//! Kᵀ ([B, n, d, S]) is written three ways:
//! - `Transpose(Reshape(k, [B, S, n, d]), [0, 2, 3, 1])` (eager attention,
//!   TorchScript's SDPA): the head split and the transpose in one;
//! - `Transpose(heads, [0, 1, 3, 2])` of the [B, n, S, d] heads;
//! - dynamo's SDPA: `Reshape(Transpose(Reshape(heads, [B·n, S, d]), [0, 2, 1]),
//!   [B, n, d, S])`, both targets computed from `Shape(heads)` at run time.
//!   The first Reshape merges the two leading axes and the second splits
//!   them back (each keeps the trailing dims, so neither moves an element):
//!   the three swap the heads' last two axes.

use crate::ir::{Dim, Graph, NodeId, Op, Value};

use super::pattern::{constant, input, producer};
use super::rotary::rotation;

/// Q, K or V split into heads as the scores read them.
pub(super) struct Heads {
    /// The value split, [B, S, n·d].
    pub x: Value,
    /// The heads the scores read (n, or n repeated under grouped queries).
    pub heads: usize,
    /// n.
    pub stored_heads: usize,
    /// `Reshape(x, [B, S, n, d])`.
    pub split: Value,
    /// The split heads rotated ([`rotation`]), when they are.
    pub rotated: Option<Value>,
    /// The heads repeated for their query groups ([`repeated_heads`]).
    pub repeated: Option<Value>,
    /// The Transpose that reads the heads (split, rotated or repeated).
    pub transpose: NodeId,
}

impl Heads {
    /// The heads as split and rotated, before any repetition.
    pub fn unrepeated(&self) -> Value {
        self.rotated.unwrap_or(self.split)
    }

    /// What the transpose reads.
    pub fn transposed(&self) -> Value {
        self.repeated.unwrap_or(self.unrepeated())
    }
}

/// `Gather(x, idx, axis 2)` with idx the constant `[0, …, 0, 1, …, 1, …]`
/// (each of x's heads repeated for a group of `idx.len() / n` heads):
/// (x, the heads after it).
pub(super) fn repeated_heads(g: &Graph, v: Value) -> Option<(Value, usize)> {
    if producer(g, v).op != (Op::Gather { axis: 2 }) {
        return None;
    }
    let x = input(g, v.node, 0)?;
    let index = constant(g, input(g, v.node, 1)?)?.to_i64_vec()?;
    let n = g.info(x).shape.dims().get(2)?.fixed()? as usize;
    let groups_ok = n > 0 && index.len() % n == 0 && index.len() > n;
    let expected = crate::builder::repeated_kv_heads(index.len(), n);
    (groups_ok && index == expected && g.info(x).shape.rank() == 4).then_some((x, index.len()))
}

/// `Transpose(Reshape(x, [B, S, n, d]), perm)`, or
/// `Transpose(rotation(Reshape(x, [B, S, n, d])), perm)`, either with the
/// heads repeated for grouped queries before the transpose.
pub(super) fn split_heads(g: &Graph, v: Value, perm: &[usize]) -> Option<Heads> {
    let Op::Transpose { perm: p } = &producer(g, v).op else {
        return None;
    };
    if p != perm {
        return None;
    }
    let transposed = input(g, v.node, 0)?;
    let (heads, repeated) = match repeated_heads(g, transposed) {
        Some((x, _)) => (x, Some(transposed)),
        None => (transposed, None),
    };
    let (split, rotated) = match rotation(g, heads) {
        Some(split) => (split, Some(heads)),
        None => (heads, None),
    };
    if producer(g, split).op != Op::Reshape {
        return None;
    }
    let x = input(g, split.node, 0)?;
    let (xs, ss) = (&g.info(x).shape, &g.info(split).shape);
    if xs.rank() != 3 || ss.rank() != 4 || xs.dims()[..2] != ss.dims()[..2] {
        return None;
    }
    let (n, d) = (ss.dims()[2].fixed()?, ss.dims()[3].fixed()?);
    let read_heads = match repeated {
        Some(r) => repeated_heads(g, r)?.1,
        None => n as usize,
    };
    (xs.dims()[2] == Dim::Fixed(n * d)).then_some(Heads {
        x,
        heads: read_heads,
        stored_heads: n as usize,
        split,
        rotated,
        repeated,
        transpose: v.node,
    })
}

/// Kᵀ as the scores read it, found in one of the forms above.
pub(super) struct KeysTransposed {
    pub heads: Heads,
    /// The (value, reader) pairs between the heads and Kᵀ, each of which
    /// must be read only by its reader for the pattern to own it.
    pub chain: Vec<(Value, NodeId)>,
}

/// The keys' heads behind `kt`, [B, n, d, S], in any of the forms above.
pub(super) fn keys_transposed(g: &Graph, kt: Value) -> Option<KeysTransposed> {
    if let Some(heads) = split_heads(g, kt, &[0, 2, 3, 1]) {
        return Some(KeysTransposed { heads, chain: vec![] });
    }
    if producer(g, kt).op
        == (Op::Transpose {
            perm: vec![0, 1, 3, 2],
        })
    {
        let x = input(g, kt.node, 0)?;
        let heads = split_heads(g, x, &[0, 2, 1, 3])?;
        return Some(KeysTransposed {
            heads,
            chain: vec![(x, kt.node)],
        });
    }
    folded_batch_transpose(g, kt)
}

/// Dynamo's `Reshape(Transpose(Reshape(x, [B·n, S, d]), [0, 2, 1]), [B, n, d, S])`
/// of x = the [B, n, S, d] heads.
fn folded_batch_transpose(g: &Graph, kt: Value) -> Option<KeysTransposed> {
    let t = input(g, kt.node, 0)?;
    if producer(g, kt).op != Op::Reshape || producer(g, t).op != (Op::Transpose { perm: vec![0, 2, 1] }) {
        return None;
    }
    let merged = input(g, t.node, 0)?;
    if producer(g, merged).op != Op::Reshape {
        return None;
    }
    let x = input(g, merged.node, 0)?;
    let heads = split_heads(g, x, &[0, 2, 1, 3])?;
    let dims = |v: Value| g.info(v).shape.dims().to_vec();
    let (xd, md, td, kd) = (dims(x), dims(merged), dims(t), dims(kt));
    // Merging [B, n] keeps [S, d]; splitting back restores [B, n] before
    // the transposed [d, S]. Inference proved the element counts equal.
    let merges = xd.len() == 4 && md.len() == 3 && md[1..] == xd[2..];
    let splits = kd.len() == 4 && kd[..2] == xd[..2] && kd[2..] == td[1..];
    let owned = shape_readers_only_shape(g, x, merged.node, &[merged.node, kt.node]);
    (merges && splits && owned).then_some(KeysTransposed {
        heads,
        chain: vec![(merged, t.node), (t, kt.node)],
    })
}

/// Whether `x` is read by `reader` and otherwise only by `Shape` nodes
/// whose values, through shape arithmetic, end only in the shape inputs
/// (slot 1) of `targets`: the Reshapes dynamo sizes from `Shape(x)`. Those
/// readers die with the pattern.
fn shape_readers_only_shape(g: &Graph, x: Value, reader: NodeId, targets: &[NodeId]) -> bool {
    if g.is_output(x) {
        return false;
    }
    let mut pending: Vec<Value> = Vec::new();
    for (n, _) in g.consumers(x) {
        match &g.node(n).op {
            _ if n == reader => {}
            Op::Shape => pending.push(Value { node: n, slot: 0 }),
            _ => return false,
        }
    }
    // Each step visits one value; a shape computation is a few nodes.
    let mut budget = 64;
    while let Some(v) = pending.pop() {
        budget -= 1;
        if budget == 0 || g.is_output(v) {
            return false;
        }
        for (n, slot) in g.consumers(v) {
            let arithmetic = matches!(
                g.node(n).op,
                Op::Slice | Op::Concat { .. } | Op::Gather { .. } | Op::Unsqueeze { .. } | Op::Squeeze { .. }
            );
            if targets.contains(&n) && slot == 1 {
                continue;
            }
            if !arithmetic || g.node(n).outputs.len() != 1 {
                return false;
            }
            pending.push(Value { node: n, slot: 0 });
        }
    }
    true
}
