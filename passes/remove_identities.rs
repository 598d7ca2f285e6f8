//! `remove_identities`: every `Identity` node is bypassed (its readers and
//! graph outputs read its input). The emitter adds back the one Identity a
//! graph output needs when it would otherwise share a name.

use crate::ir::{Graph, IrError, Op, Value};

use super::{Pass, PassReport};

pub struct RemoveIdentities;

impl Pass for RemoveIdentities {
    fn name(&self) -> &'static str {
        "remove_identities"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let ids: Vec<_> = g.node_ids().filter(|&id| g.node(id).op == Op::Identity).collect();
        for &id in &ids {
            if let Some(src) = g.inputs_of(id).first().copied().flatten() {
                g.replace_uses(Value { node: id, slot: 0 }, src);
            }
        }
        Ok(PassReport {
            matches: ids.len(),
            nodes_added: 0,
            nodes_removed: 0,
        })
    }
}
