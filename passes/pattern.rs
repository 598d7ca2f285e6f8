//! Small queries fusions use to match patterns without mutating the graph.

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Graph, IrError, Node, NodeId, Op, Tensor, Value};

/// The node that produces `v`.
pub fn producer(g: &Graph, v: Value) -> &Node {
    g.node(v.node)
}

/// Input `slot` of node `id`.
pub fn input(g: &Graph, id: NodeId, slot: usize) -> Option<Value> {
    g.inputs_of(id).get(slot).copied().flatten()
}

/// Both inputs of a binary node, or `None`.
pub fn operands(g: &Graph, id: NodeId) -> Option<(Value, Value)> {
    Some((input(g, id, 0)?, input(g, id, 1)?))
}

/// The constant behind `v`, if it is one.
pub fn constant(g: &Graph, v: Value) -> Option<&Tensor> {
    match &producer(g, v).op {
        Op::Constant(t) => Some(t),
        _ => None,
    }
}

/// The value of a one-element float constant.
pub fn scalar(g: &Graph, v: Value) -> Option<f32> {
    let t = constant(g, v)?;
    match t.len() {
        1 => t.to_f32_vec().map(|x| x[0]),
        _ => None,
    }
}

/// Whether `v` is a one-element float constant within 1e-4 (relative) of
/// `expected` — or within its own precision when stored in fewer bits (an
/// fp16 export's √2 is 1.4140625, 1.1e-4 off).
pub fn is_scalar(g: &Graph, v: Value, expected: f32) -> bool {
    let rel = match constant(g, v).map(Tensor::dtype) {
        Some(DType::F16) => 1e-3,
        Some(DType::BF16) => 8e-3,
        _ => 1e-4,
    };
    scalar(g, v).is_some_and(|x| (x - expected).abs() <= rel * expected.abs().max(1.0))
}

/// Of the two operands of a commutative node, the one that is not `known`
/// (when one of them is `known`).
pub fn other_operand(g: &Graph, id: NodeId, known: impl Fn(Value) -> bool) -> Option<Value> {
    let (a, b) = operands(g, id)?;
    match (known(a), known(b)) {
        (true, _) => Some(b),
        (_, true) => Some(a),
        _ => None,
    }
}

/// Whether every reader of `v` is one of `readers` (and `v` is no graph output):
/// the condition for rewriting the nodes in between without losing a value
/// someone else needs.
pub fn only_read_by(g: &Graph, v: Value, readers: &[NodeId]) -> bool {
    !g.is_output(v) && g.consumers(v).iter().all(|(n, _)| readers.contains(n))
}

/// The name of a node that replaces `nodes`: their longest common dotted
/// prefix when it is a free name (`encoder.layer.3.attention.self` for an
/// attention, `embeddings.LayerNorm` for a layer norm), else the root's
/// name plus `suffix`.
pub fn fused_name(g: &Graph, root: NodeId, nodes: &[NodeId], suffix: &str) -> String {
    let names: Vec<&str> = nodes.iter().map(|&n| g.node(n).name.as_str()).collect();
    let first: Vec<&str> = names.first().map(|n| n.split('.').collect()).unwrap_or_default();
    let mut common = first.len();
    for n in &names[1..] {
        let segs: Vec<&str> = n.split('.').collect();
        common = common.min(first.iter().zip(&segs).take_while(|(a, b)| a == b).count());
    }
    // A full name is not a prefix: keep at least one segment off every name.
    let shortest = names.iter().map(|n| n.split('.').count()).min().unwrap_or(0);
    let prefix = first[..common.min(shortest.saturating_sub(1))].join(".");
    if !prefix.is_empty() && g.find(&prefix).is_none() {
        return prefix;
    }
    g.fresh_name(&format!("{}.{suffix}", g.node(root).name))
}

