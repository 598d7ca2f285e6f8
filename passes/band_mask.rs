//! Sliding-window masks as PyTorch's exports of ModernBERT write them,
//! restated as the builder's (`builder/sliding.rs`), so that
//! `fuse_attention` fuses the local layers and `block_sliding_attention`
//! computes them along their band.
//!
//! The export masks a local layer's scores with
//!
//! ```text
//! Where(Not(|i − j| ≤ reach), lowest, padding)      padding [B, 1, S, S]: 0 or lowest
//! ```
//!
//! i, j from `Range(0, S, 1)` (the grid `Unsqueeze(p, 0) − Transpose(Unsqueeze(p, 0))`,
//! through casts and unsqueezes of the bool band), `lowest` = f32::MIN and
//! `padding` a mask [`raw_padding_mask`] proves made from `attention_mask`
//! alone. Where either hides a key the score gets exactly `lowest`, else
//! the padding's 0: that is `Min(padding₁, Where(|i − j| ≤ reach, 0, MIN))`
//! with padding₁ = `Where(Unsqueeze(attention_mask, [1, 2]) = 0, MIN, 0)`
//! ([B, 1, 1, S]), the builder's mask. (They differ on mask values other
//! than 0 and 1, which no tokenizer writes, as `raw_padding_mask` says.)
//!
//! Rows with no visible key (padding positions whose whole window is
//! padding) softmax uniformly over all keys in the export's primitive
//! form. A fused kernel need not (onnxruntime's does not), so each
//! attention reading the mask gets the builder's fix after it:
//! `Where(blind, ReduceMean(v, axis 1), context)`, blind the rows whose
//! best mask value is still MIN — the same numbers in the primitive form,
//! and the form `block_sliding_attention` recognizes.

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, Tensor, UnaryOp, Value};

use super::attention_mask::raw_padding_mask;
use super::pattern::{constant, input, operands, producer, scalar};

struct Match {
    /// The export's `Where` mask.
    mask: Value,
    /// Range(0, S, 1).
    positions: Value,
    reach: i64,
    /// The 2-D `attention_mask` input.
    attention_mask: Value,
}

/// Restates every band mask of this form in `g` and fixes the blind rows
/// of the attentions reading it; returns how many masks.
pub(super) fn restate(g: &mut Graph) -> Result<usize, IrError> {
    let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
    let mut paddings: HashMap<Value, Value> = HashMap::new();
    for m in &matches {
        let base = g.node(m.mask.node).name.clone();
        let fresh = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
        let padding = match paddings.get(&m.attention_mask) {
            Some(&p) => p,
            None => {
                let p = padding_mask(g, m.attention_mask, &base)?;
                paddings.insert(m.attention_mask, p);
                p
            }
        };
        let rows = g.add(&fresh(g, "rows"), Op::Unsqueeze { axes: vec![1] }, &[m.positions])?;
        let cols = g.add(&fresh(g, "cols"), Op::Unsqueeze { axes: vec![0] }, &[m.positions])?;
        let grid = g.add(&fresh(g, "grid"), Op::Binary(BinaryOp::Sub), &[rows, cols])?;
        let distance = g.add(&fresh(g, "distance"), Op::Unary(UnaryOp::Abs), &[grid])?;
        let reach = g.add_const(&fresh(g, "reach"), Tensor::scalar_i64(m.reach))?;
        let inside = g.add(
            &fresh(g, "inside"),
            Op::Binary(BinaryOp::LessOrEqual),
            &[distance, reach],
        )?;
        let open = g.add_const(&fresh(g, "open"), Tensor::scalar_f32(0.0))?;
        let closed = g.add_const(&fresh(g, "closed"), Tensor::scalar_f32(f32::MIN))?;
        let band = g.add(&fresh(g, "band"), Op::Where, &[inside, open, closed])?;
        let both = g.add(&fresh(g, "both"), Op::Binary(BinaryOp::Min), &[padding, band])?;
        let best = g.add(
            &fresh(g, "best"),
            Op::ReduceMax {
                axes: vec![-1],
                keepdims: true,
            },
            &[both],
        )?;
        let half_min = g.add_const(&fresh(g, "half_min"), Tensor::scalar_f32(f32::MIN / 2.0))?;
        let blind = g.add(
            &fresh(g, "blind"),
            Op::Binary(BinaryOp::LessOrEqual),
            &[best, half_min],
        )?;
        let blind = g.add(&fresh(g, "blind_rows"), Op::Squeeze { axes: vec![1] }, &[blind])?;
        // The attentions reading the export's mask, found before it is
        // replaced: each gets the blind rows' fix.
        let contexts: Vec<(NodeId, Value)> = g
            .consumers(m.mask)
            .into_iter()
            .filter_map(|(reader, _)| attention_context(g, reader))
            .collect();
        g.replace_uses(m.mask, both);
        for (root, v) in contexts {
            uniform_rows(g, root, v, blind)?;
        }
    }
    Ok(matches.len())
}

