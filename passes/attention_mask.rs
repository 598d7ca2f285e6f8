//! The padding masks exporters put on attention scores, recognised without
//! mutating the graph, and the additive form fused attention takes.
//!
//! Two forms reach the softmax:
//! - additive: `scores + M`, M float (BERT, RoBERTa): taken as it is;
//! - select: `Where(cond, fill, scores)` with `fill` the lowest float
//!   (DistilBERT). It equals `scores + Where(cond, fill, 0)` because adding
//!   any plausible score to a fill ≤ [`LOWEST_FILL`] rounds back to the fill
//!   (its ulp is ~1e23), so masked positions get the same value either way,
//!   fully masked rows included. A milder fill (e.g. -1e4) would let the
//!   scores through on fully masked rows: left unfused.
//!
//! For onnxruntime's contrib Attention, which takes the raw 2-D
//! `attention_mask`, [`raw_padding_mask`] proves that a mask was computed
//! from that input and nothing else.

use crate::ir::{BinaryOp, DType, Dim, Graph, IrError, Op, Shape, Tensor, Value};

use super::pattern::{constant, input, is_scalar, only_read_by, operands, producer, scalar};

/// The largest fill that still absorbs every score it is added to.
pub const LOWEST_FILL: f32 = -1e30;

/// `Where(cond, fill, scores)` seen from its output.
pub struct SelectMask {
    /// The boolean condition, through any Cast to bool of a bool and any
    /// Expand to the scores' own shape (which only restate the broadcast
    /// Where does itself).
    pub cond: Value,
    pub fill: f32,
    pub scores: Value,
    /// The Where and the nodes peeled off the condition: read only inside
    /// the pattern, so fusing leaves them dead.
    pub nodes: Vec<crate::ir::NodeId>,
}

/// `v = Where(cond, fill, scores)` with `fill` a scalar f32 constant ≤
/// [`LOWEST_FILL`] and `scores` f32.
pub fn select_mask(g: &Graph, v: Value) -> Option<SelectMask> {
    if producer(g, v).op != Op::Where {
        return None;
    }
    let (mut cond, fill, scores) = (input(g, v.node, 0)?, input(g, v.node, 1)?, input(g, v.node, 2)?);
    let fill_value = scalar(g, fill)?;
    let f32 = DType::F32;
    if constant(g, fill)?.dtype() != f32 || g.info(scores).dtype != f32 || fill_value > LOWEST_FILL {
        return None;
    }
    let mut nodes = vec![v.node];
    let mut reader = v.node;
    loop {
        let shape_of_scores = match &producer(g, cond).op {
            Op::Cast { to: DType::Bool } if g.info(input(g, cond.node, 0)?).dtype == DType::Bool => None,
            Op::Expand => {
                let target = input(g, cond.node, 1)?;
                let restates = producer(g, target).op == Op::Shape
                    && input(g, target.node, 0) == Some(scores)
                    && only_read_by(g, target, &[cond.node]);
                if !restates {
                    break;
                }
                Some(target.node)
            }
            _ => break,
        };
        if !only_read_by(g, cond, &[reader]) {
            return None;
        }
        nodes.push(cond.node);
        nodes.extend(shape_of_scores);
        reader = cond.node;
        cond = input(g, cond.node, 0)?;
    }
    (g.info(cond).dtype == DType::Bool).then_some(SelectMask {
        cond,
        fill: fill_value,
        scores,
        nodes,
    })
}

/// Whether `mask` broadcasts to `target` (the scores' `[B, heads, Sq, Skv]`):
/// rank 4, each dim 1 or the target's.
pub fn broadcasts_to_scores(g: &Graph, mask: Value, target: &[Dim; 4]) -> bool {
    let dims = g.info(mask).shape.dims();
    dims.len() == 4
        && dims
            .iter()
            .zip(target)
            .all(|(d, t)| *d == Dim::Fixed(1) || d == t)
}

/// `Where(cond, fill, 0)`: the select mask as an additive f32 mask.
pub fn additive(g: &mut Graph, cond: Value, fill: f32) -> Result<Value, IrError> {
    let base = g.node(cond.node).name.clone();
    let (fname, zname) = (
        g.fresh_name(&format!("{base}.fill")),
        g.fresh_name(&format!("{base}.zero")),
    );
    let fill = g.add_const(&fname, Tensor::scalar_f32(fill))?;
    let zero = g.add_const(&zname, Tensor::scalar_f32(0.0))?;
    let name = g.fresh_name(&format!("{base}.additive"));
    g.add(&name, Op::Where, &[cond, fill, zero])
}

