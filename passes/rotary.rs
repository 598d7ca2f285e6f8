//! Rotary position embeddings recognized as a unit: what the builder's
//! `rotate` (and PyTorch's export of `apply_rotary_pos_emb`) writes, the
//! computation of ONNX's `RotaryEmbedding` (opset 23) in its half-split
//! form, `x · cos + rotate_half(x) · sin` on [B, S, heads, d]:
//!
//! ```text
//! x1 = Slice(x, 0, d/2, last axis)      x2 = Slice(x, d/2, d, last axis)
//! Concat(x1 · cos − x2 · sin, x2 · cos + x1 · sin, last axis)
//! ```
//!
//! with `cos = Cos(a)` and `sin = Sin(a)` of one angle tensor `a`. Only the
//! full-head half-split form is recognized (NomicBERT's, GTE's); a partial
//! or interleaved rotation is not, and its attention stays unfused.

use crate::ir::{BinaryOp, Graph, Op, UnaryOp, Value};

use super::pattern::{constant, input, operands, producer};

/// The rotated heads `v` of a [`rotation`]: the [B, S, heads, d] value
/// rotated.
pub(super) fn rotation(g: &Graph, v: Value) -> Option<Value> {
    rotation_parts(g, v).map(|(x, _, _)| x)
}

/// [`rotation`] with its angles: (x, cos, sin), cos and sin as the
/// products read them (broadcasting over x's heads).
pub(super) fn rotation_parts(g: &Graph, v: Value) -> Option<(Value, Value, Value)> {
    if !matches!(producer(g, v).op, Op::Concat { axis: 3 | -1 }) || g.inputs_of(v.node).len() != 2 {
        return None;
    }
    let (y1, y2) = operands(g, v.node)?;
    // y1 = x1·cos − x2·sin
    if producer(g, y1).op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    let (a, b) = operands(g, y1.node)?;
    let (x1, cos) = angle_product(g, a, UnaryOp::Cos)?;
    let (x2, sin) = angle_product(g, b, UnaryOp::Sin)?;
    // y2 = x2·cos + x1·sin, in either order
    if producer(g, y2).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (c, d) = operands(g, y2.node)?;
    let same = |p: Option<(Value, Value)>, x, t| p == Some((x, t));
    let ordered =
        same(angle_product(g, c, UnaryOp::Cos), x2, cos) && same(angle_product(g, d, UnaryOp::Sin), x1, sin);
    let swapped =
        same(angle_product(g, d, UnaryOp::Cos), x2, cos) && same(angle_product(g, c, UnaryOp::Sin), x1, sin);
    if !(ordered || swapped) || !same_angles(g, cos, sin) {
        return None;
    }
    let x = input(g, x1.node, 0)?;
    let dims = g.info(x).shape.dims();
    let width = match dims {
        [_, _, _, d] => d.fixed()?,
        _ => return None,
    };
    let half = width / 2;
    let halves =
        last_axis_slice(g, x1, x) == Some((0, half)) && last_axis_slice(g, x2, x) == Some((half, width));
    (width % 2 == 0 && halves && g.info(v).shape == g.info(x).shape).then_some((x, cos, sin))
}

/// `Mul(x, t)` in either order with `t` made by `op` (Cos or Sin): (x, t).
fn angle_product(g: &Graph, v: Value, op: UnaryOp) -> Option<(Value, Value)> {
    if producer(g, v).op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    let (a, b) = operands(g, v.node)?;
    let made_by = |t: Value| producer(g, t).op == Op::Unary(op);
    match (made_by(a), made_by(b)) {
        (false, true) => Some((a, b)),
        (true, false) => Some((b, a)),
        _ => None,
    }
}

/// Whether `cos` and `sin` are the Cos and Sin of one angle tensor.
fn same_angles(g: &Graph, cos: Value, sin: Value) -> bool {
    input(g, cos.node, 0).is_some() && input(g, cos.node, 0) == input(g, sin.node, 0)
}

/// `Slice(x, [start], [end], [last axis])` with constant bounds (no
/// steps): (start, end).
fn last_axis_slice(g: &Graph, v: Value, x: Value) -> Option<(i64, i64)> {
    if producer(g, v).op != Op::Slice || input(g, v.node, 0) != Some(x) || g.inputs_of(v.node).len() != 4 {
        return None;
    }
    let one = |slot| -> Option<i64> {
        let t = constant(g, input(g, v.node, slot)?)?;
        match t.to_i64_vec()?.as_slice() {
            [n] => Some(*n),
            _ => None,
        }
    };
    let rank = g.info(x).shape.rank() as i64;
    let axis = one(3)?;
    (axis == -1 || axis == rank - 1).then_some((one(1)?, one(2)?))
}
