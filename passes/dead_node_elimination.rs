//! `dead_node_elimination`: removes every node no graph output depends on.
//!
//! Always keeps graph inputs (callers feed them whether or not the model
//! reads them) and every node an output depends on; removes everything else,
//! including constants left behind by fusions. Fusions rely on this: they
//! point users at the fused node and leave the orphans here.

use std::collections::HashSet;

use crate::ir::{Graph, IrError, NodeId};

use super::{Pass, PassReport};

pub struct DeadNodeElimination;

impl Pass for DeadNodeElimination {
    fn name(&self) -> &'static str {
        "dead_node_elimination"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut live: HashSet<NodeId> = g.inputs().iter().copied().collect();
        let mut stack: Vec<NodeId> = g.outputs().iter().map(|(_, v)| v.node).collect();
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(g.inputs_of(id).into_iter().flatten().map(|v| v.node));
            }
        }
        let dead: Vec<NodeId> = g.node_ids().filter(|id| !live.contains(id)).collect();
        for &id in &dead {
            g.remove(id);
        }
        Ok(PassReport {
            matches: dead.len(),
            nodes_added: 0,
            nodes_removed: dead.len(),
        })
    }
}
