//! A structural summary of a graph, short enough to review for a 24-layer
//! model: inputs, outputs, parameter and op counts, the nodes outside the
//! encoder layers, and the encoder layers collapsed — consecutive layers
//! whose nodes are identical up to the layer index print once.
//!
//! Weights show as dtype and shape only (no content hash): the summary pins
//! structure, so a change of initialisation leaves it as it is. The full
//! [`super::dump`] remains the record of values.
//!
//! Within a layer, names are written with `{i}` for the layer's own index
//! and `{i-1}` for the previous layer's; values the layer reads from outside
//! (the previous layer's output, the shared mask, constants shared by every
//! layer) are `$0`, `$1`, … and listed once per group with the layers that
//! read each name. A layer that differs (e.g. the last one after
//! `prune_to_first_token`) starts a group of its own.

use std::collections::HashMap;
use std::fmt::Write;

use super::dump::{constant_summary, value_name, WeightStyle};
use super::graph::{Graph, NodeId, Value};
use super::op::Op;
use super::order::canonical_order;

/// The name prefix of BERT's encoder layers, as the builder names them.
const LAYER_PREFIX: &str = "encoder.layer.";

/// The layer index a name belongs to (`encoder.layer.3.…` → 3).
fn layer_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix(LAYER_PREFIX)?;
    let (digits, _) = rest.split_once('.').unwrap_or((rest, ""));
    digits.parse().ok()
}

/// `name` with layer `n`'s index written `{i}` and layer `n − 1`'s `{i-1}`.
fn templated(name: &str, n: usize) -> String {
    match layer_index(name) {
        Some(k) if k == n => name.replacen(&format!("{LAYER_PREFIX}{k}"), &format!("{LAYER_PREFIX}{{i}}"), 1),
        Some(k) if k + 1 == n => name.replacen(
            &format!("{LAYER_PREFIX}{k}"),
            &format!("{LAYER_PREFIX}{{i-1}}"),
            1,
        ),
        _ => name.to_string(),
    }
}

/// Which layer each node belongs to: non-constant nodes by name; a constant
/// only when its name says so and every reader is in that layer (a constant
/// shared across layers, e.g. after common-subexpression elimination, is
/// listed outside and read as `$k`).
fn layer_membership(g: &Graph, order: &[NodeId]) -> HashMap<NodeId, usize> {
    let mut member: HashMap<NodeId, usize> = order
        .iter()
        .filter(|&&id| !matches!(g.node(id).op, Op::Constant(_) | Op::Input))
        .filter_map(|&id| layer_index(&g.node(id).name).map(|k| (id, k)))
        .collect();
    for &id in order {
        let n = g.node(id);
        let (Op::Constant(_), Some(k)) = (&n.op, layer_index(&n.name)) else {
            continue;
        };
        let readers = g.consumers(Value { node: id, slot: 0 });
        if !readers.is_empty() && readers.iter().all(|(r, _)| member.get(r) == Some(&k)) {
            member.insert(id, k);
        }
    }
    member
}

/// One layer as text: the values it reads from outside (templated names)
/// and its body (constants and nodes, outside values as `$k`).
struct LayerText {
    reads: Vec<String>,
    body: Vec<String>,
}

fn layer_text(g: &Graph, order: &[NodeId], member: &HashMap<NodeId, usize>, n: usize) -> LayerText {
    let mut reads: Vec<Value> = Vec::new();
    let mut constants = Vec::new();
    let mut nodes = Vec::new();
    for &id in order.iter().filter(|id| member.get(id) == Some(&n)) {
        let node = g.node(id);
        let name = templated(&node.name, n);
        if let Op::Constant(t) = &node.op {
            constants.push(format!("    {name}: {}", constant_summary(t, WeightStyle::Shape)));
            continue;
        }
        let args: Vec<String> = g
            .inputs_of(id)
            .into_iter()
            .map(|v| match v {
                None => "_".to_string(),
                Some(v) if member.get(&v.node) == Some(&n) => templated(&value_name(g, v), n),
                Some(v) => {
                    let k = reads.iter().position(|r| *r == v).unwrap_or_else(|| {
                        reads.push(v);
                        reads.len() - 1
                    });
                    format!("${k}")
                }
            })
            .collect();
        let types: Vec<String> = node
            .outputs
            .iter()
            .map(|o| format!("{}{}", o.dtype, o.shape))
            .collect();
        nodes.push(format!(
            "    {name} = {}({}) -> {}",
            node.op,
            args.join(", "),
            types.join(", ")
        ));
    }
    let mut body = vec![format!("  constants: {}", constants.len())];
    body.extend(constants);
    body.push(format!("  nodes: {}", nodes.len()));
    body.extend(nodes);
    LayerText {
        reads: reads.iter().map(|&v| templated(&value_name(g, v), n)).collect(),
        body,
    }
}

