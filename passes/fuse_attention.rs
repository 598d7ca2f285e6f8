//! `fuse_attention`: multi-head self-attention written as MatMul/Softmax →
//! the standard `Attention` op (opset 23) on 3-D Q, K, V.
//!
//! Matches `Reshape(Transpose(MatMul(Softmax(Add(Div(MatMul(Qh, Kh), c), M)), Vh), [0,2,1,3]), [B,S,H])`
//! where `Qh = Transpose(Reshape(q, [B,S,n,d]), [0,2,1,3])`,
//! `Kh = Transpose(Reshape(k, [B,S,n,d]), [0,2,3,1])`, `Vh` like `Qh`, `c` a
//! scalar (or `Mul` by 1/c), `M` an additive float mask, and every
//! intermediate read only inside the pattern.
//!
//! Relative position models add a score bias before the scaling:
//! `Div(Add(MatMul(Qh, Kh), R), c)`. Attention has no such input, but
//! `(QKᵀ + R)·s + M = QKᵀ·s + (R·s + M)`, so `R·s + M` becomes its mask
//! ([B, heads, S, S], already per query). The bias reads Q and K split
//! into heads, so those reshapes may have readers outside the pattern.
//! DeBERTa's exports scale each term and add R after the scaling,
//! `Add(MatMul(Qh, Kh)·s, R)`: the mask is then `R + M`.
//!
//! The scaling is matched by what it computes, not where an exporter puts
//! it: any Mul/Div by a one-element value after the product and on either
//! side before it (`scalar_value` proves each factor, constant or computed
//! from a fixed head size), multiplied into one factor, which becomes the
//! Attention's `scale` unless it is the default 1/√d.
//! PyTorch's SDPA exports split 1/√d over both operands,
//! `MatMul(Mul(Qh, s), Mul(Kh, s))` with s = √(1/√d) computed from
//! `Shape(Q)` at run time (TorchScript) or a constant (dynamo); dynamo also
//! writes Kᵀ through a [B·n, S, d] reshape (`attention_heads`).
//! DistilBERT's export scales Q before the product,
//! `MatMul(Div(Qh, c), Kh)`, and masks by selection,
//! `Where(cond, lowest, scores)`, which `attention_mask` turns into the
//! additive `Where(cond, lowest, 0)` (made once per condition).
//!
//! Rotary models rotate Q and K between the head split and the transpose:
//! `Transpose(rotation(Reshape(q, [B,S,n,d])), perm)`, the rotation
//! recognized as a unit (`rotary`, the computation of opset 23's
//! `RotaryEmbedding`). It is kept as it is, in standard ops every runtime
//! runs, and its output merged back to [B, S, n·d] feeds the Attention:
//! tract has no RotaryEmbedding, and onnxruntime's packed contrib Attention
//! projects Q and K itself (so `lower_attention_onnxruntime` leaves these
//! layers as standard Attention).
//!
//! Grouped-query attention (EuroBERT) splits K and V into fewer heads and
//! repeats each for its group of query heads before the transpose,
//! `Gather(heads, [0, 0, 1, 1, …], axis 2)` (builder/grouped_query.rs): the
//! Attention then reads K and V unrepeated, with `kv_num_heads` of them.
//!
//! The mask becomes the Attention mask expanded to [B, 1, S, S]: both tract
//! (whose flash kernel rejects [B,1,1,S]) and onnxruntime (which wants the
//! query length as the second-to-last dim) accept that shape. It is
//! expanded once per distinct mask and shared by every layer.

use std::collections::HashMap;

use crate::ir::{BinaryOp, Dim, Graph, IrError, NodeId, Op, Shape, Tensor, Value};

use super::attention_heads::{keys_transposed, split_heads, KeysTransposed};
use super::attention_mask::{additive, broadcasts_to_scores, select_mask};
use super::pattern::{fused_name, input, only_read_by, operands, producer};
use super::scalar_value::scalar_value;
use super::{band_mask, folded_heads, packed_heads, query_key_mask, rotate_half, score_terms};
use super::{Pass, PassReport};

pub struct FuseAttention;

/// How the padding mask reaches the softmax.
#[derive(Clone, Copy)]
enum Mask {
    /// `scores + mask`.
    Additive(Value),
    /// `Where(cond, fill, scores)`, fill ≤ `attention_mask::LOWEST_FILL`.
    Select { cond: Value, fill: f32 },
}

