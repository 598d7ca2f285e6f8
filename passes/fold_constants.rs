//! `fold_constants`: values known at compile time become constants.
//!
//! - An integer or bool value whose every element inference tracked as a
//!   fixed number (a `Shape` of fixed dims, a `Gather`/`Concat`/`Equal` of
//!   such) is replaced by a constant.
//! - The shape chains exporters write (`Shape → Gather → Unsqueeze →
//!   Concat → Reshape`) feed Reshape a value inference knows only
//!   symbolically, e.g. `[batch_size, sequence_length, -1, 16]`. When each
//!   symbolic entry provably equals the input dim at the same position it
//!   becomes 0 (ONNX's "copy this dim"), at most one other entry becomes -1,
//!   and the Reshape reads a constant instead: the chain is left dead.
//!
//! Never folds a value that depends on run-time data, and checks that the
//! rewritten Reshape infers the same output shape.

use crate::ir::{infer, DType, Dim, Graph, IrError, NodeId, Op, Tensor, Value};

use super::{Pass, PassReport};

pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold_constants"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut report = PassReport::default();
        let ids: Vec<NodeId> = crate::ir::canonical_order(g);
        for id in ids {
            let node = g.node(id);
            if matches!(node.op, Op::Input | Op::Constant(_)) || node.outputs.len() != 1 {
                continue;
            }
            let out = Value { node: id, slot: 0 };
            if let Some(t) = fixed_value(g, out) {
                let name = g.fresh_name(&format!("{}.folded", g.node(id).name));
                let c = g.add_const(&name, t)?;
                g.replace_uses(out, c);
                report.matches += 1;
                report.nodes_added += 1;
            } else if g.node(id).op == Op::Reshape {
                if let Some(target) = reshape_target(g, id) {
                    let name = g.fresh_name(&format!("{}.shape", g.node(id).name));
                    let c = g.add_const(&name, Tensor::vec_i64(&target))?;
                    g.set_input(id, 1, c);
                    report.matches += 1;
                    report.nodes_added += 1;
                }
            }
        }
        Ok(report)
    }
}

/// The constant a fully known integer value equals, if any.
fn fixed_value(g: &Graph, v: Value) -> Option<Tensor> {
    let info = g.info(v);
    let dims = info.shape.as_fixed()?;
    let values: Vec<i64> = info
        .known
        .as_ref()?
        .iter()
        .map(Dim::fixed)
        .collect::<Option<_>>()?;
    if values.len() != dims.iter().product::<usize>() {
        return None;
    }
    let t = Tensor::from_i64(dims.clone(), &values);
    match info.dtype {
        DType::I64 => Some(t),
        DType::I32 | DType::I8 | DType::U8 | DType::Bool => {
            let size = info.dtype.size();
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|v| v.to_le_bytes()[..size].to_vec())
                .collect();
            Tensor::from_raw(info.dtype, dims, bytes.into())
        }
        _ => None,
    }
}

/// A constant Reshape target equivalent to the node's current (symbolic) one.
fn reshape_target(g: &Graph, id: NodeId) -> Option<Vec<i64>> {
    let inputs = g.inputs_of(id);
    let (data, shape) = (
        inputs.first().copied().flatten()?,
        inputs.get(1).copied().flatten()?,
    );
    if matches!(g.node(shape.node).op, Op::Constant(_)) {
        return None;
    }
    let known = g.info(shape).known.clone()?;
    let in_dims = g.info(data).shape.dims().to_vec();
    let out_dims = g.info(Value { node: id, slot: 0 }).shape.dims().to_vec();
    let mut target = Vec::with_capacity(known.len());
    for (i, d) in known.iter().enumerate() {
        target.push(match d {
            Dim::Fixed(n) if *n > 0 || *n == -1 => *n,
            Dim::Sym(_) if in_dims.get(i) == Some(d) => 0,
            Dim::Sym(_) => -1,
            _ => return None,
        });
    }
    if target.iter().filter(|&&t| t == -1).count() > 1 {
        return None;
    }
    // The constant target must give exactly the same output type.
    let infos = [
        Some(g.info(data).clone()),
        Some(crate::ir::ValueInfo {
            dtype: DType::I64,
            shape: crate::ir::Shape::fixed(&[target.len()]),
            known: Some(target.iter().map(|&t| Dim::Fixed(t)).collect()),
        }),
    ];
    let refs: Vec<Option<&crate::ir::ValueInfo>> = infos.iter().map(Option::as_ref).collect();
    let inferred = infer(&Op::Reshape, &refs).ok()?;
    (inferred[0].shape.dims() == out_dims.as_slice()).then_some(target)
}
