//! `merge_qkv`: linear layers that read the same input — attention's Q, K
//! and V projections — become one MatMul + Add over the weights
//! concatenated by column, followed by a Slice per original output:
//! `Add(MatMul(x, Wi), bi)` for i in 1..=n → `Slice(Add(MatMul(x, [W1|…|Wn]), [b1|…|bn]), oi)`.
//! One larger matrix product instead of n smaller ones that each re-read x.
//!
//! Measured in tract on BERT-base (B=1, S=128, 2 threads, AVX2, 20
//! interleaved runs): 388 → 383 ms with attention decomposed (`--target
//! tract`), 399 → 399 ms with the fused Attention — within the noise of
//! this machine, so it is not in any default pipeline; `--passes` runs it.
//!
//! Only groups of 2 or 3 linears with f32 constant 2-D weights and 1-D
//! biases of matching width are merged; each original Add must not be a
//! graph output.

use std::collections::BTreeMap;

use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, Tensor, Value};

use super::pattern::{concat_last_axis, constant, linear};
use super::{Pass, PassReport};

pub struct MergeQkv;

/// One linear layer: its output (the Add), weight and bias.
struct Layer {
    out: Value,
    w: Value,
    b: Value,
}

impl Pass for MergeQkv {
    fn name(&self) -> &'static str {
        "merge_qkv"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        // Group linear layers by their input value, in canonical order.
        let mut groups: BTreeMap<Value, Vec<Layer>> = BTreeMap::new();
        for id in crate::ir::canonical_order(g) {
            if let Some((x, l)) = linear_at(g, id) {
                groups.entry(x).or_default().push(l);
            }
        }
        let mut report = PassReport::default();
        for (x, layers) in groups.into_iter().filter(|(_, l)| (2..=3).contains(&l.len())) {
            let widths: Vec<usize> = layers.iter().map(|l| constant(g, l.b).unwrap().len()).collect();
            let w = concat_last_axis(g, &layers.iter().map(|l| l.w).collect::<Vec<_>>());
            let b = concat_last_axis(g, &layers.iter().map(|l| l.b).collect::<Vec<_>>());
            let base = g.node(layers[0].out.node).name.clone();
            let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.merged_{s}"));
            let (wn, bn, mn, an) = (
                name(g, "weight"),
                name(g, "bias"),
                name(g, "matmul"),
                name(g, "add"),
            );
            let (w, b) = (g.add_const(&wn, w)?, g.add_const(&bn, b)?);
            let mm = g.add(&mn, Op::MatMul, &[x, w])?;
            let sum = g.add(&an, Op::Binary(BinaryOp::Add), &[mm, b])?;
            let axis = g.info(sum).shape.rank() as i64 - 1;
            let mut start = 0i64;
            for (l, &width) in layers.iter().zip(&widths) {
                let n = g.node(l.out.node).name.clone();
                let bounds = [(start, "start"), (start + width as i64, "end"), (axis, "axis")];
                let mut args = vec![sum];
                for (v, what) in bounds {
                    let cn = g.fresh_name(&format!("{n}.slice_{what}"));
                    args.push(g.add_const(&cn, Tensor::vec_i64(&[v]))?);
                }
                let sn = g.fresh_name(&format!("{n}.slice"));
                let part = g.add(&sn, Op::Slice, &args)?;
                g.replace_uses(l.out, part);
                start += width as i64;
            }
            report.matches += 1;
            report.nodes_added += 4 + 4 * layers.len();
        }
        Ok(report)
    }
}

/// A linear layer at node `id` that may be merged: its MatMul read only by
/// its Add, its input computed (not a constant), its output no graph output.
fn linear_at(g: &Graph, id: NodeId) -> Option<(Value, Layer)> {
    let out = Value { node: id, slot: 0 };
    let l = linear(g, out)?;
    let ok = !g.is_output(out) && g.consumers(l.matmul).len() == 1 && constant(g, l.x).is_none();
    ok.then_some((l.x, Layer { out, w: l.w, b: l.b }))
}
