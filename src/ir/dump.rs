//! The deterministic text dump reviewed in snapshots.
//!
//! One line per node in canonical order: `name = Op{attrs}(inputs) -> types`.
//! Weights are summarised by dtype, shape and a content hash, never printed;
//! constants of at most 8 elements (epsilons, axes, shapes) show their
//! values, since those are structure a reviewer needs to see.

use std::fmt::Write;

use super::graph::{Graph, NodeId, Value};
use super::op::Op;
use super::order::canonical_order;

/// How a value is referred to in dumps and in the emitted ONNX: the node's
/// name for its first output, `name:k` for output k > 0.
pub fn value_name(g: &Graph, v: Value) -> String {
    let name = &g.node(v.node).name;
    match v.slot {
        0 => name.clone(),
        k => format!("{name}:{k}"),
    }
}

pub fn dump(g: &Graph) -> String {
    let order = canonical_order(g);
    let mut out = String::new();
    let consts: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&id| matches!(g.node(id).op, Op::Constant(_)))
        .collect();
    let (params, bytes) = consts.iter().fold((0, 0), |(p, b), &id| match &g.node(id).op {
        Op::Constant(t) => (p + t.len(), b + t.raw().len()),
        _ => (p, b),
    });

    writeln!(out, "inputs:").unwrap();
    for &id in g.inputs() {
        let n = g.node(id);
        writeln!(out, "  {}: {}{}", n.name, n.outputs[0].dtype, n.outputs[0].shape).unwrap();
    }
    writeln!(
        out,
        "constants: {} tensors, {params} elements, {bytes} bytes",
        consts.len()
    )
    .unwrap();
    for &id in &consts {
        let n = g.node(id);
        let Op::Constant(t) = &n.op else { unreachable!() };
        match t.small_values() {
            Some(values) => writeln!(out, "  {}: {}{} = {values}", n.name, t.dtype(), t.shape()),
            None => writeln!(
                out,
                "  {}: {}{} #{}",
                n.name,
                t.dtype(),
                t.shape(),
                t.content_hash()
            ),
        }
        .unwrap();
    }
    writeln!(out, "nodes: {}", order.len() - consts.len() - g.inputs().len()).unwrap();
    for &id in &order {
        let n = g.node(id);
        if matches!(n.op, Op::Input | Op::Constant(_)) {
            continue;
        }
        let args: Vec<String> = g
            .inputs_of(id)
            .into_iter()
            .map(|v| v.map_or_else(|| "_".to_string(), |v| value_name(g, v)))
            .collect();
        let types: Vec<String> = n
            .outputs
            .iter()
            .map(|o| format!("{}{}", o.dtype, o.shape))
            .collect();
        writeln!(
            out,
            "  {} = {}({}) -> {}",
            n.name,
            n.op,
            args.join(", "),
            types.join(", ")
        )
        .unwrap();
    }
    writeln!(out, "outputs:").unwrap();
    for (name, v) in g.outputs() {
        let info = g.info(*v);
        writeln!(
            out,
            "  {name} = {}: {}{}",
            value_name(g, *v),
            info.dtype,
            info.shape
        )
        .unwrap();
    }
    out
}
