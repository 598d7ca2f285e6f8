//! The verifier: checks every invariant of [`Graph`] and names the first
//! node that breaks one. Run after every pass in tests and debug builds.

use petgraph::algo::toposort;

use super::graph::Graph;
use super::infer::infer;
use super::op::Op;
use super::IrError;

pub fn verify(g: &Graph) -> Result<(), IrError> {
    toposort(&g.g, None).map_err(|cycle| IrError::Cycle(g.node(cycle.node_id()).name.clone()))?;
    let mut names = std::collections::HashSet::new();
    for id in g.node_ids() {
        let node = g.node(id);
        let invalid = |reason: String| IrError::Invalid {
            node: node.name.clone(),
            reason,
        };
        if !names.insert(node.name.as_str()) {
            return Err(IrError::DuplicateName(node.name.clone()));
        }
        if g.find(&node.name) != Some(id) {
            return Err(invalid("the name index is stale".into()));
        }
        let inputs = g.inputs_of(id);
        for v in inputs.iter().flatten() {
            if v.slot >= g.node(v.node).outputs.len() {
                return Err(invalid(format!(
                    "reads output {} of `{}`, which has {}",
                    v.slot,
                    g.node(v.node).name,
                    g.node(v.node).outputs.len()
                )));
            }
        }
        if matches!(node.op, Op::Input) {
            if !g.inputs().contains(&id) || !inputs.is_empty() || node.outputs.len() != 1 {
                return Err(invalid(
                    "an Input node must be a declared graph input with no inputs".into(),
                ));
            }
            continue;
        }
        let outputs = node.op.schema().outputs;
        if node.outputs.len() != outputs {
            return Err(invalid(format!(
                "has {} outputs; {} has {outputs}",
                node.outputs.len(),
                node.op.kind()
            )));
        }
        // Inference checks the inputs against the op table's arity first.
        let infos: Vec<_> = inputs.iter().map(|v| v.map(|v| g.info(v))).collect();
        let expected = infer(&node.op, &infos).map_err(|reason| IrError::Infer {
            node: node.name.clone(),
            op: node.op.kind(),
            reason,
        })?;
        let strip =
            |v: &[super::graph::ValueInfo]| v.iter().map(|i| (i.dtype, i.shape.clone())).collect::<Vec<_>>();
        if strip(&expected) != strip(&node.outputs) {
            return Err(invalid(format!(
                "stored output types {:?} differ from inferred {:?}",
                strip(&node.outputs),
                strip(&expected)
            )));
        }
    }
    let mut out_names = std::collections::HashSet::new();
    for (name, v) in g.outputs() {
        if !out_names.insert(name) {
            return Err(IrError::DuplicateName(name.clone()));
        }
        if g.node_ids().all(|id| id != v.node) || v.slot >= g.node(v.node).outputs.len() {
            return Err(IrError::Invalid {
                node: name.clone(),
                reason: "graph output reads a missing value".into(),
            });
        }
    }
    Ok(())
}
