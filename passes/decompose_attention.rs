//! `decompose_attention` (every target but onnxruntime, at -O2): a standard
//! `Attention(q, k, v, mask)` on 3-D [B, S, heads·d] inputs → the primitive
//! form PyTorch's exporter writes, which every runtime bertc targets runs at
//! least as fast:
//! `Reshape(Transpose(MatMul(Softmax(Add(Mul(MatMul(Qh, Kh), scale), mask)), Vh), [0,2,1,3]), [0,0,H])`
//! with `Qh = Transpose(Reshape(q, [0,0,n,d]), [0,2,1,3])`, `Kh` permuted
//! `[0,2,3,1]`, `Vh` like `Qh`.
//!
//! Why a lowering and not "no fusion": `fuse_attention` recognizes every
//! layer's attention in the IR (what the report, `prune_to_first_token` and
//! `--target onnxruntime`'s packed lowering build on); only the emitted form
//! is chosen per runtime, by measurement (BERT-base, B=1, 2 threads,
//! interleaved, AMD EPYC Zen 5; `scripts/runtimes.py`, numbers in the README):
//! tract's fused kernel (FlashSDPA) ran the file 1.24× slower than -O0 at
//! S=512 and costs 19 ms against a few for the decomposed form at S=128;
//! onnxruntime (0.98-1.02×) and OpenVINO (0.91-0.99×) showed no gain from
//! Attention-23 over the decomposed form.
//!
//! Grouped queries (`kv_num_heads` < `q_num_heads`, EuroBERT): K and V are
//! split into their own heads and each repeated for its group of query
//! heads, `Gather(heads, [0, 0, 1, 1, …], axis 2)`, as the builder writes it.
//!
//! The mask: an `Expand` to [B, 1, Sq, Skv] that `fuse_attention` added is
//! skipped (the Add broadcasts its input), so no [B, 1, S, S] tensor is
//! materialised; any other float mask is added as it is.

use crate::ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, Tensor, Value};

use super::pattern::{input, producer};
use super::{Pass, PassReport};

pub struct DecomposeAttention;

/// An `Attention` node this pass (and `quantize_attention`) can write out.
pub(crate) struct Match {
    pub(crate) root: NodeId,
    pub(crate) q: Value,
    pub(crate) k: Value,
    pub(crate) v: Value,
    pub(crate) mask: Option<Value>,
    pub(crate) heads: usize,
    kv_heads: usize,
    pub(crate) head_size: usize,
    pub(crate) scale: f32,
}

impl Pass for DecomposeAttention {
    fn name(&self) -> &'static str {
        "decompose_attention"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        rewrite_each(g, &matches, decompose)
    }
}

/// Each match's Attention output replaced by what `rewrite` writes for
/// it (the orphaned Attention left to dead-node elimination).
pub(crate) fn rewrite_each(
    g: &mut Graph,
    matches: &[Match],
    rewrite: fn(&mut Graph, &Match) -> Result<Value, IrError>,
) -> Result<PassReport, IrError> {
    let before = g.node_count();
    for m in matches {
        let out = rewrite(g, m)?;
        g.replace_uses(
            Value {
                node: m.root,
                slot: 0,
            },
            out,
        );
    }
    Ok(PassReport {
        matches: matches.len(),
        nodes_added: g.node_count() - before,
        nodes_removed: 0,
    })
}

/// The primitive form of the Attention node `id`, when this pass can
/// write it out: what an imported onnxruntime `Attention` becomes, so the
/// graph before the passes runs in tract and `fuse_attention` finds it.
pub(crate) fn decompose_node(g: &mut Graph, id: NodeId) -> Result<Option<Value>, IrError> {
    match match_at(g, id) {
        Some(m) => decompose(g, &m).map(Some),
        None => Ok(None),
    }
}

/// An Attention this pass can write out exactly: 3-D q, k, v, K and V as
/// wide as Q or (grouped queries) `kv_num_heads` heads of Q's head size,
/// a float mask if any.
pub(crate) fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    let Op::Attention {
        q_num_heads,
        kv_num_heads,
        scale,
    } = g.node(root).op
    else {
        return None;
    };
    if q_num_heads == 0 || kv_num_heads == 0 || !q_num_heads.is_multiple_of(kv_num_heads) {
        return None;
    }
    let (q, k, v) = (input(g, root, 0)?, input(g, root, 1)?, input(g, root, 2)?);
    let hidden = g.info(q).shape.dims().get(2)?.fixed()? as usize;
    // f32 only: the scale is written as an f32 constant (the pass runs in
    // the fp32 pipeline, before any reduced precision).
    let ranks_ok = [q, k, v]
        .iter()
        .all(|&x| g.info(x).shape.rank() == 3 && g.info(x).dtype == DType::F32);
    if !ranks_ok || !hidden.is_multiple_of(q_num_heads) {
        return None;
    }
    let kv_hidden = hidden / q_num_heads * kv_num_heads;
    let kv_fit = [k, v]
        .iter()
        .all(|&x| g.info(x).shape.dims()[2].fixed() == Some(kv_hidden as _));
    if !kv_fit {
        return None;
    }
    let mask = input(g, root, 3);
    if let Some(m) = mask {
        if g.info(m).dtype != DType::F32 {
            return None;
        }
    }
    let head_size = hidden / q_num_heads;
    Some(Match {
        root,
        q,
        k,
        v,
        mask,
        heads: q_num_heads,
        kv_heads: kv_num_heads,
        head_size,
        scale: scale.unwrap_or(1.0 / (head_size as f32).sqrt()),
    })
}

