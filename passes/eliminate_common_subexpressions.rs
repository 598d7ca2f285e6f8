//! `eliminate_common_subexpressions`: nodes computing the same op on the
//! same inputs are merged into the first one in canonical order; small
//! structural constants (≤ 16 elements: epsilons, axes, shape vectors) with
//! equal contents are merged too. Parameters are never merged, even when
//! equal (the zero biases of a random init): each keeps its own name.
//! Graph inputs are never merged.

use std::collections::HashMap;

use crate::ir::{canonical_order, Graph, IrError, Op, Value};

use super::{Pass, PassReport};

pub struct EliminateCommonSubexpressions;

const SMALL_CONSTANT: usize = 16;

impl Pass for EliminateCommonSubexpressions {
    fn name(&self) -> &'static str {
        "eliminate_common_subexpressions"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut seen: HashMap<String, crate::ir::NodeId> = HashMap::new();
        let mut merged = 0;
        for id in canonical_order(g) {
            let node = g.node(id);
            let key = match &node.op {
                Op::Input => continue,
                Op::Constant(t) if t.len() > SMALL_CONSTANT => continue,
                // A parameter of a narrow model (ALBERT's 16-wide embedding
                // layer norms) is small too, and still a parameter.
                Op::Constant(t) if crate::ir::parameter_elements(t).is_some() => continue,
                Op::Constant(t) => format!("const {:?} {:?} {:?}", t.dtype(), t.dims(), t.raw()),
                op => {
                    let inputs: Vec<_> = g
                        .inputs_of(id)
                        .into_iter()
                        .map(|v| v.map(|v| (v.node.index(), v.slot)))
                        .collect();
                    format!("{op:?} {inputs:?}")
                }
            };
            match seen.get(&key) {
                Some(&first) if g.node(first).outputs == g.node(id).outputs => {
                    for slot in 0..g.node(id).outputs.len() {
                        g.replace_uses(Value { node: id, slot }, Value { node: first, slot });
                    }
                    merged += 1;
                }
                _ => {
                    seen.insert(key, id);
                }
            }
        }
        Ok(PassReport {
            matches: merged,
            nodes_added: 0,
            nodes_removed: 0,
        })
    }
}
