//! `fuse_layer_norm`: the decomposed layer norm PyTorch's exporters write at
//! opset < 17 (and bertc's builder writes) → `LayerNormalization`.
//!
//! Matches, over the last axis:
//! `Add(Mul(Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), ε))), γ), β)` with
//! `d = Sub(x, ReduceMean(x))`, the variance also as `Mul(d, d)`, and Add/Mul
//! operands in either order. γ and β must be constants of the normalized
//! shape, ε a scalar constant, and every intermediate read only inside the
//! pattern. A norm without bias (ModernBERT's, `norm_bias: false`) ends at
//! `Mul(…, γ)` and becomes `LayerNormalization(x, γ)`: β is optional in
//! ONNX, and a zero β constant would count as parameters it does not have.
//!
//! RMSNorm (EuroBERT's) is the same chain without the centring,
//! `Mul(Div(x, Sqrt(Add(ReduceMean(Pow(x, 2)), ε))), γ)`, and becomes
//! `RMSNormalization(x, γ)` (opset 23; tract, onnxruntime and OpenVINO
//! read it). It has no bias input, so a β after it leaves it unfused.

use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, UnaryOp, Value};

use super::pattern::{constant, fused_name, input, only_read_by, operands, other_operand, producer, scalar};
use super::{Pass, PassReport};

pub struct FuseLayerNorm;

struct Match {
    root: NodeId,
    nodes: Vec<NodeId>,
    x: Value,
    gamma: Value,
    beta: Option<Value>,
    epsilon: f32,
    /// RMSNorm: no mean subtracted.
    rms: bool,
}

impl Pass for FuseLayerNorm {
    fn name(&self) -> &'static str {
        "fuse_layer_norm"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        for m in &matches {
            let name = fused_name(g, m.root, &m.nodes, "LayerNormalization");
            let (axis, epsilon) = (-1, m.epsilon);
            let op = match m.rms {
                true => Op::RmsNorm { axis, epsilon },
                false => Op::LayerNorm { axis, epsilon },
            };
            let inputs: Vec<Value> = [Some(m.x), Some(m.gamma), m.beta].into_iter().flatten().collect();
            let fused = g.add(&name, op, &inputs)?;
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
            nodes_added: matches.len(),
            nodes_removed: 0,
        })
    }
}

fn is_binary(g: &Graph, v: Value, op: BinaryOp) -> bool {
    producer(g, v).op == Op::Binary(op)
}

fn is_last_axis_mean(g: &Graph, v: Value) -> Option<Value> {
    let Op::ReduceMean { axes, keepdims: true } = &producer(g, v).op else {
        return None;
    };
    let x = input(g, v.node, 0)?;
    let rank = g.info(x).shape.rank() as i64;
    (axes.len() == 1 && (axes[0] == -1 || axes[0] == rank - 1)).then_some(x)
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    match_biased(g, root).or_else(|| match_unbiased(g, root))
}

/// `Add(Mul(normed, γ), β)` at `root`.
fn match_biased(g: &Graph, root: NodeId) -> Option<Match> {
    let out = Value { node: root, slot: 0 };
    if !is_binary(g, out, BinaryOp::Add) {
        return None;
    }
    // Add(scaled, β), constants on either side.
    let is_const = |v: Value| constant(g, v).is_some();
    let scaled = other_operand(g, root, is_const)?;
    let beta = operands(g, root).map(|(a, b)| if a == scaled { b } else { a })?;
    let mut m = match_scaled(g, scaled)?;
    if m.rms || !fits_width(g, m.x, beta) || !only_read_by(g, scaled, &[root]) {
        return None;
    }
    m.root = root;
    m.nodes.insert(0, root);
    m.beta = Some(beta);
    Some(m)
}

/// `Mul(normed, γ)` at `root` that no biased norm continues.
fn match_unbiased(g: &Graph, root: NodeId) -> Option<Match> {
    let scaled = Value { node: root, slot: 0 };
    let continued = g
        .consumers(scaled)
        .into_iter()
        .any(|(reader, _)| match_biased(g, reader).is_some());
    if continued {
        return None;
    }
    match_scaled(g, scaled)
}

/// Whether constant `p` is a float vector as wide as the last axis of `x`.
fn fits_width(g: &Graph, x: Value, p: Value) -> bool {
    let (Some(width), Some(t)) = (g.info(x).shape.dims().last(), constant(g, p)) else {
        return false;
    };
    t.dims().len() == 1 && crate::ir::Dim::Fixed(t.dims()[0] as i64) == *width && t.dtype().is_float()
}