/// The `attention_mask` graph input behind an additive mask, if the mask
/// provably is its padding mask [B, 1, 1, S] (maybe expanded) in one of
/// the forms exporters and bertc write:
/// `(1 − Cast(unsqueezed attention_mask)) · lowest`,
/// `Where(unsqueezed Equal(attention_mask, 0), lowest, 0)` or PyTorch's
/// SDPA form `Where(Cast<bool>(inv), lowest, inv)` (maybe cast twice) with
/// `inv = 1 − Cast(Expand(unsqueezed attention_mask))`.
///
/// All of them give `lowest` where the mask is 0 and 0 where it is 1; they
/// differ from onnxruntime's raw-mask Attention (0 masked, anything else
/// kept) only on values other than 0 and 1, which no tokenizer writes.
pub fn raw_padding_mask(g: &Graph, mask: Value) -> Option<Value> {
    let mut v = mask;
    if producer(g, v).op == Op::Expand {
        v = input(g, v.node, 0)?;
    }
    let raw = match producer(g, v).op {
        Op::Binary(BinaryOp::Mul) => {
            let (inv, lowest) = operands(g, v.node)?;
            if scalar(g, lowest)? > LOWEST_FILL {
                return None;
            }
            unsqueezed_2d(g, one_minus(g, inv)?)?
        }
        Op::Where => {
            let (cond, fill, zero) = (input(g, v.node, 0)?, input(g, v.node, 1)?, input(g, v.node, 2)?);
            if scalar(g, fill)? > LOWEST_FILL {
                return None;
            }
            if !is_scalar(g, zero, 0.0) {
                return filled_inverse(g, cond, zero).and_then(|raw| attention_mask_input(g, raw));
            }
            let equal = unsqueezed_2d(g, cond)?;
            if producer(g, equal).op != Op::Binary(BinaryOp::Equal) {
                return None;
            }
            let (raw, z) = operands(g, equal.node)?;
            if constant(g, z)?.to_i64_vec()? != [0] {
                return None;
            }
            raw
        }
        _ => return None,
    };
    attention_mask_input(g, raw)
}

/// `raw` if it is the 2-D `attention_mask` graph input.
fn attention_mask_input(g: &Graph, raw: Value) -> Option<Value> {
    let is_input = g.inputs().contains(&raw.node) && g.node(raw.node).name == "attention_mask";
    (is_input && g.info(raw).shape.rank() == 2).then_some(raw)
}

/// `inv = 1 − Cast<f32>(m)`: m.
fn one_minus(g: &Graph, inv: Value) -> Option<Value> {
    if producer(g, inv).op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    let (one, cast) = operands(g, inv.node)?;
    if !is_scalar(g, one, 1.0) || producer(g, cast).op != (Op::Cast { to: DType::F32 }) {
        return None;
    }
    input(g, cast.node, 0)
}

/// `Where(Cast<bool>(inv), lowest, inv)`'s condition and kept branch, inv =
/// `1 − Cast<f32>(m)` with m the unsqueezed 2-D input, maybe expanded:
/// where m is 1, inv is 0 (false) and the mask 0; where m is 0, inv is 1
/// (true) and the mask `lowest`. The input m.
fn filled_inverse(g: &Graph, cond: Value, inv: Value) -> Option<Value> {
    let to_bool = |v: Value| producer(g, v).op == (Op::Cast { to: DType::Bool });
    // TorchScript casts to bool twice.
    let mut cond = cond;
    while to_bool(cond) && input(g, cond.node, 0) != Some(inv) {
        cond = input(g, cond.node, 0)?;
    }
    if !to_bool(cond) || input(g, cond.node, 0) != Some(inv) {
        return None;
    }
    let mut m = one_minus(g, inv)?;
    if producer(g, m).op == Op::Expand {
        m = input(g, m.node, 0)?;
    }
    unsqueezed_2d(g, m)
}

/// `v` = x [B, S] unsqueezed to [B, 1, 1, S] through Unsqueeze and Reshape
/// nodes (which keep the elements' order, so the end shapes say it all): x.
fn unsqueezed_2d(g: &Graph, v: Value) -> Option<Value> {
    let mut x = v;
    while matches!(producer(g, x).op, Op::Unsqueeze { .. } | Op::Reshape) {
        x = input(g, x.node, 0)?;
    }
    let d = g.info(x).shape.dims();
    let want = Shape(vec![
        d.first()?.clone(),
        Dim::Fixed(1),
        Dim::Fixed(1),
        d.get(1)?.clone(),
    ]);
    (d.len() == 2 && g.info(v).shape == want).then_some(x)
}