struct Match {
    root: NodeId,
    nodes: Vec<NodeId>,
    /// Q, K and V before the head split, [B, S, heads·d].
    q: Value,
    k: Value,
    v: Value,
    /// The rotated heads of Q, K and V ([B, S, heads, d]) where a rotation
    /// sits between the split and the transpose: the Attention reads them
    /// merged back to 3-D instead of `q`, `k`, `v`.
    rotated: [Option<Value>; 3],
    mask: Mask,
    /// A relative position score bias added to Q·Kᵀ before scaling.
    bias: Option<Value>,
    /// Whether the bias is added after the scaling instead (DeBERTa's
    /// exports scale each term): the mask then takes it as it is.
    bias_scaled: bool,
    /// The factor the scores are multiplied by (1/√d by default).
    factor: f32,
    heads: usize,
    /// The heads K and V are split into (fewer under grouped queries).
    kv_heads: usize,
    scale: Option<f32>,
}

impl Pass for FuseAttention {
    fn name(&self) -> &'static str {
        "fuse_attention"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let before = g.node_count();
        restate_exports(g)?;
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        let mut expanded: HashMap<Value, Value> = HashMap::new();
        let mut selects: HashMap<(Value, u32), Value> = HashMap::new();
        // Restating may also remove the forms it leaves dead (net counts).
        let mut added = g.node_count().saturating_sub(before);
        let removed = before.saturating_sub(g.node_count());
        for m in &matches {
            let additive_mask = match m.mask {
                Mask::Additive(v) => v,
                Mask::Select { cond, fill } => match selects.get(&(cond, fill.to_bits())) {
                    Some(&v) => v,
                    None => {
                        let before = g.node_count();
                        let v = additive(g, cond, fill)?;
                        added += g.node_count() - before;
                        selects.insert((cond, fill.to_bits()), v);
                        v
                    }
                },
            };
            let mask = match (m.bias, expanded.get(&additive_mask)) {
                (Some(bias), _) => {
                    let before = g.node_count();
                    let factor = (!m.bias_scaled).then_some(m.factor);
                    let mask = bias_mask(g, bias, factor, additive_mask)?;
                    added += g.node_count() - before;
                    mask
                }
                (None, Some(&e)) => e,
                (None, None) => {
                    let before = g.node_count();
                    let e = expand_mask(g, additive_mask, m.q, m.k)?;
                    added += g.node_count() - before;
                    expanded.insert(additive_mask, e);
                    e
                }
            };
            let name = fused_name(g, m.root, &m.nodes, "Attention");
            let op = Op::Attention {
                q_num_heads: m.heads,
                kv_num_heads: m.kv_heads,
                scale: m.scale,
            };
            let before = g.node_count();
            let [q, k, v] = [(m.q, m.rotated[0]), (m.k, m.rotated[1]), (m.v, m.rotated[2])]
                .map(|(plain, rotated)| rotated.map_or(Ok(plain), |r| merge_heads(g, r, plain)));
            added += g.node_count() - before;
            let fused = g.add(&name, op, &[q?, k?, v?, mask])?;
            g.replace_uses(
                Value {
                    node: m.root,
                    slot: 0,
                },
                fused,
            );
            added += 1;
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: added,
            nodes_removed: removed,
        })
    }
}

/// PyTorch's exports of ModernBERT split packed Q/K/V into heads, rotate
/// them and band their local layers' masks in forms of their own; MPNet's
/// add the position bias and the mask to the scores one after the other;
/// DeBERTa's fold the heads into the batch and mask with `m_i·m_j`. Each is
/// restated as the builder writes it (see `packed_heads`, `rotate_half`,
/// `band_mask`, `score_terms`, `folded_heads`, `query_key_mask`), which the
/// matching below reads. Nothing matches in a graph without those forms.
fn restate_exports(g: &mut Graph) -> Result<(), IrError> {
    packed_heads::restate(g)?;
    folded_heads::restate(g)?;
    query_key_mask::restate(g)?;
    rotate_half::restate(g)?;
    band_mask::restate(g)?;
    // Scores with a bias of their own added last are not one term yet.
    score_terms::restate(g, |g, v| scores_before_bias(g, v).is_some())?;
    Ok(())
}

/// `bias · factor + mask`: the relative bias scaled as the scores are
/// (`None`: it already is), plus the padding mask.
fn bias_mask(g: &mut Graph, bias: Value, factor: Option<f32>, mask: Value) -> Result<Value, IrError> {
    let base = g.node(bias.node).name.clone();
    let scaled = match factor {
        Some(factor) => {
            let cn = g.fresh_name(&format!("{base}.scale"));
            let c = g.add_const(&cn, Tensor::scalar_f32(factor))?;
            let sn = g.fresh_name(&format!("{base}.scaled"));
            g.add(&sn, Op::Binary(BinaryOp::Mul), &[bias, c])?
        }
        None => bias,
    };
    let mn = g.fresh_name(&format!("{base}.with_mask"));
    g.add(&mn, Op::Binary(BinaryOp::Add), &[scaled, mask])
}

