//! Rotary embeddings as PyTorch's exports of `apply_rotary_pos_emb` write
//! them on heads in [B, n, S, d] layout, restated as the builder's rotation
//! (`rotary`), which `fuse_attention` keeps before the fused op and
//! `lower_rotary_onnxruntime` turns into `RotaryEmbedding`.
//!
//! The export (ModernBERT's, either exporter) computes
//!
//! ```text
//! y = x · cos + Concat(−x₂, x₁, last axis) · sin        x = Transpose(h, [0, 2, 1, 3])
//! cos = Unsqueeze(Cos(Concat(f, f, last axis)), 1)      sin likewise with Sin
//! f = Transpose(MatMul(inv_freq [1, d/2, 1], positions [1, 1, S]), [0, 2, 1])
//! ```
//!
//! (with x₁, x₂ the halves of x's last axis, h the split heads
//! [B, S, n, d], the products and the sum in either operand order, and
//! the tables through casts to their own type and a multiplication by an
//! attention scaling of exactly 1). Its halves are `x₁·c − x₂·s` and
//! `x₂·c + x₁·s` with c, s the Cos and Sin of f: the builder's
//! `Concat(x₁·cos − x₂·sin, x₂·cos + x₁·sin)` on h with the angles
//! `Unsqueeze(f, 2)` ([1, S, 1, d/2]), transposed back. Adding −(x₂·s)
//! and subtracting x₂·s round alike: the restatement is exact.
//!
//! The tables are proven to be RoPE's: `f` is the positions 0..S (a
//! `Range`) times constant frequencies θ^(−2i/d) for one θ, which
//! [`rope_theta`] recovers — per layer, so a model whose layers rotate
//! with different bases (ModernBERT's global and local θ) keeps each
//! layer's own angles.

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, UnaryOp, Value};

use super::pattern::{constant, input, operands, producer, scalar, slice_bounds, SharedInts};

struct Match {
    root: NodeId,
    /// The split heads [B, S, n, d] the rotated value is a transpose of.
    heads: Value,
    /// The angles f [1|B, S, d/2].
    angles: Value,
}

/// Restates every rotation of this form in `g`; returns how many.
pub(super) fn restate(g: &mut Graph) -> Result<usize, IrError> {
    let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
    // One Cos and one Sin per angle tensor, shared by Q and K (the
    // builder's rotation requires both to read one angle tensor).
    let mut tables: HashMap<Value, (Value, Value)> = HashMap::new();
    let mut ints = SharedInts::default();
    for m in &matches {
        let base = g.node(m.root).name.clone();
        let fresh = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
        let (cos, sin) = match tables.get(&m.angles) {
            Some(&t) => t,
            None => {
                let a = g.add(&fresh(g, "angles"), Op::Unsqueeze { axes: vec![2] }, &[m.angles])?;
                let cos = g.add(&fresh(g, "cos"), Op::Unary(UnaryOp::Cos), &[a])?;
                let sin = g.add(&fresh(g, "sin"), Op::Unary(UnaryOp::Sin), &[a])?;
                tables.insert(m.angles, (cos, sin));
                (cos, sin)
            }
        };
        let d = g.info(m.heads).shape.dims()[3].fixed().expect("matched fixed");
        let (zero, half, end, axis) = (
            ints.get(g, &format!("{base}.half_start"), &[0])?,
            ints.get(g, &format!("{base}.half"), &[d / 2])?,
            ints.get(g, &format!("{base}.half_end"), &[d])?,
            ints.get(g, &format!("{base}.half_axis"), &[-1])?,
        );
        let x1 = g.add(&fresh(g, "first_half"), Op::Slice, &[m.heads, zero, half, axis])?;
        let x2 = g.add(&fresh(g, "second_half"), Op::Slice, &[m.heads, half, end, axis])?;
        let mul = |g: &mut Graph, s: &str, a: Value, b: Value| {
            g.add(&fresh(g, s), Op::Binary(BinaryOp::Mul), &[a, b])
        };
        let (x1c, x2s) = (mul(g, "x1_cos", x1, cos)?, mul(g, "x2_sin", x2, sin)?);
        let (x2c, x1s) = (mul(g, "x2_cos", x2, cos)?, mul(g, "x1_sin", x1, sin)?);
        let y1 = g.add(&fresh(g, "y1"), Op::Binary(BinaryOp::Sub), &[x1c, x2s])?;
        let y2 = g.add(&fresh(g, "y2"), Op::Binary(BinaryOp::Add), &[x2c, x1s])?;
        let rotated = g.add(&fresh(g, "rotated"), Op::Concat { axis: 3 }, &[y1, y2])?;
        let perm = Op::Transpose {
            perm: vec![0, 2, 1, 3],
        };
        let out = g.add(&fresh(g, "rotated_heads"), perm, &[rotated])?;
        g.replace_uses(
            Value {
                node: m.root,
                slot: 0,
            },
            out,
        );
    }
    Ok(matches.len())
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    if g.node(root).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (a, b) = operands(g, root)?;
    let (plain, turned) = match (scaled_by(g, a, UnaryOp::Cos), scaled_by(g, b, UnaryOp::Sin)) {
        (Some(p), Some(t)) => (p, t),
        _ => (scaled_by(g, b, UnaryOp::Cos)?, scaled_by(g, a, UnaryOp::Sin)?),
    };
    let ((x, cos_angles), (r, sin_angles)) = (plain, turned);
    if cos_angles != sin_angles || rotate_half(g, r)? != x {
        return None;
    }
    let perm = Op::Transpose {
        perm: vec![0, 2, 1, 3],
    };
    if producer(g, x).op != perm {
        return None;
    }
    let heads = input(g, x.node, 0)?;
    let hd = g.info(heads).shape.dims();
    let fd = g.info(cos_angles).shape.dims();
    let [_, s, _, d] = hd else {
        return None;
    };
    let d = d.fixed()?;
    let fits = fd.len() == 3 && fd[1] == *s && fd[2].fixed() == Some(d / 2) && d % 2 == 0;
    let f32 = [heads, cos_angles].iter().all(|&v| g.info(v).dtype == DType::F32);
    (fits && f32 && rope_theta(g, cos_angles).is_some()).then_some(Match {
        root,
        heads,
        angles: cos_angles,
    })
}