/// `Where(Equal(Unsqueeze(attention_mask, [1, 2]), 0), MIN, 0)`: the
/// builder's padding mask [B, 1, 1, S].
fn padding_mask(g: &mut Graph, attention_mask: Value, base: &str) -> Result<Value, IrError> {
    let fresh = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.padding_{s}"));
    let keys = g.add(
        &fresh(g, "keys"),
        Op::Unsqueeze { axes: vec![1, 2] },
        &[attention_mask],
    )?;
    let zero = g.add_const(&fresh(g, "zero"), Tensor::scalar_i64(0))?;
    let hidden = g.add(&fresh(g, "hidden"), Op::Binary(BinaryOp::Equal), &[keys, zero])?;
    let closed = g.add_const(&fresh(g, "closed"), Tensor::scalar_f32(f32::MIN))?;
    let open = g.add_const(&fresh(g, "open"), Tensor::scalar_f32(0.0))?;
    g.add(&fresh(g, "mask"), Op::Where, &[hidden, closed, open])
}

/// `ctx` replaced, for its readers and the graph's outputs, by
/// `Where(blind, ReduceMean(v, axis 1), ctx)`.
fn uniform_rows(g: &mut Graph, root: NodeId, v: Value, blind: Value) -> Result<(), IrError> {
    let ctx = Value { node: root, slot: 0 };
    let base = g.node(root).name.clone();
    let readers = g.consumers(ctx);
    let mean = g.add(
        &g.fresh_name(&format!("{base}.uniform")),
        Op::ReduceMean {
            axes: vec![1],
            keepdims: true,
        },
        &[v],
    )?;
    let fixed = g.add(
        &g.fresh_name(&format!("{base}.window_fixed")),
        Op::Where,
        &[blind, mean, ctx],
    )?;
    for (reader, slot) in readers {
        g.set_input(reader, slot, fixed);
    }
    g.redirect_outputs(ctx, fixed);
    Ok(())
}

/// From the `Add` of scores and mask: the attention's merged context
/// `Reshape(Transpose(MatMul(Softmax(Add), vh), [0, 2, 1, 3]))` ([B, S, H])
/// and the value v [B, S, H] that vh = `Transpose(Reshape(v), [0, 2, 1, 3])`
/// splits into heads.
fn attention_context(g: &Graph, add: NodeId) -> Option<(NodeId, Value)> {
    let only_reader = |v: Value| match g.consumers(v).as_slice() {
        [(n, _)] if !g.is_output(v) => Some(*n),
        _ => None,
    };
    let scores = Value { node: add, slot: 0 };
    if g.node(add).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let softmax = only_reader(scores)?;
    if !matches!(g.node(softmax).op, Op::Softmax { axis: -1 | 3 }) {
        return None;
    }
    let mut probs = Value {
        node: softmax,
        slot: 0,
    };
    let mut reader = only_reader(probs)?;
    // Casts to f32 of the f32 probabilities (TorchScript writes two).
    while g.node(reader).op == (Op::Cast { to: DType::F32 }) {
        probs = Value {
            node: reader,
            slot: 0,
        };
        reader = only_reader(probs)?;
    }
    let (p, vh) = operands(g, reader)?;
    let heads = Op::Transpose {
        perm: vec![0, 2, 1, 3],
    };
    if g.node(reader).op != Op::MatMul || p != probs || producer(g, vh).op != heads {
        return None;
    }
    let split = input(g, vh.node, 0)?;
    if producer(g, split).op != Op::Reshape {
        return None;
    }
    let v = input(g, split.node, 0)?;
    let merged = only_reader(Value {
        node: reader,
        slot: 0,
    })?;
    if g.node(merged).op != heads {
        return None;
    }
    let root = only_reader(Value {
        node: merged,
        slot: 0,
    })?;
    let out = Value { node: root, slot: 0 };
    (g.node(root).op == Op::Reshape && g.info(out).shape == g.info(v).shape).then_some((root, v))
}