/// The mask to add: an `Expand`'s input when the mask is only broadcast.
pub(crate) fn unexpanded(g: &Graph, mask: Value) -> Value {
    match producer(g, mask).op {
        Op::Expand => input(g, mask.node, 0)
            .filter(|&x| g.info(x).shape.rank() == 4 && g.info(x).dtype == g.info(mask).dtype)
            .unwrap_or(mask),
        _ => mask,
    }
}

fn decompose(g: &mut Graph, m: &Match) -> Result<Value, IrError> {
    let Heads { q, k_t, v } = split_heads(g, m)?;
    let scores = g.add(&attention_name(g, m, "scores"), Op::MatMul, &[q, k_t])?;
    let cn = attention_name(g, m, "scale");
    let c = g.add_const(&cn, Tensor::scalar_f32(m.scale))?;
    let mut x = g.add(
        &attention_name(g, m, "scaled"),
        Op::Binary(BinaryOp::Mul),
        &[scores, c],
    )?;
    if let Some(mask) = m.mask {
        let mask = unexpanded(g, mask);
        x = g.add(
            &attention_name(g, m, "masked"),
            Op::Binary(BinaryOp::Add),
            &[x, mask],
        )?;
    }
    let probs = g.add(&attention_name(g, m, "softmax"), Op::Softmax { axis: -1 }, &[x])?;
    let ctx = g.add(&attention_name(g, m, "context"), Op::MatMul, &[probs, v])?;
    merge_heads(g, m, ctx)
}

/// A fresh name for a node of the attention `m` writes out.
pub(crate) fn attention_name(g: &Graph, m: &Match, what: &str) -> String {
    g.fresh_name(&format!("{}.{what}", g.node(m.root).name))
}

/// Q, K and V split into heads: Q and V [B, n, S, d], K transposed to
/// [B, n, d, S] (grouped K and V repeated for their query heads).
pub(crate) struct Heads {
    pub(crate) q: Value,
    pub(crate) k_t: Value,
    pub(crate) v: Value,
}

pub(crate) fn split_heads(g: &mut Graph, m: &Match) -> Result<Heads, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    let (n, d) = (m.heads as i64, m.head_size as i64);
    let sn = name(g, "split_heads_shape");
    let split_shape = g.add_const(&sn, Tensor::vec_i64(&[0, 0, n, d]))?;
    // Grouped queries: K and V split into their own heads, then repeated.
    let kv_split = match m.kv_heads == m.heads {
        true => None,
        false => {
            let kn = name(g, "split_kv_heads_shape");
            let shape = g.add_const(&kn, Tensor::vec_i64(&[0, 0, m.kv_heads as i64, d]))?;
            let idx = crate::builder::repeated_kv_heads(m.heads, m.kv_heads);
            let iname = name(g, "kv_head_index");
            Some((shape, g.add_const(&iname, Tensor::vec_i64(&idx))?))
        }
    };
    let heads = |g: &mut Graph, x: Value, what: &str, perm: Vec<usize>| -> Result<Value, IrError> {
        let rn = name(g, &format!("{what}.split_heads"));
        let split = match (what, kv_split) {
            ("key" | "value", Some((shape, index))) => {
                let split = g.add(&rn, Op::Reshape, &[x, shape])?;
                let pn = name(g, &format!("{what}.repeat_kv"));
                g.add(&pn, Op::Gather { axis: 2 }, &[split, index])?
            }
            _ => g.add(&rn, Op::Reshape, &[x, split_shape])?,
        };
        let tn = name(g, &format!("{what}.transpose"));
        g.add(&tn, Op::Transpose { perm }, &[split])
    };
    Ok(Heads {
        q: heads(g, m.q, "query", vec![0, 2, 1, 3])?,
        k_t: heads(g, m.k, "key", vec![0, 2, 3, 1])?,
        v: heads(g, m.v, "value", vec![0, 2, 1, 3])?,
    })
}

/// The context [B, n, S, d] back to [B, S, n·d]: the Attention's output.
pub(crate) fn merge_heads(g: &mut Graph, m: &Match, ctx: Value) -> Result<Value, IrError> {
    let (n, d) = (m.heads as i64, m.head_size as i64);
    let merged = g.add(
        &attention_name(g, m, "context.transpose"),
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[ctx],
    )?;
    let mn = attention_name(g, m, "merge_heads_shape");
    let merge_shape = g.add_const(&mn, Tensor::vec_i64(&[0, 0, n * d]))?;
    g.add(
        &attention_name(g, m, "context.merge_heads"),
        Op::Reshape,
        &[merged, merge_shape],
    )
}
