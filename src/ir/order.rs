//! The canonical node order used by dumps and the emitter.
//!
//! It depends only on the graph's structure and names, never on petgraph
//! indices, so a graph rebuilt in another order (or rewritten by passes)
//! prints and serializes the same way: graph inputs first, then a
//! depth-first post-order from the outputs that visits a node's inputs in
//! slot order. Nodes no output depends on follow, by name.

use std::collections::HashSet;

use super::graph::{Graph, NodeId};

pub fn canonical_order(g: &Graph) -> Vec<NodeId> {
    let mut order = Vec::with_capacity(g.node_count());
    let mut seen: HashSet<NodeId> = HashSet::new();
    for &id in g.inputs() {
        if seen.insert(id) {
            order.push(id);
        }
    }
    let roots: Vec<NodeId> = g.outputs().iter().map(|(_, v)| v.node).collect();
    visit_all(g, &roots, &mut seen, &mut order);
    let mut rest: Vec<NodeId> = g.node_ids().filter(|id| !seen.contains(id)).collect();
    rest.sort_by(|a, b| g.node(*a).name.cmp(&g.node(*b).name));
    visit_all(g, &rest, &mut seen, &mut order);
    order
}

/// Iterative post-order DFS (deep BERT graphs would overflow a recursive one).
fn visit_all(g: &Graph, roots: &[NodeId], seen: &mut HashSet<NodeId>, order: &mut Vec<NodeId>) {
    for &root in roots {
        if seen.contains(&root) {
            continue;
        }
        let mut stack: Vec<(NodeId, bool)> = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                if seen.insert(id) {
                    order.push(id);
                }
                continue;
            }
            if seen.contains(&id) {
                continue;
            }
            stack.push((id, true));
            // Push in reverse so that slot 0 is visited first.
            for v in g.inputs_of(id).into_iter().flatten().rev() {
                if !seen.contains(&v.node) {
                    stack.push((v.node, false));
                }
            }
        }
    }
}