/// `v = Mul(x, t)` in either order, t a table made by `op` (Cos or Sin)
/// from `Concat(f, f)`: (x, f).
fn scaled_by(g: &Graph, v: Value, op: UnaryOp) -> Option<(Value, Value)> {
    if producer(g, v).op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    let (a, b) = operands(g, v.node)?;
    match (table_angles(g, b, op), table_angles(g, a, op)) {
        (Some(f), _) => Some((a, f)),
        (None, Some(f)) => Some((b, f)),
        _ => None,
    }
}

/// The angles f of `t = Unsqueeze(op(Concat(f, f, last axis)), 1)`, through
/// casts to the value's own type and multiplications by exactly 1.
fn table_angles(g: &Graph, t: Value, op: UnaryOp) -> Option<Value> {
    if producer(g, t).op != (Op::Unsqueeze { axes: vec![1] }) {
        return None;
    }
    let mut v = input(g, t.node, 0)?;
    // Each step peels one node; exporters write two or three.
    for _ in 0..6 {
        v = match &producer(g, v).op {
            Op::Cast { to } if g.info(input(g, v.node, 0)?).dtype == *to => input(g, v.node, 0)?,
            Op::Binary(BinaryOp::Mul) => {
                let (x, one) = operands(g, v.node)?;
                if scalar(g, one) != Some(1.0) || g.info(x).shape != g.info(v).shape {
                    return None;
                }
                x
            }
            Op::Unary(u) if *u == op => {
                let doubled = input(g, v.node, 0)?;
                let rank = g.info(doubled).shape.rank() as i64;
                let last =
                    matches!(producer(g, doubled).op, Op::Concat { axis } if axis == -1 || axis == rank - 1);
                let (f, f2) = operands(g, doubled.node)?;
                return (last && g.inputs_of(doubled.node).len() == 2 && f == f2).then_some(f);
            }
            _ => return None,
        };
    }
    None
}

/// `r = Concat(Neg(x₂), x₁, last axis)` of the halves of one x: x.
fn rotate_half(g: &Graph, r: Value) -> Option<Value> {
    let rank = g.info(r).shape.rank() as i64;
    let last = matches!(producer(g, r).op, Op::Concat { axis } if axis == -1 || axis == rank - 1);
    if !last || g.inputs_of(r.node).len() != 2 {
        return None;
    }
    let (negated, x1) = operands(g, r.node)?;
    if producer(g, negated).op != Op::Unary(UnaryOp::Neg) {
        return None;
    }
    let x2 = input(g, negated.node, 0)?;
    let (x, s1, e1, a1) = slice_bounds(g, x1)?;
    let (x_, s2, e2, a2) = slice_bounds(g, x2)?;
    let d = g.info(x).shape.dims().last()?.fixed()?;
    let halves = (s1, e1, s2, e2) == (0, d / 2, d / 2, d) && a1 == rank - 1 && a2 == rank - 1;
    (x == x_ && halves && d % 2 == 0).then_some(x)
}