/// `0-11` or `3`.
fn span(first: usize, last: usize) -> String {
    match first == last {
        true => first.to_string(),
        false => format!("{first}-{last}"),
    }
}

pub fn structure_summary(g: &Graph) -> String {
    let order = canonical_order(g);
    let member = layer_membership(g, &order);
    let mut out = String::new();

    writeln!(out, "inputs:").unwrap();
    for &id in g.inputs() {
        let n = g.node(id);
        writeln!(out, "  {}: {}{}", n.name, n.outputs[0].dtype, n.outputs[0].shape).unwrap();
    }
    writeln!(out, "outputs:").unwrap();
    for (name, v) in g.outputs() {
        let info = g.info(*v);
        writeln!(out, "  {name}: {}{}", info.dtype, info.shape).unwrap();
    }
    let constants = order
        .iter()
        .filter(|&&id| matches!(g.node(id).op, Op::Constant(_)))
        .count();
    writeln!(
        out,
        "parameters: {} in {constants} constants",
        g.parameter_count()
    )
    .unwrap();
    let ops: Vec<String> = g
        .op_histogram()
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "Input" | "Constant"))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let total = order.len() - constants - g.inputs().len();
    writeln!(out, "ops: {total} nodes: {}", ops.join(", ")).unwrap();

    // Everything outside the encoder layers, in canonical order.
    let outside: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|id| !member.contains_key(id) && !matches!(g.node(*id).op, Op::Input))
        .collect();
    writeln!(out, "outside the encoder layers:").unwrap();
    for &id in &outside {
        let n = g.node(id);
        match &n.op {
            Op::Constant(t) => writeln!(out, "  {}: {}", n.name, constant_summary(t, WeightStyle::Shape)),
            _ => writeln!(out, "  {}", super::dump::node_line(g, id)),
        }
        .unwrap();
    }

    // The layers, consecutive identical bodies collapsed.
    let layers = member.values().max().map_or(0, |m| m + 1);
    let texts: Vec<LayerText> = (0..layers).map(|n| layer_text(g, &order, &member, n)).collect();
    let mut start = 0;
    while start < layers {
        let end = (start..layers)
            .take_while(|&k| {
                texts[k].body == texts[start].body && texts[k].reads.len() == texts[start].reads.len()
            })
            .last()
            .unwrap();
        writeln!(
            out,
            "encoder layers {} ({} of {layers}, identical up to the layer index {{i}}):",
            span(start, end),
            end - start + 1
        )
        .unwrap();
        writeln!(out, "  reads:").unwrap();
        for k in 0..texts[start].reads.len() {
            // Each distinct name this input has, with the layers reading it.
            let mut names: Vec<(String, usize, usize)> = Vec::new();
            for (layer, text) in texts.iter().enumerate().take(end + 1).skip(start) {
                match names.last_mut() {
                    Some((name, _, last)) if *name == text.reads[k] => *last = layer,
                    _ => names.push((text.reads[k].clone(), layer, layer)),
                }
            }
            let listed: Vec<String> = match names.len() {
                1 => vec![names[0].0.clone()],
                _ => names
                    .iter()
                    .map(|(name, a, b)| format!("{name} (layers {})", span(*a, *b)))
                    .collect(),
            };
            writeln!(out, "    ${k} = {}", listed.join(", ")).unwrap();
        }
        for line in &texts[start].body {
            writeln!(out, "{line}").unwrap();
        }
        start = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_are_templated_relative_to_the_layer() {
        assert_eq!(layer_index("encoder.layer.11.output.dense"), Some(11));
        assert_eq!(layer_index("encoder.layers"), None);
        assert_eq!(templated("encoder.layer.3.output", 3), "encoder.layer.{i}.output");
        assert_eq!(
            templated("encoder.layer.2.output", 3),
            "encoder.layer.{i-1}.output"
        );
        assert_eq!(templated("encoder.layer.0.output", 3), "encoder.layer.0.output");
        assert_eq!(templated("embeddings.LayerNorm", 0), "embeddings.LayerNorm");
    }
}
