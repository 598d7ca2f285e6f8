//! `remove_identities`: every `Identity` node is bypassed (its readers and
//! graph outputs read its input), and so is every `Cast` to the type its
//! input already has (ONNX defines it as a copy; TorchScript exports write
//! them around softmax and rotary tables). The emitter adds back the one Identity a
//! graph output needs when it would otherwise share a name.

use crate::ir::{Graph, IrError, Op, Value};

use super::{Pass, PassReport};

pub struct RemoveIdentities;

impl Pass for RemoveIdentities {
    fn name(&self) -> &'static str {
        "remove_identities"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let ids: Vec<_> = g.node_ids().filter(|&id| is_identity(g, id)).collect();
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

/// An `Identity`, or a `Cast` to its input's own type.
fn is_identity(g: &Graph, id: crate::ir::NodeId) -> bool {
    match &g.node(id).op {
        Op::Identity => true,
        Op::Cast { to } => g
            .inputs_of(id)
            .first()
            .copied()
            .flatten()
            .is_some_and(|x| g.info(x).dtype == *to),
        _ => false,
    }
}