/// A linear layer `Add(MatMul(x, W), b)`, Add operands in either order,
/// with W a 2-D f32 constant and b a 1-D f32 constant of W's width.
pub struct Linear {
    pub x: Value,
    pub matmul: Value,
    pub w: Value,
    pub b: Value,
}

/// The linear layer whose output is `v`, if it is one.
pub fn linear(g: &Graph, v: Value) -> Option<Linear> {
    if producer(g, v).op != Op::Binary(crate::ir::BinaryOp::Add) {
        return None;
    }
    let (p, q) = operands(g, v.node)?;
    let (matmul, b) = if constant(g, q).is_some() { (p, q) } else { (q, p) };
    if producer(g, matmul).op != Op::MatMul {
        return None;
    }
    let (x, w) = operands(g, matmul.node)?;
    let (wt, bt) = (constant(g, w)?, constant(g, b)?);
    let f32 = crate::ir::DType::F32;
    // A zero-width weight has nothing to rewrite, and every rewrite of a
    // linear divides by its width: not a linear for the passes.
    let ok = wt.dtype() == f32
        && bt.dtype() == f32
        && wt.dims().len() == 2
        && !wt.dims().contains(&0)
        && bt.dims() == [wt.dims()[1]];
    ok.then_some(Linear { x, matmul, w, b })
}

/// A linear layer without a bias, `MatMul(x, W)` with W a 2-D f32
/// constant of non-zero size: its `(x, W)`. Not when a reader of the
/// product adds a bias to it (that Add is the layer, see [`linear`]), so
/// that a biased Linear is never seen as a bare one.
pub fn bias_free_linear(g: &Graph, v: Value) -> Option<(Value, Value)> {
    if producer(g, v).op != Op::MatMul || v.slot != 0 {
        return None;
    }
    let (x, w) = operands(g, v.node)?;
    let wt = constant(g, w)?;
    let ok = wt.dtype() == DType::F32 && wt.dims().len() == 2 && !wt.dims().contains(&0);
    let biased = g
        .consumers(v)
        .iter()
        .any(|&(n, _)| linear(g, Value { node: n, slot: 0 }).is_some_and(|l| l.matmul == v));
    (ok && !biased).then_some((x, w))
}

/// Float constants concatenated along their last axis (rows stay rows):
/// how Q/K/V weights [H, Hi] and biases [Hi] are packed side by side.
pub fn concat_last_axis(g: &Graph, parts: &[Value]) -> Tensor {
    let tensors: Vec<&Tensor> = parts
        .iter()
        .map(|&v| constant(g, v).expect("checked constant"))
        .collect();
    let widths: Vec<usize> = tensors
        .iter()
        .map(|t| *t.dims().last().expect("rank >= 1"))
        .collect();
    let values: Vec<Vec<f32>> = tensors
        .iter()
        .map(|t| t.to_f32_vec().expect("checked float"))
        .collect();
    let rows = tensors[0].len().checked_div(widths[0]).unwrap_or(0);
    let mut out = Vec::with_capacity(values.iter().map(Vec::len).sum());
    for r in 0..rows {
        for (v, &w) in values.iter().zip(&widths) {
            out.extend_from_slice(&v[r * w..(r + 1) * w]);
        }
    }
    let mut dims = tensors[0].dims().to_vec();
    *dims.last_mut().expect("rank >= 1") = widths.iter().sum();
    Tensor::from_f32(dims, &out)
}

/// `x = Add(y, bias)` (either order) with bias a 1-D f32 constant as wide
/// as x's last dim and y computed at run time: (y, bias).
pub fn bias_add(g: &Graph, x: Value) -> Option<(Value, Value)> {
    if producer(g, x).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (p, q) = operands(g, x.node)?;
    let width = g.info(x).shape.dims().last()?.clone();
    let is_bias = |v: Value| {
        constant(g, v).is_some_and(|t| t.dtype() == DType::F32 && t.dims().len() == 1)
            && g.info(v).shape.dims() == [width.clone()]
    };
    match (is_bias(p), is_bias(q)) {
        (false, true) if constant(g, p).is_none() => Some((p, q)),
        (true, false) if constant(g, q).is_none() => Some((q, p)),
        _ => None,
    }
}