fn match_at(g: &Graph, id: NodeId) -> Option<Match> {
    if g.node(id).op != Op::Where {
        return None;
    }
    let mask = Value { node: id, slot: 0 };
    let (cond, fill, padding) = (input(g, id, 0)?, input(g, id, 1)?, input(g, id, 2)?);
    if scalar(g, fill) != Some(f32::MIN) || g.info(mask).dtype != DType::F32 {
        return None;
    }
    let attention_mask = raw_padding_mask(g, padding)?;
    let inside = through_bool_restatements(g, cond);
    if producer(g, inside).op != Op::Unary(UnaryOp::Not) {
        return None;
    }
    let inside = through_bool_restatements(g, input(g, inside.node, 0)?);
    if producer(g, inside).op != Op::Binary(BinaryOp::LessOrEqual) {
        return None;
    }
    let (distance, reach) = operands(g, inside.node)?;
    let reach = match constant(g, reach)?.to_i64_vec()?.as_slice() {
        [r] if *r >= 0 => *r,
        _ => return None,
    };
    if producer(g, distance).op != Op::Unary(UnaryOp::Abs) {
        return None;
    }
    let positions = position_grid(g, input(g, distance.node, 0)?)?;
    Some(Match {
        mask,
        positions,
        reach,
        attention_mask,
    })
}

/// `v` through casts of bools to bool and Unsqueezes at axis 0 (which add
/// the broadcast [1, 1] in front of the [S, S] band).
fn through_bool_restatements(g: &Graph, mut v: Value) -> Value {
    for _ in 0..8 {
        let Some(x) = input(g, v.node, 0) else {
            return v;
        };
        let restates = match &producer(g, v).op {
            Op::Cast { to: DType::Bool } => g.info(x).dtype == DType::Bool,
            Op::Unsqueeze { axes } => axes == &[0],
            _ => false,
        };
        if !restates {
            return v;
        }
        v = x;
    }
    v
}

/// The positions p = `Range(0, S, 1)` of a grid of differences of p with
/// itself, one side a row and the other a column: `Sub(Unsqueeze(p, 0),
/// Transpose(Unsqueeze(p, 0)))` or `Sub(Unsqueeze(p, 1), Unsqueeze(p, 0))`
/// (either way round: the distance takes its absolute value).
fn position_grid(g: &Graph, grid: Value) -> Option<Value> {
    if producer(g, grid).op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    let (a, b) = operands(g, grid.node)?;
    let unsqueezed = |v: Value, axis: i64| -> Option<Value> {
        (producer(g, v).op == Op::Unsqueeze { axes: vec![axis] }).then_some(input(g, v.node, 0)?)
    };
    let row = |v: Value| unsqueezed(v, 0);
    let column = |v: Value| match &producer(g, v).op {
        Op::Transpose { perm } if perm == &[1, 0] => row(input(g, v.node, 0)?),
        _ => unsqueezed(v, 1),
    };
    let p = match (row(a), column(b), column(a), row(b)) {
        (Some(p), Some(q), _, _) | (_, _, Some(p), Some(q)) if p == q => p,
        _ => return None,
    };
    let int = |slot: usize, want: i64| {
        input(g, p.node, slot)
            .and_then(|v| constant(g, v)?.to_i64_vec())
            .is_some_and(|x| x == [want])
    };
    let is_range = producer(g, p).op == Op::Range && int(0, 0) && int(2, 1);
    (is_range && g.info(p).shape.rank() == 1).then_some(p)
}