/// `Reshape(rotated, [0, 0, H])`: rotated heads [B, S, n, d] merged back to
/// the [B, S, H] of `plain`, the value split into them.
fn merge_heads(g: &mut Graph, rotated: Value, plain: Value) -> Result<Value, IrError> {
    let width = g.info(plain).shape.dims()[2]
        .fixed()
        .expect("matched a fixed width");
    let base = g.node(rotated.node).name.clone();
    let sn = g.fresh_name(&format!("{base}.merge_heads_shape"));
    let shape = g.add_const(&sn, Tensor::vec_i64(&[0, 0, width]))?;
    let mn = g.fresh_name(&format!("{base}.merge_heads"));
    g.add(&mn, Op::Reshape, &[rotated, shape])
}

/// `Expand(mask, [B, 1, Sq, Skv])`, the dims taken from Q's and K's shapes
/// at run time so batch and sequence stay symbolic.
fn expand_mask(g: &mut Graph, mask: Value, q: Value, k: Value) -> Result<Value, IrError> {
    let target = mask_shape(g, q, k);
    if g.info(mask).shape == Shape(target.to_vec()) {
        return Ok(mask);
    }
    // Already one row per query (MPNet's relative bias plus the padding
    // mask, [B, heads, S, S]): both runtimes take it as it is.
    let dims = g.info(mask).shape.dims();
    if dims.len() == 4 && dims[2..] == target[2..] {
        return Ok(mask);
    }
    let base = g.node(mask.node).name.clone();
    let fresh = |g: &Graph, suffix: &str| g.fresh_name(&format!("{base}.{suffix}"));
    let (n, qs) = (fresh(g, "q_shape"), fresh(g, "k_shape"));
    let q_shape = g.add(&n, Op::Shape, &[q])?;
    let k_shape = g.add(&qs, Op::Shape, &[k])?;
    let pick = |g: &mut Graph, shape: Value, i: i64, what: &str| -> Result<Value, IrError> {
        let (cn, gn) = (fresh(g, &format!("{what}_index")), fresh(g, what));
        let idx = g.add_const(&cn, Tensor::vec_i64(&[i]))?;
        g.add(&gn, Op::Gather { axis: 0 }, &[shape, idx])
    };
    let batch = pick(g, q_shape, 0, "batch")?;
    let q_len = pick(g, q_shape, 1, "q_len")?;
    let kv_len = pick(g, k_shape, 1, "kv_len")?;
    let on = fresh(g, "one");
    let one = g.add_const(&on, Tensor::vec_i64(&[1]))?;
    let tn = fresh(g, "expand_shape");
    let target = g.add(&tn, Op::Concat { axis: 0 }, &[batch, one, q_len, kv_len])?;
    let en = fresh(g, "expanded");
    g.add(&en, Op::Expand, &[mask, target])
}

/// `[B, 1, Sq, Skv]` of 3-D Q and K: the shape the mask is expanded to.
fn mask_shape(g: &Graph, q: Value, k: Value) -> [Dim; 4] {
    let (q, k) = (g.info(q).shape.dims(), g.info(k).shape.dims());
    [q[0].clone(), Dim::Fixed(1), q[1].clone(), k[1].clone()]
}

/// `v = x / c`, `x · c` or `c · x`, c a one-element value
/// [`scalar_value`] proves (a constant, or SDPA's scale computed from a
/// fixed head size), the result of x's own shape: (x, the factor).
fn scaling(g: &Graph, v: Value) -> Option<(Value, f32)> {
    let (a, b) = operands(g, v.node)?;
    let (x, factor) = match producer(g, v).op {
        Op::Binary(BinaryOp::Div) => (a, 1.0 / scalar_value(g, b)?),
        Op::Binary(BinaryOp::Mul) => match (scalar_value(g, b), scalar_value(g, a)) {
            (Some(c), _) => (a, c),
            (None, Some(c)) => (b, c),
            (None, None) => return None,
        },
        _ => return None,
    };
    let keeps_shape = g.info(x).shape == g.info(v).shape && g.info(x).dtype == g.info(v).dtype;
    (keeps_shape && factor.is_finite() && factor != 0.0).then_some((x, factor))
}

/// At most this many scalings are peeled off one value (SDPA writes one
/// per side, eager attention one after the product).
const MAX_SCALINGS: usize = 3;

