//! Attention with its heads folded into the batch, as PyTorch's exports of
//! DeBERTa write it, restated in the [B, n, S, ·] form `fuse_attention`
//! reads.
//!
//! transformers' `DisentangledSelfAttention` reshapes Q, K and V heads
//! ([B, n, S, d]) to [B·n, S, d] and computes
//!
//! ```text
//! scores = Reshape(MatMul(Qf, Kfᵀ / s) + R, [B, n, S, S])     R = c2p / s + p2c / s
//! ctx    = Reshape(MatMul(Reshape(softmax(masked scores), [B·n, S, S]), Vf), [B, n, S, d])
//! ```
//!
//! with `Xf = Reshape(X heads, [B·n, S, d])` and `Kfᵀ = Transpose(Kf, [0, 2, 1])`.
//! A Reshape between [B, n, …] and [B·n, …] keeps the trailing dims, so it
//! moves no element, and a batched MatMul is the same product in either
//! layout: the scores are
//! `MatMul(Qh, Transpose(split(k), [0, 2, 3, 1]) / s) + Reshape(R, [B, n, S, S])`
//! and the context `MatMul(probabilities, Vh)`, exactly (the same products,
//! summed in the same order). The relative
//! terms R stay as the export computes them (they read the folded Q and
//! K); `fuse_attention` takes R, added after the scaling, into the mask.
//! Q's and K's head splits are made afresh for the product, so the ones R
//! reads keep their other readers; the folded forms left dead are removed.

use crate::ir::{BinaryOp, Factors, Graph, IrError, NodeId, Op, Value};

use super::attention_heads::split_heads;
use super::pattern::{input, operands, producer, SharedInts};
use super::scalar_value::scalar_value;
use super::Pass;

/// `Reshape(h, …)` from [B, n, S, X] to [B·n, S, X]: h.
fn folded(g: &Graph, v: Value) -> Option<Value> {
    if producer(g, v).op != Op::Reshape {
        return None;
    }
    let h = input(g, v.node, 0)?;
    folds(g, h, v).then_some(h)
}

/// `Reshape(f, …)` from [B·n, S, X] to [B, n, S, X]: f.
fn unfolded(g: &Graph, v: Value) -> Option<Value> {
    if producer(g, v).op != Op::Reshape {
        return None;
    }
    let f = input(g, v.node, 0)?;
    folds(g, v, f).then_some(f)
}

/// Whether `f` ([B·n, S, X]) is `h` ([B, n, S, X]) with its two leading
/// axes merged.
fn folds(g: &Graph, h: Value, f: Value) -> bool {
    let (hd, fd) = (g.info(h).shape.dims(), g.info(f).shape.dims());
    if hd.len() != 4 || fd.len() != 3 || hd[2..] != fd[1..] {
        return false;
    }
    matches!((Factors::of(&hd[..2]), Factors::of(&fd[..1])), (Some(a), Some(b)) if a == b)
}

/// The folded scores: `Reshape(Add(MatMul(Qf, Kfᵀ scaled), R), target)`.
struct Scores {
    reshape: NodeId,
    /// Q, K before their head splits ([B, S, n·d]), n and d.
    q: Value,
    k: Value,
    heads: i64,
    head_size: i64,
    /// The scaling of Kfᵀ: Div or Mul, by a one-element value.
    scale: Option<(BinaryOp, Value)>,
    bias: Value,
    target: Value,
}

/// The folded context: `Reshape(MatMul(Reshape(p), Vf), …)`.
struct Context {
    reshape: NodeId,
    probabilities: Value,
    vh: Value,
}

