//! `fuse_gelu`: GELU written out in elementwise ops → `Gelu` (opset 20).
//!
//! Exact form: `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)`, also with the
//! 0.5 inside (`Mul(x, Mul(0.5, Add(…)))`, dynamo's spelling) and with
//! `Mul(x, 1/√2)` inside the erf → `Gelu{approximate="none"}`.
//! Tanh form: `Mul(Mul(x, Add(Tanh(Mul(Add(x, Mul(Pow(x, 3), 0.044715)),
//! √(2/π))), 1)), 0.5)` → `Gelu{approximate="tanh"}`.
//! Commutative operands may come in either order; every intermediate must
//! be read only inside the pattern.

use std::f32::consts::{FRAC_1_SQRT_2, SQRT_2};

use crate::ir::{BinaryOp, GeluApproximation, Graph, IrError, NodeId, Op, UnaryOp, Value};

use super::pattern::{fused_name, input, is_scalar, only_read_by, operands, other_operand, producer};
use super::{Pass, PassReport};

pub struct FuseGelu;

impl Pass for FuseGelu {
    fn name(&self) -> &'static str {
        "fuse_gelu"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<(NodeId, Value, GeluApproximation, Vec<NodeId>)> = g
            .node_ids()
            .filter_map(|id| match_at(g, id).map(|(x, a, nodes)| (id, x, a, nodes)))
            .collect();
        for (root, x, approximate, nodes) in &matches {
            let (root, x, approximate) = (*root, *x, *approximate);
            let name = fused_name(g, root, nodes, "Gelu");
            let fused = g.add(&name, Op::Gelu { approximate }, &[x])?;
            g.replace_uses(Value { node: root, slot: 0 }, fused);
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: matches.len(),
            nodes_removed: 0,
        })
    }
}

fn binary(g: &Graph, v: Value, op: BinaryOp) -> bool {
    producer(g, v).op == Op::Binary(op)
}

/// The `x` and form of a GELU ending at node `root`.
fn match_at(g: &Graph, root: NodeId) -> Option<(Value, GeluApproximation, Vec<NodeId>)> {
    let out = Value { node: root, slot: 0 };
    if !binary(g, out, BinaryOp::Mul) {
        return None;
    }
    // The 0.5 goes either outside, Mul(Mul(x, a), 0.5) as TorchScript
    // writes it, or inside, Mul(x, Mul(0.5, a)) as dynamo writes it; in
    // both a = Add(inner, 1). Candidates are (x, a, the Mul between).
    let mut candidates = Vec::new();
    let (p, q) = operands(g, root)?;
    for (outer, half) in [(p, q), (q, p)] {
        if is_scalar(g, half, 0.5) && binary(g, outer, BinaryOp::Mul) {
            let (r, s) = operands(g, outer.node)?;
            candidates.extend([(r, s, outer), (s, r, outer)]);
        }
        if binary(g, half, BinaryOp::Mul) {
            if let Some(a) = other_operand(g, half.node, |v| is_scalar(g, v, 0.5)) {
                candidates.push((outer, a, half));
            }
        }
    }
    for (x, a, m) in candidates {
        if !binary(g, a, BinaryOp::Add) {
            continue;
        }
        let Some(inner) = other_operand(g, a.node, |v| is_scalar(g, v, 1.0)) else {
            continue;
        };
        let found = match producer(g, inner).op {
            Op::Unary(UnaryOp::Erf) => {
                erf_argument_is(g, inner, x).map(|nodes| (nodes, GeluApproximation::None))
            }
            Op::Unary(UnaryOp::Tanh) => {
                tanh_argument_is(g, inner, x).map(|nodes| (nodes, GeluApproximation::Tanh))
            }
            _ => None,
        };
        let Some((mut chain, form)) = found else { continue };
        chain.extend([inner.node, a.node, m.node, root]);
        // Each intermediate is read only by the next node of the chain.
        let private = chain
            .windows(2)
            .all(|w| only_read_by(g, Value { node: w[0], slot: 0 }, &[w[1]]));
        if private {
            return Some((x, form, chain));
        }
    }
    None
}

/// `Erf(Div(x, √2))` or `Erf(Mul(x, 1/√2))`: the nodes before the Erf.
fn erf_argument_is(g: &Graph, erf: Value, x: Value) -> Option<Vec<NodeId>> {
    let arg = input(g, erf.node, 0)?;
    let (a, c) = operands(g, arg.node)?;
    let ok = a == x
        && match producer(g, arg).op {
            Op::Binary(BinaryOp::Div) => is_scalar(g, c, SQRT_2),
            Op::Binary(BinaryOp::Mul) => is_scalar(g, c, FRAC_1_SQRT_2),
            _ => false,
        };
    ok.then(|| vec![arg.node])
}

/// `Tanh(Mul(Add(x, Mul(Pow(x, 3), 0.044715)), √(2/π)))`: the nodes before the Tanh.
fn tanh_argument_is(g: &Graph, tanh: Value, x: Value) -> Option<Vec<NodeId>> {
    let k = (2.0f64 / std::f64::consts::PI).sqrt() as f32;
    let scaled = input(g, tanh.node, 0)?;
    if !binary(g, scaled, BinaryOp::Mul) {
        return None;
    }
    let sum = other_operand(g, scaled.node, |v| is_scalar(g, v, k))?;
    if !binary(g, sum, BinaryOp::Add) {
        return None;
    }
    let cubic = other_operand(g, sum.node, |v| v == x)?;
    if !binary(g, cubic, BinaryOp::Mul) {
        return None;
    }
    let cube = other_operand(g, cubic.node, |v| is_scalar(g, v, 0.044715))?;
    let (base, e) = operands(g, cube.node)?;
    (binary(g, cube, BinaryOp::Pow) && base == x && is_scalar(g, e, 3.0))
        .then(|| vec![cube.node, cubic.node, sum.node, scaled.node])
}
