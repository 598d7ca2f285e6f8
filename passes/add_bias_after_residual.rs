//! `add_bias_after_residual` (target onnxruntime): the residual sum before
//! a layer norm, `LayerNormalization(Add(Add(y, bias), skip))`, becomes
//! `LayerNormalization(Add(Add(y, skip), bias))` — the same sum, with the
//! linear layer's 1-D constant bias added last.
//!
//! Why. onnxruntime's optimizer (level ≥ extended) fuses an `Add` of two
//! 3-D values of one shape feeding a `LayerNormalization`, and a bias
//! `Add` before it, into its com.microsoft `SkipLayerNormalization`. Its
//! CPU kernel (1.32, `contrib_ops/cpu/skip_layer_norm.cc`) is a scalar loop
//! with a division per element: on BERT-base's [1, 128, 768] it takes
//! 440 µs on 2 threads (500 µs on 1), where `LayerNormalization` takes
//! 31 µs and each `Add` about 25 µs — 24 of them were 6.4 ms of a 45 ms
//! int8 run. With the bias last, the Add the layer norm reads has a 1-D
//! operand, which that fusion does not match (its first Add must have two
//! 3-D operands), so the layer norm stays onnxruntime's vectorized one.
//! In the int8 form the bias then no longer rides in MatMulIntegerToFloat
//! (that fusion takes only an Add right after the dequantizing Mul): one
//! Add of ~25 µs, for ~180 µs saved.
//!
//! Conditions: the layer norm normalizes the last axis; its input is an
//! Add of two 3-D run-time values of one shape, read only by it; one of
//! them is `Add(y, bias)` with a 1-D f32 constant as wide as the last dim,
//! read only by the sum, and y computed at run time.

use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, Value};

use super::pattern::{bias_add, only_read_by, residual_layer_norm, ResidualLayerNorm};
use super::{Pass, PassReport};

pub struct AddBiasAfterResidual;

struct Match {
    sum: Value,
    y: Value,
    bias: Value,
    skip: Value,
}

impl Pass for AddBiasAfterResidual {
    fn name(&self) -> &'static str {
        "add_bias_after_residual"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        for m in &matches {
            let base = g.node(m.sum.node).name.clone();
            let n = g.fresh_name(&format!("{base}.residual"));
            let residual = g.add(&n, Op::Binary(BinaryOp::Add), &[m.y, m.skip])?;
            let n = g.fresh_name(&format!("{base}.bias"));
            let biased = g.add(&n, Op::Binary(BinaryOp::Add), &[residual, m.bias])?;
            g.replace_uses(m.sum, biased);
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: 2 * matches.len(),
            nodes_removed: 0,
        })
    }
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    let ResidualLayerNorm { sum, a, b, .. } = residual_layer_norm(g, root)?;
    [(a, b), (b, a)].into_iter().find_map(|(x, skip)| {
        let (y, bias) = bias_add(g, x).filter(|_| only_read_by(g, x, &[sum.node]))?;
        // y + skip must keep the sum's shape: y as wide and as long as x.
        (g.info(y).shape == g.info(a).shape).then_some(Match { sum, y, bias, skip })
    })
}
