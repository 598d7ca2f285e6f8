//! Q, K and V split from one packed projection as PyTorch's exports of
//! ModernBERT write it, restated in the form `fuse_attention` reads.
//!
//! ModernBERT projects Q, K and V with one `Wqkv` ([B, S, 3·n·d]) and its
//! exports split the heads in one go:
//!
//! ```text
//! heads_i = Squeeze(Slice(Transpose(Reshape(x, [B, S, 3, n, d]), [0, 3, 2, 1, 4]), i..i+1, axis 2), axis 2)
//! ```
//!
//! Element (b, h, s, e) of `heads_i` ([B, n, S, d]) is x[b, s, i·n·d + h·d + e]:
//! the columns i·n·d … (i+1)·n·d of x split into heads, which is
//!
//! ```text
//! Transpose(Reshape(Slice(x, i·n·d, (i+1)·n·d, last axis), [B, S, n, d]), [0, 2, 1, 3])
//! ```
//!
//! — the head split `attention_heads::split_heads` recognizes, with the
//! [B, S, n·d] value the fused Attention reads. Both forms move the same
//! elements (no arithmetic), so the restatement is exact.

use crate::ir::{Dim, Graph, IrError, NodeId, Op, Value};

use super::pattern::{input, producer, slice_bounds, SharedInts};

/// One head split: the `Squeeze` that makes `heads_i`, and what it reads.
struct Match {
    squeeze: NodeId,
    /// The packed projection [B, S, 3·n·d].
    x: Value,
    /// Which of Q, K, V (0, 1, 2).
    part: i64,
    heads: i64,
    head_size: i64,
}

/// Restates every packed head split in `g`; returns how many.
pub(super) fn restate(g: &mut Graph) -> Result<usize, IrError> {
    let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
    let mut ints = SharedInts::default();
    for m in &matches {
        let base = g.node(m.squeeze).name.clone();
        let fresh = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
        let width = m.heads * m.head_size;
        let start = ints.get(g, &format!("{base}.columns_start"), &[m.part * width])?;
        let end = ints.get(g, &format!("{base}.columns_end"), &[(m.part + 1) * width])?;
        let axis = ints.get(g, &format!("{base}.columns_axis"), &[-1])?;
        let columns = g.add(&fresh(g, "columns"), Op::Slice, &[m.x, start, end, axis])?;
        let shape = ints.get(
            g,
            &format!("{base}.split_heads_shape"),
            &[0, 0, m.heads, m.head_size],
        )?;
        let split = g.add(&fresh(g, "split_heads"), Op::Reshape, &[columns, shape])?;
        let perm = Op::Transpose {
            perm: vec![0, 2, 1, 3],
        };
        let heads = g.add(&fresh(g, "heads"), perm, &[split])?;
        g.replace_uses(
            Value {
                node: m.squeeze,
                slot: 0,
            },
            heads,
        );
    }
    Ok(matches.len())
}

fn match_at(g: &Graph, squeeze: NodeId) -> Option<Match> {
    if g.node(squeeze).op != (Op::Squeeze { axes: vec![2] }) {
        return None;
    }
    let sliced = input(g, squeeze, 0)?;
    let (transposed, start, end, axis) = slice_bounds(g, sliced)?;
    let perm = Op::Transpose {
        perm: vec![0, 3, 2, 1, 4],
    };
    if axis != 2 || end != start + 1 || !(0..3).contains(&start) || producer(g, transposed).op != perm {
        return None;
    }
    let reshaped = input(g, transposed.node, 0)?;
    if producer(g, reshaped).op != Op::Reshape {
        return None;
    }
    let x = input(g, reshaped.node, 0)?;
    let (xd, rd) = (g.info(x).shape.dims(), g.info(reshaped).shape.dims());
    let [b, s, three, n, d] = rd else {
        return None;
    };
    let (n, d) = (n.fixed()?, d.fixed()?);
    let packed = xd.len() == 3
        && xd[0] == *b
        && xd[1] == *s
        && *three == Dim::Fixed(3)
        && xd[2] == Dim::Fixed(3 * n * d);
    packed.then_some(Match {
        squeeze,
        x,
        part: start,
        heads: n,
        head_size: d,
    })
}
