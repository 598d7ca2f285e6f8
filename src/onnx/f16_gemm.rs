//! `Gemm` on float16 operands as `MatMul` + `Add`: tract (0.23) cannot
//! translate a float16 Gemm ("expected F16 got F32" — its expansion scales
//! in f32), so an fp16 export's pooler and classifier could not be checked.
//! With alpha = beta = 1 and A not transposed (what exporters write for
//! `nn.Linear`), `A·op(B) + C` is the same computation in standard ops;
//! others are left as they are.

use crate::ir::{BinaryOp, DType, Graph, NodeId, Op, Value};

/// Rewrites every such Gemm of `g`; how many.
pub(super) fn rewrite(g: &mut Graph) -> Result<usize, String> {
    let gemms: Vec<NodeId> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Gemm { alpha, beta, trans_a: false, .. } if alpha == 1.0 && beta == 1.0))
        .filter(|&id| g.node(id).outputs[0].dtype == DType::F16)
        .collect();
    for &id in &gemms {
        let Op::Gemm { trans_b, .. } = g.node(id).op else {
            continue;
        };
        let inputs = g.inputs_of(id);
        let (Some(a), Some(b)) = (inputs[0], inputs[1]) else {
            continue;
        };
        let base = g.node(id).name.clone();
        let add = |g: &mut Graph, what: &str, op: Op, inputs: &[Value]| {
            let name = g.fresh_name(&format!("{base}.{what}"));
            g.add(&name, op, inputs).map_err(|e| e.to_string())
        };
        let b = match trans_b {
            true => add(g, "weight_t", Op::Transpose { perm: vec![1, 0] }, &[b])?,
            false => b,
        };
        let mut out = add(g, "matmul", Op::MatMul, &[a, b])?;
        if let Some(c) = inputs.get(2).copied().flatten() {
            out = add(g, "bias", Op::Binary(BinaryOp::Add), &[out, c])?;
        }
        g.replace_uses(Value { node: id, slot: 0 }, out);
    }
    Ok(gemms.len())
}
