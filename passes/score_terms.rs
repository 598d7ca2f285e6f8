//! Attention scores with two additive terms after the scaling, restated as
//! one: `Add(Add(scores, P), M)` → `Add(scores, Add(P, M))`.
//!
//! MPNet's exports (Optimum's, TorchScript's) add the relative position
//! bias P ([B, heads, S, S], shared by every layer) and then the padding
//! mask M to the scaled scores; bertc's builder adds the bias to the mask
//! once (`builder/mpnet.rs`) and `fuse_attention` reads one additive term,
//! a mask per head. Either order of P and M is taken. Reassociating the
//! float sum moves a score by rounding alone (half an ulp of the scores,
//! where the tolerance is 1e-4); `P + M` is made once per distinct pair, so
//! every layer reads the same mask, as in the builder's graph.

use std::collections::HashMap;

use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, Value};

use super::pattern::{only_read_by, operands, producer};

/// Restates every such sum whose outer Add feeds a softmax; `is_scores`
/// says which operand holds the (scaled) product. How many.
pub(super) fn restate(g: &mut Graph, is_scores: impl Fn(&Graph, Value) -> bool) -> Result<usize, IrError> {
    let sites: Vec<(NodeId, Terms)> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Softmax { axis: -1 | 3 }))
        .filter_map(|softmax| {
            let outer = g.inputs_of(softmax).first().copied().flatten()?;
            two_terms(g, outer, &is_scores).map(|terms| (outer.node, terms))
        })
        .collect();
    let mut sums: HashMap<(Value, Value), Value> = HashMap::new();
    for &(outer, Terms { inner, scores, p, m }) in &sites {
        let sum = match sums.get(&(p, m)) {
            Some(&sum) => sum,
            None => {
                let name = g.fresh_name(&format!("{}.with_mask", g.node(p.node).name));
                let sum = g.add(&name, Op::Binary(BinaryOp::Add), &[p, m])?;
                sums.insert((p, m), sum);
                sum
            }
        };
        let name = g.fresh_name(&format!("{}.one_term", g.node(outer).name));
        let restated = g.add(&name, Op::Binary(BinaryOp::Add), &[scores, sum])?;
        g.replace_uses(Value { node: outer, slot: 0 }, restated);
        // Read by nothing now: gone, so the matching sees the scores read
        // by the restated sum alone.
        g.remove(outer);
        g.remove(inner);
    }
    Ok(sites.len())
}

/// `Add(Add(scores, p), m)`: the inner Add's node and the three terms.
#[derive(Clone, Copy)]
struct Terms {
    inner: NodeId,
    scores: Value,
    p: Value,
    m: Value,
}

/// `outer = Add(Add(scores, p), m)` (operands in any order), the inner Add
/// read by the outer alone, `p` and `m` float values that are not scores.
fn two_terms(g: &Graph, outer: Value, is_scores: &impl Fn(&Graph, Value) -> bool) -> Option<Terms> {
    let is_add = |v: Value| producer(g, v).op == Op::Binary(BinaryOp::Add);
    if !is_add(outer) {
        return None;
    }
    let (a, b) = operands(g, outer.node)?;
    if is_scores(g, a) || is_scores(g, b) {
        return None; // already one term
    }
    let (inner, m) = match (is_add(a), is_add(b)) {
        (true, _) if inner_scores(g, a, is_scores).is_some() => (a, b),
        (_, true) if inner_scores(g, b, is_scores).is_some() => (b, a),
        _ => return None,
    };
    let (scores, p) = inner_scores(g, inner, is_scores)?;
    let float = |v: Value| g.info(v).dtype.is_float();
    let plain = |v: Value| !is_scores(g, v);
    let alone = only_read_by(g, inner, &[outer.node]);
    (alone && float(p) && float(m) && plain(p) && plain(m)).then_some(Terms {
        inner: inner.node,
        scores,
        p,
        m,
    })
}

/// `inner = Add(scores, p)` in either order: `(scores, p)`.
fn inner_scores(
    g: &Graph,
    inner: Value,
    is_scores: &impl Fn(&Graph, Value) -> bool,
) -> Option<(Value, Value)> {
    let (a, b) = operands(g, inner.node)?;
    match (is_scores(g, a), is_scores(g, b)) {
        (true, false) => Some((a, b)),
        (false, true) => Some((b, a)),
        _ => None,
    }
}
