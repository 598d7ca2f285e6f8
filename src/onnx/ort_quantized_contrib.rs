//! onnxruntime's int8 contrib ops read as the f32 ops they quantize (see
//! `ort_quantized`): what `quantize_dynamic` writes for an
//! onnxruntime-optimized model — `QAttention`, `QEmbedLayerNormalization`
//! and the integer products onnxruntime then fuses at load
//! (`DynamicQuantizeMatMul`, `MatMulIntegerToFloat`). Attention and the
//! embeddings become the f32 contrib ops `ort_forms` writes in standard
//! ops next; products become `MatMul (+ bias)`.

use crate::ir::{ContribOp, Graph, NodeId, Op, Tensor, Value};

use super::ort_quantized::{
    column_weight, constant, dequantize_values, dynamic_input, error, input, named_const, product,
    Dequantized, Quantization,
};
use super::OnnxError;

/// Reads contrib node `id` as f32 if it is one of onnxruntime's int8 ops;
/// whether it was (a product, attention or embeddings). `QAttention` and
/// `QEmbedLayerNormalization` of another form are refused; a fused product
/// of another form is left as it is (onnxruntime runs it).
pub(super) fn dequantize(g: &mut Graph, id: NodeId, found: &mut Dequantized) -> Result<bool, OnnxError> {
    let Op::Contrib(op) = g.node(id).op.clone() else {
        return Ok(false);
    };
    let inputs = g.inputs_of(id);
    let at = |slot: usize| inputs.get(slot).copied().flatten();
    let new = match op {
        ContribOp::DynamicQuantizeMatMul => {
            let (a, b, scale) = (input(g, id, 0)?, input(g, id, 1)?, input(g, id, 2)?);
            let Some(w) = column_weight(g, b, scale, at(3)) else {
                return Ok(false);
            };
            product(g, id, a, b, w, at(4))?
        }
        ContribOp::MatMulIntegerToFloat => {
            let (a, b, a_scale, b_scale) = (
                input(g, id, 0)?,
                input(g, id, 1)?,
                input(g, id, 2)?,
                input(g, id, 3)?,
            );
            let x = match dynamic_input(g, a, Some(a_scale), at(4)) {
                Some(x) => Some(x),
                None => {
                    let x = static_input(g, a, a_scale, at(4));
                    found.activation_pairs += usize::from(x.is_some());
                    x
                }
            };
            let (Some(x), Some(w)) = (x, column_weight(g, b, b_scale, at(5))) else {
                return Ok(false);
            };
            product(g, id, x, b, w, at(6))?
        }
        ContribOp::QAttention {
            num_heads,
            scale,
            mask_filter_value,
        } => {
            if at(8).is_some() {
                return Err(error(g, id, "a past state (input 8) is not supported"));
            }
            let (a, b, bias, a_scale, b_scale) = (
                input(g, id, 0)?,
                input(g, id, 1)?,
                input(g, id, 2)?,
                input(g, id, 3)?,
                input(g, id, 4)?,
            );
            let x = dynamic_input(g, a, Some(a_scale), at(6)).ok_or_else(|| {
                error(
                    g,
                    id,
                    "its input is not DynamicQuantizeLinear's output with that op's scale and zero point, the \
                     form quantize_dynamic writes and the only one bertc reads",
                )
            })?;
            let w = column_weight(g, b, b_scale, at(7)).ok_or_else(|| {
                error(
                    g,
                    id,
                    "the weights are not a constant with constant per-column scales",
                )
            })?;
            let w = named_const(g, id, b, w)?;
            let attention = Op::Contrib(ContribOp::Attention {
                num_heads,
                scale,
                mask_filter_value,
            });
            let name = g.fresh_name(&g.node(id).name.clone());
            g.add_node(&name, attention, &[Some(x), Some(w), Some(bias), at(5)])
                .map(|node| Value { node, slot: 0 })
                .map_err(|e| error(g, id, e))?
        }
        ContribOp::QEmbedLayerNorm { epsilon } => {
            // Inputs 2..7 (word, position, segment tables, gamma, beta),
            // their scales at 8..13 and zero points at 13..18.
            // segment_ids (1) and the segment table (4) may be absent
            // (DistilBERT), as in EmbedLayerNormalization.
            let mut read = vec![Some(input(g, id, 0)?), at(1)];
            for k in 2..7 {
                if k == 4 && at(4).is_none() {
                    read.push(None);
                    continue;
                }
                let (q, scale) = (input(g, id, k)?, input(g, id, k + 6)?);
                let values = per_tensor(g, q, scale, at(k + 11)).ok_or_else(|| {
                    error(
                        g,
                        id,
                        format!("input {k} is not a constant with a constant scalar scale and zero point"),
                    )
                })?;
                read.push(Some(named_const(g, id, q, values)?));
            }
            read.push(at(7));
            let name = g.fresh_name(&g.node(id).name.clone());
            let node = g
                .add_node(&name, Op::Contrib(ContribOp::EmbedLayerNorm { epsilon }), &read)
                .map_err(|e| error(g, id, e))?;
            g.replace_uses(Value { node: id, slot: 1 }, Value { node, slot: 1 });
            Value { node, slot: 0 }
        }
        _ => return Ok(false),
    };
    g.replace_uses(Value { node: id, slot: 0 }, new);
    Ok(true)
}

/// `x` when `a` is `QuantizeLinear(x)` with the constant `scale` and
/// `zero` point the product reads (static activation quantization).
fn static_input(g: &Graph, a: Value, scale: Value, zero: Option<Value>) -> Option<Value> {
    let q = a.node;
    if !matches!(g.node(q).op, Op::QuantizeLinear { .. }) {
        return None;
    }
    let inputs = g.inputs_of(q);
    let same = |theirs: Option<Value>, ours: Option<Value>| match (theirs, ours) {
        (None, None) => true,
        (Some(t), Some(o)) => constant(g, t).zip(constant(g, o)).is_some_and(|(t, o)| t == o),
        _ => false,
    };
    (same(inputs.get(1).copied().flatten(), Some(scale)) && same(inputs.get(2).copied().flatten(), zero))
        .then_some(inputs[0])
        .flatten()
}

/// The f32 values of constant `q` under a constant scalar scale and zero
/// point (absent: 0).
fn per_tensor(g: &Graph, q: Value, scale: Value, zero: Option<Value>) -> Option<Tensor> {
    let scale = constant(g, scale)?.to_f32_vec()?;
    let zero = match zero {
        None => vec![0],
        Some(z) => constant(g, z)?.to_i64_vec()?,
    };
    if scale.len() != 1 || zero.len() != 1 {
        return None;
    }
    let q = constant(g, q)?;
    dequantize_values(
        q,
        &Quantization {
            scale,
            zero,
            axis: None,
        },
    )
    .ok()
}
