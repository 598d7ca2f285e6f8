//! Small queries fusions use to match patterns without mutating the graph.

use crate::ir::{Graph, Node, NodeId, Op, Tensor, Value};

/// The node that produces `v`.
pub fn producer(g: &Graph, v: Value) -> &Node {
    g.node(v.node)
}

/// Input `slot` of node `id`.
pub fn input(g: &Graph, id: NodeId, slot: usize) -> Option<Value> {
    g.inputs_of(id).get(slot).copied().flatten()
}

/// Both inputs of a binary node, or `None`.
pub fn operands(g: &Graph, id: NodeId) -> Option<(Value, Value)> {
    Some((input(g, id, 0)?, input(g, id, 1)?))
}

/// The constant behind `v`, if it is one.
pub fn constant(g: &Graph, v: Value) -> Option<&Tensor> {
    match &producer(g, v).op {
        Op::Constant(t) => Some(t),
        _ => None,
    }
}

/// The value of a one-element float constant.
pub fn scalar(g: &Graph, v: Value) -> Option<f32> {
    let t = constant(g, v)?;
    match t.len() {
        1 => t.to_f32_vec().map(|x| x[0]),
        _ => None,
    }
}

/// Whether `v` is a one-element float constant within 1e-4 (relative) of `expected`.
pub fn is_scalar(g: &Graph, v: Value, expected: f32) -> bool {
    scalar(g, v).is_some_and(|x| (x - expected).abs() <= 1e-4 * expected.abs().max(1.0))
}

/// Of the two operands of a commutative node, the one that is not `known`
/// (when one of them is `known`).
pub fn other_operand(g: &Graph, id: NodeId, known: impl Fn(Value) -> bool) -> Option<Value> {
    let (a, b) = operands(g, id)?;
    match (known(a), known(b)) {
        (true, _) => Some(b),
        (_, true) => Some(a),
        _ => None,
    }
}

/// Whether every reader of `v` is one of `readers` (and `v` is no graph output):
/// the condition for rewriting the nodes in between without losing a value
/// someone else needs.
pub fn only_read_by(g: &Graph, v: Value, readers: &[NodeId]) -> bool {
    !g.is_output(v) && g.consumers(v).iter().all(|(n, _)| readers.contains(n))
}

/// The name of a node that replaces `nodes`: their longest common dotted
/// prefix when it is a free name (`encoder.layer.3.attention.self` for an
/// attention, `embeddings.LayerNorm` for a layer norm), else the root's
/// name plus `suffix`.
pub fn fused_name(g: &Graph, root: NodeId, nodes: &[NodeId], suffix: &str) -> String {
    let names: Vec<&str> = nodes.iter().map(|&n| g.node(n).name.as_str()).collect();
    let first: Vec<&str> = names.first().map(|n| n.split('.').collect()).unwrap_or_default();
    let mut common = first.len();
    for n in &names[1..] {
        let segs: Vec<&str> = n.split('.').collect();
        common = common.min(first.iter().zip(&segs).take_while(|(a, b)| a == b).count());
    }
    // A full name is not a prefix: keep at least one segment off every name.
    let shortest = names.iter().map(|n| n.split('.').count()).min().unwrap_or(0);
    let prefix = first[..common.min(shortest.saturating_sub(1))].join(".");
    if !prefix.is_empty() && g.find(&prefix).is_none() {
        return prefix;
    }
    g.fresh_name(&format!("{}.{suffix}", g.node(root).name))
}
