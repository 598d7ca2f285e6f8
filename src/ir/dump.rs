//! The deterministic text dump reviewed in snapshots.
//!
//! One line per node in canonical order: `name = Op{attrs}(inputs) -> types`.
//! Weights are summarised by dtype, shape and a content hash, never printed;
//! constants of at most 8 elements (epsilons, axes, shapes) show their
//! values, since those are structure a reviewer needs to see.
//!
//! [`DumpOptions::weights`] can drop the hashes ([`WeightStyle::Shape`]):
//! structural snapshots then survive a change of initialisation, which
//! would otherwise rewrite every hash.

use std::fmt::Write;

use super::dtype::DType;
use super::graph::{Graph, NodeId, Value};
use super::op::Op;
use super::order::canonical_order;
use super::tensor::Tensor;

/// How a value is referred to in dumps and in the emitted ONNX: the node's
/// name for its first output, `name:k` for output k > 0.
pub fn value_name(g: &Graph, v: Value) -> String {
    let name = &g.node(v.node).name;
    match v.slot {
        0 => name.clone(),
        k => format!("{name}:{k}"),
    }
}

/// How parameters (float or int8 constants of rank ≥ 1, as
/// [`Graph::parameter_count`] counts them) are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightStyle {
    /// dtype, shape and a content hash: pins the values too.
    #[default]
    Hash,
    /// dtype and shape only: pins the structure, not the values.
    Shape,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpOptions {
    pub weights: WeightStyle,
}

/// The full dump with weight hashes.
pub fn dump(g: &Graph) -> String {
    dump_with(g, DumpOptions::default())
}

/// How a constant is shown after its name: `dtype[shape] = values` for small
/// structural constants, `dtype[shape] #hash` for weights (or just
/// `dtype[shape]` when `style` is [`WeightStyle::Shape`]).
pub fn constant_summary(t: &Tensor, style: WeightStyle) -> String {
    let is_parameter = (t.dtype().is_float() || t.dtype() == DType::I8) && !t.dims().is_empty();
    match (style, is_parameter, t.small_values()) {
        (WeightStyle::Shape, true, _) => format!("{}{}", t.dtype(), t.shape()),
        (_, _, Some(values)) => format!("{}{} = {values}", t.dtype(), t.shape()),
        (_, _, None) => format!("{}{} #{}", t.dtype(), t.shape(), t.content_hash()),
    }
}

pub fn dump_with(g: &Graph, opts: DumpOptions) -> String {
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
        writeln!(out, "  {}: {}", n.name, constant_summary(t, opts.weights)).unwrap();
    }
    writeln!(out, "nodes: {}", order.len() - consts.len() - g.inputs().len()).unwrap();
    for &id in &order {
        if !matches!(g.node(id).op, Op::Input | Op::Constant(_)) {
            writeln!(out, "  {}", node_line(g, id)).unwrap();
        }
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

/// One operation as the dumps print it: `name = Op(args) -> types`.
pub(super) fn node_line(g: &Graph, id: super::NodeId) -> String {
    let n = g.node(id);
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
    format!(
        "{} = {}({}) -> {}",
        n.name,
        n.op,
        args.join(", "),
        types.join(", ")
    )
}