/// A layer norm over the last axis reading `sum = Add(a, b)`, where a and b
/// are run-time 3-D values of one shape and the sum is read only by the
/// layer norm: the residual connection of a post-norm transformer layer.
pub struct ResidualLayerNorm {
    pub sum: Value,
    pub a: Value,
    pub b: Value,
    pub epsilon: f32,
}

/// [`ResidualLayerNorm`] at `root`, if that is what it is.
pub fn residual_layer_norm(g: &Graph, root: NodeId) -> Option<ResidualLayerNorm> {
    let Op::LayerNorm { axis: -1, epsilon } = producer(g, Value { node: root, slot: 0 }).op else {
        return None;
    };
    let sum = input(g, root, 0)?;
    if producer(g, sum).op != Op::Binary(BinaryOp::Add) || !only_read_by(g, sum, &[root]) {
        return None;
    }
    let (a, b) = operands(g, sum.node)?;
    let shape = &g.info(a).shape;
    let runtime = constant(g, a).is_none() && constant(g, b).is_none();
    (shape.rank() == 3 && g.info(b).shape == *shape && runtime).then_some(ResidualLayerNorm {
        sum,
        a,
        b,
        epsilon,
    })
}

/// `v = Slice(x, [start], [end], [axis])` over one axis with constant
/// bounds, steps absent or `[1]`: (x, start, end, axis), the axis made
/// non-negative and an end past the axis clamped to its length (exporters
/// write `i64::MAX` for "to the end").
pub fn slice_bounds(g: &Graph, v: Value) -> Option<(Value, i64, i64, i64)> {
    let inputs = g.inputs_of(v.node);
    if producer(g, v).op != Op::Slice || !(4..=5).contains(&inputs.len()) {
        return None;
    }
    let one = |slot: usize| -> Option<i64> {
        match constant(g, input(g, v.node, slot)?)?.to_i64_vec()?.as_slice() {
            [n] => Some(*n),
            _ => None,
        }
    };
    if inputs.len() == 5 && one(4)? != 1 {
        return None;
    }
    let x = input(g, v.node, 0)?;
    let dims = g.info(x).shape.dims();
    let rank = dims.len() as i64;
    let axis = one(3)?;
    let axis = if axis < 0 { axis + rank } else { axis };
    let length = dims.get(usize::try_from(axis).ok()?)?.fixed();
    let (start, end) = (one(1)?, one(2)?);
    let end = match length {
        Some(len) if end > len => len,
        _ => end,
    };
    (start >= 0 && end > start).then_some((x, start, end, axis))
}

/// i64 constants (slice bounds, shapes) a rewrite needs at every match,
/// made once per value and shared: one node per distinct constant.
#[derive(Default)]
pub struct SharedInts(HashMap<Vec<i64>, Value>);

impl SharedInts {
    /// The constant `v`, named `name` (made fresh) where it is made.
    pub fn get(&mut self, g: &mut Graph, name: &str, v: &[i64]) -> Result<Value, IrError> {
        if let Some(&c) = self.0.get(v) {
            return Ok(c);
        }
        let c = g.add_const(&g.fresh_name(name), Tensor::vec_i64(v))?;
        self.0.insert(v.to_vec(), c);
        Ok(c)
    }
}

/// Whether `v` is computed from constants only: no graph input reaches it
/// (runtimes fold such a value once, at load).
pub fn computed_from_constants(g: &Graph, v: Value) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![v.node];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        match g.node(id).op {
            Op::Input => return false,
            Op::Constant(_) => {}
            _ => stack.extend(g.inputs_of(id).into_iter().flatten().map(|v| v.node)),
        }
    }
    true
}
