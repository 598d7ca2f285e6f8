//! `lower_attention_onnxruntime` (target onnxruntime): a standard
//! `Attention(q, k, v, mask)` whose q, k and v are linear layers of the same
//! input → com.microsoft `Attention(x, [Wq|Wk|Wv], [bq|bk|bv], mask)` with
//! packed weights, as onnxruntime's own optimizer emits it.
//!
//! The mask is given as the 2-D raw int32 `attention_mask`, not the 1-D
//! "mask index" onnxruntime's optimizer derives, which assumes right padding
//! and is wrong for left-padded batches. So the additive mask must be
//! provably built from the `attention_mask` input alone, in one of the
//! forms `attention_mask::raw_padding_mask` knows (bertc's, RoBERTa's and
//! DistilBERT's exports').

use std::collections::HashMap;

use crate::ir::{ContribOp, DType, Graph, IrError, NodeId, Op, Value};

use super::attention_mask::raw_padding_mask;
use super::pattern::{concat_last_axis, fused_name, input, linear, producer};
use super::{Pass, PassReport};

pub struct LowerAttentionOnnxruntime;

struct Match {
    root: NodeId,
    x: Value,
    weights: [Value; 3],
    biases: [Value; 3],
    mask_input: Value,
    heads: usize,
}

impl Pass for LowerAttentionOnnxruntime {
    fn name(&self) -> &'static str {
        "lower_attention_onnxruntime"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        let mut masks: HashMap<Value, Value> = HashMap::new();
        let mut packed: HashMap<([Value; 3], [Value; 3]), (Value, Value)> = HashMap::new();
        let before = g.node_count();
        for m in &matches {
            let base = g.node(m.root).name.clone();
            let mask = match masks.get(&m.mask_input) {
                Some(&v) => v,
                None => {
                    let n = g.fresh_name(&format!("{}.i32", g.node(m.mask_input.node).name));
                    let v = g.add(&n, Op::Cast { to: DType::I32 }, &[m.mask_input])?;
                    masks.insert(m.mask_input, v);
                    v
                }
            };
            // Layers that share their projections (ALBERT's) share one
            // packed copy: packed per layer, ALBERT-base's file was 2.7×
            // its portable form.
            let (w, b) = match packed.get(&(m.weights, m.biases)) {
                Some(&done) => done,
                None => {
                    let (wn, bn) = (
                        g.fresh_name(&format!("{base}.qkv.weight")),
                        g.fresh_name(&format!("{base}.qkv.bias")),
                    );
                    let w = g.add_const(&wn, concat_last_axis(g, &m.weights))?;
                    let b = g.add_const(&bn, concat_last_axis(g, &m.biases))?;
                    packed.insert((m.weights, m.biases), (w, b));
                    (w, b)
                }
            };
            let name = fused_name(g, m.root, &[m.root], "ms_attention");
            let op = Op::Contrib(ContribOp::Attention {
                num_heads: m.heads,
                scale: None,
                mask_filter_value: None,
            });
            let fused = g.add(&g.fresh_name(&format!("{name}.packed")), op, &[m.x, w, b, mask])?;
            g.replace_uses(
                Value {
                    node: m.root,
                    slot: 0,
                },
                fused,
            );
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: g.node_count() - before,
            nodes_removed: 0,
        })
    }
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    let Op::Attention {
        q_num_heads,
        kv_num_heads,
        scale: None,
    } = producer(g, Value { node: root, slot: 0 }).op
    else {
        return None;
    };
    if q_num_heads != kv_num_heads {
        return None;
    }
    let [q, k, v, mask] = [0, 1, 2, 3].map(|i| input(g, root, i));
    let [q, k, v] = [q?, k?, v?].map(|x| linear(g, x));
    let (q, k, v) = (q?, k?, v?);
    if q.x != k.x || q.x != v.x || g.info(q.x).shape.rank() != 3 {
        return None;
    }
    Some(Match {
        root,
        x: q.x,
        weights: [q.w, k.w, v.w],
        biases: [q.b, k.b, v.b],
        mask_input: raw_padding_mask(g, mask?)?,
        heads: q_num_heads,
    })
}