/// `v` with its [`scaling`]s peeled off: (the value scaled, the product of
/// the factors, each peeled value with the node that reads it).
fn peel_scalings(g: &Graph, v: Value) -> (Value, f32, Vec<(Value, NodeId)>) {
    let (mut x, mut factor, mut chain) = (v, 1.0f32, Vec::new());
    while chain.len() < MAX_SCALINGS {
        let Some((inner, c)) = scaling(g, x) else { break };
        chain.push((inner, x.node));
        factor *= c;
        x = inner;
    }
    (x, factor, chain)
}

/// The scores before the mask: `Q·Kᵀ` scaled after the product, or on
/// either side before it (SDPA splits 1/√d as √(1/√d) on Q and on Kᵀ), or
/// both; or `(Q·Kᵀ + R)` scaled, R a relative position bias.
struct Scores {
    /// The product's operands with their scalings peeled: Q's heads and Kᵀ.
    qh: Value,
    kt: Value,
    /// Everything multiplied into the scores.
    factor: f32,
    /// The relative bias, added before the scaling.
    bias: Option<Value>,
    /// Whether `bias` is added after the scaling instead.
    bias_scaled: bool,
    /// The values between the product's inputs and the masked scores, each
    /// with its one reader in the pattern.
    chain: Vec<(Value, NodeId)>,
}

fn scores(g: &Graph, scaled: Value) -> Option<Scores> {
    let (raw, after, chain) = peel_scalings(g, scaled);
    // `scaled Q·Kᵀ + R`, R already scaled (DeBERTa's exports divide each
    // relative term as they divide Kᵀ): one Add, either order, over scores
    // without a bias of their own.
    if chain.is_empty() && producer(g, raw).op == Op::Binary(BinaryOp::Add) {
        let (a, b) = operands(g, raw.node)?;
        for (x, bias) in [(a, b), (b, a)] {
            if let Some(mut s) = scores_before_bias(g, x).filter(|s| s.bias.is_none()) {
                s.chain.push((x, raw.node));
                s.bias = Some(bias);
                s.bias_scaled = true;
                return Some(s);
            }
        }
        return None;
    }
    scores_from(g, raw, after, chain)
}

/// [`scores`] that are not themselves a sum with a bias added last.
fn scores_before_bias(g: &Graph, scaled: Value) -> Option<Scores> {
    let (raw, after, chain) = peel_scalings(g, scaled);
    scores_from(g, raw, after, chain)
}

