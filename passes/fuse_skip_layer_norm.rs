//! `fuse_skip_layer_norm` (target onnxruntime): `LayerNormalization(Add(a, b))`
//! over the residual → com.microsoft `SkipLayerNormalization(a, b, γ, β)`,
//! absorbing the bias of a linear layer when `a = Add(MatMul(…), bias)`:
//! `SkipLayerNormalization(MatMul(…), b, γ, β, bias)` — or of any
//! `a = Add(y, bias)` with a constant 1-D bias, such as the int8 form's
//! bias after its dequantization. Both operands must be
//! 3-D values of the same shape, and the Adds read only by the pattern.

use std::collections::HashMap;

use crate::ir::{ContribOp, Graph, IrError, NodeId, Op, Value};

use super::pattern::{bias_add, fused_name, input, only_read_by, residual_layer_norm, ResidualLayerNorm};
use super::{Pass, PassReport};

pub struct FuseSkipLayerNorm;

struct Match {
    root: NodeId,
    nodes: Vec<NodeId>,
    inputs: Vec<Value>,
    epsilon: f32,
}

impl Pass for FuseSkipLayerNorm {
    fn name(&self) -> &'static str {
        "fuse_skip_layer_norm"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        // A match's skip is often an earlier match's layer norm (the residual
        // stream): read the fused node instead, or the replaced layer norm
        // would stay alive beside it.
        let mut replaced: HashMap<Value, Value> = HashMap::new();
        for m in &matches {
            let name = fused_name(g, m.root, &m.nodes, "SkipLayerNormalization");
            let op = Op::Contrib(ContribOp::SkipLayerNorm { epsilon: m.epsilon });
            let inputs: Vec<Value> = m.inputs.iter().map(|v| *replaced.get(v).unwrap_or(v)).collect();
            let fused = g.add(&name, op, &inputs)?;
            let root = Value {
                node: m.root,
                slot: 0,
            };
            g.replace_uses(root, fused);
            replaced.insert(root, fused);
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: matches.len(),
            nodes_removed: 0,
        })
    }
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    let ResidualLayerNorm { sum, a, b, epsilon } = residual_layer_norm(g, root)?;
    let (gamma, beta) = (input(g, root, 1)?, input(g, root, 2)?);
    // Absorb a bias from either side: a linear layer's, or the one an int8
    // product adds after its dequantization.
    for (x, skip) in [(a, b), (b, a)] {
        if let Some((mm, bias)) = bias_add(g, x).filter(|_| only_read_by(g, x, &[sum.node])) {
            return Some(Match {
                root,
                nodes: vec![x.node, sum.node, root],
                inputs: vec![mm, skip, gamma, beta, bias],
                epsilon,
            });
        }
    }
    Some(Match {
        root,
        nodes: vec![sum.node, root],
        inputs: vec![a, b, gamma, beta],
        epsilon,
    })
}
