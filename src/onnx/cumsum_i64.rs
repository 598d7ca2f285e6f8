//! A running count of a 0/1 mask done in int64 (`CumSum(Cast<i64>(…))`) as
//! the same count in int32, cast to int64 after: torch's dynamo exporter
//! writes RoBERTa's position ids that way (`Equal(ids, pad) → Not → Cast i32
//! → Cast i64 → CumSum`), and tract (0.23) cannot evaluate it ("CumSum: TDim
//! is not a number": its int64 cast yields symbolic dims), so the file could
//! be neither checked nor run in tract. TorchScript exports count in int32,
//! which tract runs. Exact: the sums of 0/1 values along one axis are at
//! most its length, far inside int32. Other CumSums are left as they are.

use crate::ir::{DType, Graph, NodeId, Op, Value};

/// Rewrites every such CumSum of `g`; how many.
pub(super) fn rewrite(g: &mut Graph) -> Result<usize, String> {
    let sites: Vec<(NodeId, Value, Value)> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::CumSum))
        .filter_map(|id| {
            let inputs = g.inputs_of(id);
            let (data, axis) = (
                inputs.first().copied().flatten()?,
                inputs.get(1).copied().flatten()?,
            );
            let narrow = zero_one_source(g, data)?;
            Some((id, narrow, axis))
        })
        .collect();
    for &(id, narrow, axis) in &sites {
        let base = g.node(id).name.clone();
        let add = |g: &mut Graph, what: &str, op: Op, inputs: &[Value]| {
            let name = g.fresh_name(&format!("{base}.{what}"));
            g.add(&name, op, inputs).map_err(|e| e.to_string())
        };
        let as_i32 = match g.info(narrow).dtype {
            DType::I32 => narrow,
            _ => add(g, "i32", Op::Cast { to: DType::I32 }, &[narrow])?,
        };
        let count = add(g, "count_i32", Op::CumSum, &[as_i32, axis])?;
        let wide = add(g, "i64", Op::Cast { to: DType::I64 }, &[count])?;
        g.replace_uses(Value { node: id, slot: 0 }, wide);
    }
    Ok(sites.len())
}

/// The bool, or int32 cast of a bool, that the int64 value `v` casts:
/// values 0 and 1 alone.
fn zero_one_source(g: &Graph, v: Value) -> Option<Value> {
    if g.info(v).dtype != DType::I64 {
        return None;
    }
    let cast_input = |v: Value, to: DType| match g.node(v.node).op {
        Op::Cast { to: t } if t == to => g.inputs_of(v.node).first().copied().flatten(),
        _ => None,
    };
    let inner = cast_input(v, DType::I64)?;
    match g.info(inner).dtype {
        DType::Bool => Some(inner),
        DType::I32 => cast_input(inner, DType::I32)
            .filter(|b| g.info(*b).dtype == DType::Bool)
            .map(|_| inner),
        _ => None,
    }
}
