//! ONNX `If` whose condition is decided at compile time, inlined as the
//! branch it takes.
//!
//! PyTorch's exports of DeBERTa hold one `If` per layer on whether the
//! query and key lengths differ. Both lengths are dims of one sequence, so
//! shape inference knows the condition (`Equal` of two equal symbolic dims)
//! and the If always takes the same branch. The IR has no control flow:
//! such an If is replaced by the nodes of its taken branch, which then go
//! through import like any other node (every op checked against the op
//! table, every shape inferred) — a subgraph is never run or trusted as
//! is. A condition known only at run time is refused, naming the node.
//!
//! The branch's own values are renamed under the If's name (a branch may
//! reuse a name the outer graph has); names it does not define are the
//! outer scope's, as ONNX's scoping rules say.

use std::collections::{HashMap, HashSet};

use super::proto;

/// How deep Ifs may nest inside taken branches: exporters write one level.
pub(super) const MAX_DEPTH: usize = 8;
/// How many nodes the taken branches of one file may hold in all: a bound
/// on what a hostile file can make the importer expand.
pub(super) const MAX_INLINED_NODES: usize = 100_000;

/// The taken branch of an If, ready to import in the enclosing scope.
pub(super) struct Inlined {
    /// The branch's initializers (as Constant nodes) and nodes, renamed.
    pub nodes: Vec<proto::NodeProto>,
    /// The renamed values the If's outputs are, in order.
    pub outputs: Vec<String>,
}

/// The branch `n` (an If) takes when its condition is `condition`
/// (`None`: not known at compile time, refused), with its values renamed
/// under `prefix`.
pub(super) fn taken_branch(
    n: &proto::NodeProto,
    condition: Option<bool>,
    prefix: &str,
) -> Result<Inlined, String> {
    let Some(condition) = condition else {
        return Err(
            "its condition is known only at run time (it depends on input values, or on dims the \
             shapes do not fix); bertc inlines an If only when the condition is decided at compile \
             time (constant, or fixed by the input shapes)"
                .into(),
        );
    };
    let which = if condition { "then_branch" } else { "else_branch" };
    let branch = n
        .attribute
        .iter()
        .find(|a| a.name == which)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| format!("the If has no `{which}` graph"))?;
    if n.output.len() != branch.output.len() {
        return Err(format!(
            "the If has {} outputs but its {which} gives {}",
            n.output.len(),
            branch.output.len()
        ));
    }
    if !branch.input.is_empty() {
        return Err(format!("its {which} declares inputs; an If's branches take none"));
    }
    let mut renames: HashMap<String, String> = HashMap::new();
    let local = |name: &str| format!("{prefix}/{name}");
    let mut nodes = Vec::with_capacity(branch.initializer.len() + branch.node.len());
    for t in &branch.initializer {
        renames.insert(t.name.clone(), local(&t.name));
        nodes.push(constant_node(t, &local(&t.name)));
    }
    for (i, node) in branch.node.iter().enumerate() {
        let mut node = node.clone();
        rename_inputs(&mut node, &renames);
        for out in node.output.iter_mut().filter(|o| !o.is_empty()) {
            renames.insert(out.clone(), local(out));
            *out = local(out);
        }
        node.name = match node.name.is_empty() {
            true => local(&format!("{}_{i}", node.op_type)),
            false => local(&node.name),
        };
        nodes.push(node);
    }
    let outputs = branch
        .output
        .iter()
        .map(|o| renames.get(&o.name).cloned().unwrap_or_else(|| o.name.clone()))
        .collect();
    Ok(Inlined { nodes, outputs })
}

/// The condition as shape inference knows it: one fixed bool element.
pub(super) fn decided(info: &crate::ir::ValueInfo) -> Option<bool> {
    if info.dtype != crate::ir::DType::Bool || info.shape.as_fixed()?.iter().product::<usize>() != 1 {
        return None;
    }
    match info.known.as_deref()? {
        [crate::ir::Dim::Fixed(v)] => Some(*v != 0),
        _ => None,
    }
}

/// A branch initializer as the Constant node that produces it.
fn constant_node(t: &proto::TensorProto, name: &str) -> proto::NodeProto {
    proto::NodeProto {
        output: vec![name.to_string()],
        name: name.to_string(),
        op_type: "Constant".into(),
        attribute: vec![proto::AttributeProto {
            name: "value".into(),
            r#type: proto::attribute_type::TENSOR,
            t: Some(t.clone()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Points `node`'s inputs, and those of the graphs nested in its
/// attributes that reach out of them, at the renamed branch values.
fn rename_inputs(node: &mut proto::NodeProto, renames: &HashMap<String, String>) {
    for input in node.input.iter_mut() {
        if let Some(to) = renames.get(input.as_str()) {
            *input = to.clone();
        }
    }
    for g in node.attribute.iter_mut().filter_map(|a| a.g.as_mut()) {
        // A nested graph's own values shadow the branch's.
        let own: HashSet<String> = g
            .node
            .iter()
            .flat_map(|n| n.output.iter().cloned())
            .chain(g.initializer.iter().map(|t| t.name.clone()))
            .chain(g.input.iter().map(|i| i.name.clone()))
            .collect();
        let outer: HashMap<String, String> = renames
            .iter()
            .filter(|(k, _)| !own.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for inner in g.node.iter_mut() {
            rename_inputs(inner, &outer);
        }
        for out in g.output.iter_mut() {
            if let Some(to) = outer.get(&out.name) {
                out.name = to.clone();
            }
        }
    }
}