/// The base θ of RoPE angles `f = Transpose(MatMul(inv_freq, positions),
/// [0, 2, 1])` ([1, S, d/2]), positions `Range(0, S, 1)` (unsqueezed, cast
/// to f32) and inv_freq a constant [1, d/2, 1] (maybe expanded to its own
/// shape, cast to its own type) equal to θ^(−2i/d), i = 0..d/2, within f32
/// rounding: None when f is anything else.
pub(super) fn rope_theta(g: &Graph, f: Value) -> Option<f64> {
    if producer(g, f).op != (Op::Transpose { perm: vec![0, 2, 1] }) {
        return None;
    }
    let product = input(g, f.node, 0)?;
    if producer(g, product).op != Op::MatMul {
        return None;
    }
    let (freqs, positions) = operands(g, product.node)?;
    let freqs = through_restatements(g, freqs);
    let inv = constant(g, freqs)?;
    let half = inv.len();
    if inv.dims() != [1, half, 1] || inv.dtype() != DType::F32 || half < 2 {
        return None;
    }
    let inv = inv.to_f32_vec()?;
    if !is_range_from_zero(g, through_restatements(g, positions)) {
        return None;
    }
    // inv[1] = θ^(−2/d): θ = inv[1]^(−d/2); every other entry must agree.
    let d = 2.0 * half as f64;
    let theta = (inv[1] as f64).powf(-d / 2.0);
    let agrees = inv.iter().enumerate().all(|(i, &x)| {
        let want = theta.powf(-2.0 * i as f64 / d);
        (x as f64 - want).abs() <= 1e-5 * want
    });
    (theta.is_finite() && theta > 1.0 && agrees).then_some(theta)
}

/// `v` through the nodes that restate it: casts to f32 (positions are
/// integers), Unsqueezes, and Expands to its own shape.
fn through_restatements(g: &Graph, mut v: Value) -> Value {
    for _ in 0..8 {
        let Some(x) = input(g, v.node, 0) else {
            return v;
        };
        let restates = match &producer(g, v).op {
            Op::Cast { to: DType::F32 } | Op::Unsqueeze { .. } => true,
            Op::Expand => g.info(x).shape == g.info(v).shape,
            _ => false,
        };
        if !restates {
            return v;
        }
        v = x;
    }
    v
}

/// Whether `p` is `Range(0, _, 1)` of integers.
fn is_range_from_zero(g: &Graph, p: Value) -> bool {
    let int = |slot: usize, want: i64| {
        input(g, p.node, slot)
            .and_then(|v| constant(g, v)?.to_i64_vec())
            .is_some_and(|x| x == [want])
    };
    producer(g, p).op == Op::Range && int(0, 0) && int(2, 1) && !g.info(p).dtype.is_float()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{level_passes, Level, PassManager};

    /// The θ of each layer's tables in the TorchScript exports of the
    /// ModernBERT fixtures: global layer 0, local layer 1, each with the
    /// config's own base (family2's README). Layer 2's table, the same
    /// as layer 0's, is merged into it by the clean-ups: the graph holds
    /// exactly these two.
    #[test]
    fn each_layer_s_theta_is_recovered_from_its_tables() {
        for (case, global, local) in [
            ("modernbert-base", 160000.0, 10000.0),
            ("modernbert-cls", 500.0, 40.0),
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
                "tests/fixtures/foreign-modern/{case}-torchscript-eager.onnx"
            ));
            let mut g = crate::onnx::read_model(&path).unwrap();
            PassManager::from_names(level_passes(Level::O1))
                .unwrap()
                .run(&mut g)
                .unwrap();
            for (layer, want) in [(0, global), (1, local)] {
                // `/m/layers.…` in the base model, `/m/model/layers.…` under a head.
                let name = format!("layers.{layer}/attn/rotary_emb/Transpose");
                let node = g.node_ids().find(|&n| g.node(n).name.ends_with(&name));
                let f = Value {
                    node: node.unwrap_or_else(|| panic!("{case}: {name}")),
                    slot: 0,
                };
                let theta = rope_theta(&g, f).unwrap_or_else(|| panic!("{case} layer {layer}: no θ"));
                assert!(
                    (theta - want).abs() <= 1e-3 * want,
                    "{case} layer {layer}: θ {theta}, want {want}"
                );
            }
            let tables = g
                .node_ids()
                .filter(|&node| rope_theta(&g, Value { node, slot: 0 }).is_some())
                .count();
            // No other value is a RoPE table (the projections, the scores…).
            assert_eq!(tables, 2, "{case}");
        }
    }
}