/// The norm up to `Mul(normed, γ)` (`scaled`), rooted there, without β.
fn match_scaled(g: &Graph, scaled: Value) -> Option<Match> {
    // Mul(normed, γ), the constant on either side.
    let is_const = |v: Value| constant(g, v).is_some();
    if !is_binary(g, scaled, BinaryOp::Mul) {
        return None;
    }
    let normed = other_operand(g, scaled.node, is_const)?;
    let gamma = operands(g, scaled.node).map(|(a, b)| if a == normed { b } else { a })?;
    if !is_binary(g, normed, BinaryOp::Div) {
        return None;
    }
    let (d, std) = operands(g, normed.node)?;
    if producer(g, std).op != Op::Unary(UnaryOp::Sqrt) {
        return None;
    }
    let var_eps = input(g, std.node, 0)?;
    if !is_binary(g, var_eps, BinaryOp::Add) {
        return None;
    }
    let var = other_operand(g, var_eps.node, |v| scalar(g, v).is_some())?;
    let epsilon = operands(g, var_eps.node).and_then(|(a, b)| scalar(g, if a == var { b } else { a }))?;
    let squared = is_last_axis_mean(g, var)?;
    let square_ok = match &producer(g, squared).op {
        Op::Binary(BinaryOp::Pow) => {
            operands(g, squared.node).is_some_and(|(a, e)| a == d && scalar(g, e) == Some(2.0))
        }
        Op::Binary(BinaryOp::Mul) => operands(g, squared.node) == Some((d, d)),
        _ => false,
    };
    if !square_ok {
        return None;
    }
    // `d = x − mean(x)`: a layer norm; any other `d` is RMSNorm's own input.
    let centred = match is_binary(g, d, BinaryOp::Sub) {
        true => operands(g, d.node).filter(|&(x, mean)| is_last_axis_mean(g, mean) == Some(x)),
        false => None,
    };
    let Some((x, mean)) = centred else {
        return match_rms(g, scaled, gamma, d, epsilon, [normed, std, var_eps, var, squared]);
    };
    // γ must fit the normalized (last) dimension.
    if !fits_width(g, x, gamma) {
        return None;
    }
    let chain = [normed, std, var_eps, var, squared];
    let mut inside = scaling_chain(scaled, chain);
    inside.push(d.node);
    let private = scaling_chain_is_private(g, scaled, chain)
        && only_read_by(g, d, &inside)
        && only_read_by(g, mean, &[d.node]);
    let mut nodes = inside;
    nodes.push(mean.node);
    private.then_some(Match {
        root: scaled.node,
        nodes,
        x,
        gamma,
        beta: None,
        epsilon,
        rms: false,
    })
}

/// The nodes from `scaled` = `Mul(normed, γ)` back to `squared`, the chain
/// both norms share: `[normed, std, var_eps, var, squared]` in that order.
fn scaling_chain(scaled: Value, chain: [Value; 5]) -> Vec<NodeId> {
    [scaled].iter().chain(&chain).map(|v| v.node).collect()
}

/// Whether each value of the shared chain is read only by the next node up.
fn scaling_chain_is_private(g: &Graph, scaled: Value, chain: [Value; 5]) -> bool {
    let readers = [scaled].into_iter().chain(chain);
    chain
        .iter()
        .zip(readers)
        .all(|(v, reader)| only_read_by(g, *v, &[reader.node]))
}

/// RMSNorm at `Mul(normed, γ)` (`scaled`): `normed = Div(x, std)`, `std`
/// = `Sqrt(var_eps)`, `var_eps = Add(var, ε)`, `var` the last-axis mean of
/// `squared = x²`. `x` may have other readers (the residual stream).
fn match_rms(
    g: &Graph,
    scaled: Value,
    gamma: Value,
    x: Value,
    epsilon: f32,
    [normed, std, var_eps, var, squared]: [Value; 5],
) -> Option<Match> {
    if !fits_width(g, x, gamma) || operands(g, normed.node)?.0 != x {
        return None;
    }
    let chain = [normed, std, var_eps, var, squared];
    scaling_chain_is_private(g, scaled, chain).then_some(Match {
        root: scaled.node,
        nodes: scaling_chain(scaled, chain),
        x,
        gamma,
        beta: None,
        epsilon,
        rms: true,
    })
}