/// The scores from `raw`, the value under the scalings peeled (`after`,
/// `chain`).
fn scores_from(g: &Graph, raw: Value, after: f32, mut chain: Vec<(Value, NodeId)>) -> Option<Scores> {
    // An Add between the product and its scaling carries a relative bias.
    let (product, bias) = match producer(g, raw).op {
        Op::MatMul => (raw, None),
        Op::Binary(BinaryOp::Add) if !chain.is_empty() => {
            let (a, b) = operands(g, raw.node)?;
            let (product, bias) = if producer(g, a).op == Op::MatMul {
                (a, b)
            } else {
                (b, a)
            };
            if producer(g, product).op != Op::MatMul {
                return None;
            }
            chain.push((product, raw.node));
            (product, Some(bias))
        }
        _ => return None,
    };
    let (q_side, k_side) = operands(g, product.node)?;
    let (qh, q_factor, q_chain) = peel_scalings(g, q_side);
    let (kt, k_factor, k_chain) = peel_scalings(g, k_side);
    let sides_scaled = !(q_chain.is_empty() && k_chain.is_empty());
    chain.push((k_side, product.node));
    chain.extend(k_chain);
    match bias {
        // The bias is scaled as the product is: only after both.
        Some(_) if sides_scaled => return None,
        // Q's heads may feed the bias too (DeBERTa's content-to-position
        // term reads them as the scores do, and common-subexpression
        // elimination made the two one node): before the scaling, or after
        // it (then the bias is in the mask). They stay for that reader.
        Some(_) => {}
        None if !only_read_by(g, q_side, &[product.node]) => {}
        None => {
            chain.push((q_side, product.node));
            chain.extend(q_chain);
        }
    }
    Some(Scores {
        qh,
        kt,
        factor: after * q_factor * k_factor,
        bias,
        bias_scaled: false,
        chain,
    })
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    let out = Value { node: root, slot: 0 };
    if producer(g, out).op != Op::Reshape || g.info(out).shape.rank() != 3 {
        return None;
    }
    let merged = input(g, root, 0)?;
    if producer(g, merged).op
        != (Op::Transpose {
            perm: vec![0, 2, 1, 3],
        })
    {
        return None;
    }
    let ctx = input(g, merged.node, 0)?;
    if producer(g, ctx).op != Op::MatMul {
        return None;
    }
    let (probs, vh) = operands(g, ctx.node)?;
    if !matches!(producer(g, probs).op, Op::Softmax { axis: -1 | 3 }) {
        return None;
    }
    let masked = input(g, probs.node, 0)?;
    // Besides the softmax's input, the Where form's condition may read the
    // scores' shape (an Expand restating the broadcast): all dead after.
    let (scaled, mask, mask_nodes, found) = match producer(g, masked).op {
        Op::Binary(BinaryOp::Add) => {
            // The scores are the operand that is a (scaled) product; the
            // other, a float mask. Either order.
            let (a, b) = operands(g, masked.node)?;
            let (scaled, mask, found) = match scores(g, a) {
                Some(s) => (a, b, s),
                None => (b, a, scores(g, b)?),
            };
            if !g.info(mask).dtype.is_float() {
                return None;
            }
            (scaled, Mask::Additive(mask), vec![masked.node], found)
        }
        Op::Where => {
            let s = select_mask(g, masked)?;
            let mask = Mask::Select {
                cond: s.cond,
                fill: s.fill,
            };
            (s.scores, mask, s.nodes, scores(g, s.scores)?)
        }
        _ => return None,
    };
    let Scores {
        qh,
        kt,
        factor,
        bias,
        bias_scaled,
        mut chain,
    } = found;
    let qs = split_heads(g, qh, &[0, 2, 1, 3])?;
    let KeysTransposed {
        heads: ks,
        chain: k_chain,
    } = keys_transposed(g, kt)?;
    let vs = split_heads(g, vh, &[0, 2, 1, 3])?;
    let (q, k, v, heads) = (qs.x, ks.x, vs.x, qs.heads);
    let kv_heads = ks.stored_heads;
    let grouped_alike = ks.stored_heads == vs.stored_heads && ks.repeated.is_some() == vs.repeated.is_some();
    if heads != ks.heads || heads != vs.heads || qs.repeated.is_some() || !grouped_alike {
        return None;
    }
    // The mask must broadcast to the scores, [B, heads, Sq, Skv]: a padding
    // mask, or one per head (MPNet's relative bias plus padding).
    let mask_value = match mask {
        Mask::Additive(m) => m,
        Mask::Select { cond, .. } => cond,
    };
    let mut scores_shape = mask_shape(g, q, k);
    scores_shape[1] = Dim::Fixed(heads as i64);
    if !broadcasts_to_scores(g, mask_value, &scores_shape) {
        return None;
    }
    // The merged output must be [B, S, heads·d] of Q's batch and length.
    if g.info(out).shape != g.info(q).shape {
        return None;
    }
    let head_size = g.info(q).shape.dims()[2].fixed()? as f32 / heads as f32;
    let default = 1.0 / head_size.sqrt();
    let scale = ((factor - default).abs() > 1e-6 * default).then_some(factor);
    chain.extend(k_chain);
    chain.extend([
        (vs.transposed(), vs.transpose),
        (vh, ctx.node),
        (masked, probs.node),
        (probs, ctx.node),
        (ctx, merged.node),
        (merged, root),
    ]);
    // The relative bias reads Q and K split into heads; without one the
    // splits belong to the pattern unless a term the mask carries reads
    // them (DeBERTa's, added after the scaling). A rotation stays (the
    // Attention reads its output), and so does the split it reads. A
    // repetition belongs to the pattern.
    if bias.is_none() {
        for h in [&qs, &ks] {
            if h.rotated.is_none() && h.repeated.is_none() && only_read_by(g, h.split, &[h.transpose]) {
                chain.push((h.split, h.transpose));
            }
        }
    }
    // (V's transpose reads its repetition: `vs.transposed()` above.)
    if let Some(r) = ks.repeated {
        chain.push((r, ks.transpose));
    }
    for h in [&ks, &vs] {
        if let (Some(r), None) = (h.repeated, h.rotated) {
            chain.push((h.split, r.node));
        }
    }
    let nodes = chain.iter().map(|(v, _)| v.node).chain([root]).collect();
    let scaled_read_in_pattern = only_read_by(g, scaled, &mask_nodes);
    (scaled_read_in_pattern && chain.iter().all(|&(v, reader)| only_read_by(g, v, &[reader]))).then_some(
        Match {
            root,
            nodes,
            q,
            k,
            v,
            rotated: [qs.rotated, ks.rotated, vs.rotated],
            mask,
            bias,
            bias_scaled,
            factor,
            heads,
            kv_heads,
            scale,
        },
    )
}