/// Restates every folded attention in `g`; returns how many scores and
/// contexts were restated.
pub(super) fn restate(g: &mut Graph) -> Result<usize, IrError> {
    let scores: Vec<Scores> = g.node_ids().filter_map(|id| scores_at(g, id)).collect();
    let contexts: Vec<Context> = g.node_ids().filter_map(|id| context_at(g, id)).collect();
    let mut ints = SharedInts::default();
    for m in &scores {
        let base = g.node(m.reshape).name.clone();
        let fresh = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
        let split = ints.get(
            g,
            &format!("{base}.split_heads_shape"),
            &[0, 0, m.heads, m.head_size],
        )?;
        let q_split = g.add(&fresh(g, "q_split"), Op::Reshape, &[m.q, split])?;
        let q_perm = Op::Transpose {
            perm: vec![0, 2, 1, 3],
        };
        let qh = g.add(&fresh(g, "q_heads"), q_perm, &[q_split])?;
        let k_split = g.add(&fresh(g, "k_split"), Op::Reshape, &[m.k, split])?;
        let k_perm = Op::Transpose {
            perm: vec![0, 2, 3, 1],
        };
        let mut kt = g.add(&fresh(g, "k_transposed"), k_perm, &[k_split])?;
        if let Some((op, s)) = m.scale {
            kt = g.add(&fresh(g, "k_scaled"), Op::Binary(op), &[kt, s])?;
        }
        let product = g.add(&fresh(g, "product"), Op::MatMul, &[qh, kt])?;
        let bias = g.add(&fresh(g, "bias"), Op::Reshape, &[m.bias, m.target])?;
        let sum = g.add(&fresh(g, "scores"), Op::Binary(BinaryOp::Add), &[product, bias])?;
        let old = Value {
            node: m.reshape,
            slot: 0,
        };
        if g.info(sum).shape == g.info(old).shape {
            g.replace_uses(old, sum);
        }
    }
    for m in &contexts {
        let base = g.node(m.reshape).name.clone();
        let name = g.fresh_name(&format!("{base}.unfolded"));
        let ctx = g.add(&name, Op::MatMul, &[m.probabilities, m.vh])?;
        let old = Value {
            node: m.reshape,
            slot: 0,
        };
        if g.info(ctx).shape == g.info(old).shape {
            g.replace_uses(old, ctx);
        }
    }
    let restated = scores.len() + contexts.len();
    // The folded forms left dead still read the probabilities and V's
    // heads, which the fused pattern must be the only reader of.
    if restated > 0 {
        super::DeadNodeElimination.run(g)?;
    }
    Ok(restated)
}

fn scores_at(g: &Graph, reshape: NodeId) -> Option<Scores> {
    let out = Value {
        node: reshape,
        slot: 0,
    };
    let sum = unfolded(g, out)?;
    if producer(g, sum).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (a, b) = operands(g, sum.node)?;
    let (product, bias) = match producer(g, a).op {
        Op::MatMul => (a, b),
        _ => (b, a),
    };
    if producer(g, product).op != Op::MatMul || g.info(bias).shape != g.info(sum).shape {
        return None;
    }
    let (qf, kt) = operands(g, product.node)?;
    let q = split_heads(g, folded(g, qf)?, &[0, 2, 1, 3])?;
    let (scale, kt) = match producer(g, kt).op {
        Op::Binary(op @ (BinaryOp::Div | BinaryOp::Mul)) => {
            let (x, s) = operands(g, kt.node)?;
            scalar_value(g, s)?;
            (Some((op, s)), x)
        }
        _ => (None, kt),
    };
    if producer(g, kt).op != (Op::Transpose { perm: vec![0, 2, 1] }) {
        return None;
    }
    let k = split_heads(g, folded(g, input(g, kt.node, 0)?)?, &[0, 2, 1, 3])?;
    let plain = q.rotated.is_none() && q.repeated.is_none() && k.rotated.is_none() && k.repeated.is_none();
    let dims = g.info(q.split).shape.dims();
    let (heads, head_size) = (dims[2].fixed()?, dims[3].fixed()?);
    // The scores split [B·n] back into Q's and K's own (B, n), not merely
    // a pair of the same product.
    let lead = |v: Value| g.info(v).shape.dims()[..2].to_vec();
    let (qh, kh) = (folded(g, qf)?, folded(g, input(g, kt.node, 0)?)?);
    let same_split = lead(out) == lead(qh) && lead(out) == lead(kh);
    (plain && same_split && g.info(k.split).shape.dims()[2..] == dims[2..]).then_some(Scores {
        reshape,
        q: q.x,
        k: k.x,
        heads,
        head_size,
        scale,
        bias,
        target: input(g, reshape, 1)?,
    })
}

fn context_at(g: &Graph, reshape: NodeId) -> Option<Context> {
    let out = Value {
        node: reshape,
        slot: 0,
    };
    let product = unfolded(g, out)?;
    if producer(g, product).op != Op::MatMul {
        return None;
    }
    let (pf, vf) = operands(g, product.node)?;
    let (probabilities, vh) = (folded(g, pf)?, folded(g, vf)?);
    split_heads(g, vh, &[0, 2, 1, 3])?;
    // Unfolded into the (B, n) both operands were folded from.
    let lead = |v: Value| g.info(v).shape.dims()[..2].to_vec();
    let same_split = lead(out) == lead(probabilities) && lead(out) == lead(vh);
    same_split.then_some(Context {
        reshape,
        probabilities,
        vh,
    })
}
