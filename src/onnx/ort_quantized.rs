//! onnxruntime's quantized files read as the f32 model they quantize, so
//! the passes see its attention, norms and GELUs and bertc can write its
//! own int8 form of it for each target.
//!
//! `quantize_static` (QDQ) puts a `QuantizeLinear → DequantizeLinear` pair
//! after nearly every op — inside attention, around the norms and every
//! piece of the GELU — and stores every initializer quantized, read
//! through `DequantizeLinear`; `quantize_dynamic` writes each weight
//! product as `DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scales)`
//! and reads int8 embedding tables through `Gather → DequantizeLinear`. No
//! fusion pattern matches through either, and tract can only run them as
//! written. Here:
//! - a pair whose two halves share one scale and zero point is activation
//!   quantization (it rounds the value to its int8 grid and back): the
//!   value is read unrounded;
//! - `DequantizeLinear` of a quantized constant (a weight, a bias, a norm's
//!   gamma or beta, an embedding table, directly or through a `Gather`) is
//!   the f32 constant it gives;
//! - a dynamic integer product is the `MatMul` of the f32 input and the
//!   dequantized weight; onnxruntime's int8 contrib ops are their f32 ops
//!   (`ort_quantized_contrib`).
//!
//! What onnxruntime rounded the activations to is not kept: the pipeline
//! writes bertc's own int8 form of the result for the target (see
//! `crate::pipeline::imported_precision`), quantizing the dequantized
//! weights again. Scales must be scalars, or one per channel along the
//! op's axis; anything else is refused by node.

use crate::ir::{DType, Graph, NodeId, Op, Tensor, Value};
use crate::passes::{DeadNodeElimination, Pass};

use super::OnnxError;

/// How onnxruntime quantized a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizedBy {
    /// `quantize_dynamic`: integer products, activations scaled at run time.
    Dynamic,
    /// `quantize_static` in the QDQ format: calibrated activation scales.
    StaticQdq,
}

/// What [`dequantize`] found and rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dequantized {
    /// The quantization the file holds, if any.
    pub by: Option<QuantizedBy>,
    /// Quantized constants (weights, biases, norms, tables) now f32.
    pub constants: usize,
    /// Q → DQ pairs on activations read unrounded.
    pub activation_pairs: usize,
    /// Int8 products (`MatMulInteger` chains, `DynamicQuantizeMatMul`,
    /// `MatMulIntegerToFloat`) now f32 `MatMul`s, and `QAttention` /
    /// `QEmbedLayerNormalization` now their f32 contrib ops.
    pub products: usize,
}

/// `g` with onnxruntime's quantization read as the f32 it stands for (see
/// the module doc). A graph without any is left untouched.
pub fn dequantize(g: &mut Graph) -> Result<Dequantized, OnnxError> {
    let mut found = Dequantized::default();
    for id in ops_of(g, |op| matches!(op, Op::DequantizeLinear { .. })) {
        let x = input(g, id, 0)?;
        match &g.node(x.node).op {
            Op::QuantizeLinear { .. } if same_quantization(g, x.node, id)? => {
                let rounded = input(g, x.node, 0)?;
                if !is_constant(g, rounded) {
                    found.activation_pairs += 1;
                }
                g.replace_uses(Value { node: id, slot: 0 }, rounded);
            }
            Op::Constant(_) if quantization(g, id, 0).is_some() => {
                let f32 = dequantized_constant(g, id, x)?;
                g.replace_uses(Value { node: id, slot: 0 }, f32);
                found.constants += 1;
            }
            // A per-tensor scale commutes with the row lookup.
            Op::Gather { axis } if is_constant(g, input(g, x.node, 0)?) && per_tensor(g, id) => {
                let axis = *axis;
                let (table, ids) = (input(g, x.node, 0)?, input(g, x.node, 1)?);
                let f32 = dequantized_constant(g, id, table)?;
                let name = g.fresh_name(&g.node(x.node).name.clone());
                let gathered = g
                    .add(&name, Op::Gather { axis }, &[f32, ids])
                    .map_err(|e| error(g, id, e))?;
                g.replace_uses(Value { node: id, slot: 0 }, gathered);
                found.constants += 1;
            }
            _ => {}
        }
    }
    for id in ops_of(g, |op| matches!(op, Op::MatMulInteger)) {
        found.products += usize::from(dynamic_product(g, id)?);
    }
    for id in ops_of(g, |op| matches!(op, Op::Contrib(_))) {
        let read = super::ort_quantized_contrib::dequantize(g, id, &mut found)?;
        found.products += usize::from(read);
    }
    found.by = if found.activation_pairs > 0 {
        Some(QuantizedBy::StaticQdq)
    } else if found.products > 0 {
        Some(QuantizedBy::Dynamic)
    } else {
        None
    };
    if found != Dequantized::default() {
        DeadNodeElimination
            .run(g)
            .map_err(|e| OnnxError::Decode(e.to_string()))?;
    }
    Ok(found)
}

/// The nodes whose op matches, in a fixed order.
fn ops_of(g: &Graph, matches: impl Fn(&Op) -> bool) -> Vec<NodeId> {
    crate::ir::canonical_order(g)
        .into_iter()
        .filter(|&id| matches(&g.node(id).op))
        .collect()
}

pub(super) fn input(g: &Graph, id: NodeId, slot: usize) -> Result<Value, OnnxError> {
    g.inputs_of(id)
        .get(slot)
        .copied()
        .flatten()
        .ok_or_else(|| error(g, id, format!("input {slot} is missing")))
}

pub(super) fn constant(g: &Graph, v: Value) -> Option<&Tensor> {
    match &g.node(v.node).op {
        Op::Constant(t) => Some(t),
        _ => None,
    }
}

fn is_constant(g: &Graph, v: Value) -> bool {
    constant(g, v).is_some()
}

pub(super) fn error(g: &Graph, id: NodeId, reason: impl ToString) -> OnnxError {
    OnnxError::Quantized {
        node: g.node(id).name.clone(),
        op: g.node(id).op.op_type(),
        reason: reason.to_string(),
    }
}

/// A Q or DQ node's scale and zero point (0 when absent), one entry per
/// channel, and the axis they run along (`None`: per tensor).
pub(super) struct Quantization {
    pub scale: Vec<f32>,
    pub zero: Vec<i64>,
    pub axis: Option<usize>,
}

/// `None` when the scale or zero point is computed at run time (the node
/// is then left as it is: tract and the runtimes run it as written).
/// Their shapes were checked when the file was imported.
fn quantization(g: &Graph, id: NodeId, rank: usize) -> Option<Quantization> {
    let axis = match g.node(id).op {
        Op::QuantizeLinear { axis } | Op::DequantizeLinear { axis } => axis,
        _ => return None,
    };
    let scale = constant(g, g.inputs_of(id).get(1).copied().flatten()?)?.to_f32_vec()?;
    let zero = match g.inputs_of(id).get(2).copied().flatten() {
        None => vec![0; scale.len()],
        Some(z) => constant(g, z)?.to_i64_vec()?,
    };
    if scale.len() == 1 && zero.len() == 1 {
        return Some(Quantization {
            scale,
            zero,
            axis: None,
        });
    }
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis }).ok()?;
    Some(Quantization {
        scale,
        zero,
        axis: Some(axis),
    })
}

fn per_tensor(g: &Graph, id: NodeId) -> bool {
    quantization(g, id, 0).is_some_and(|q| q.axis.is_none())
}

/// Whether DQ `dq` undoes exactly what Q `q` did: the same constant
/// scales, zero points and axis (a pair that re-scales is left alone).
fn same_quantization(g: &Graph, q: NodeId, dq: NodeId) -> Result<bool, OnnxError> {
    let rank = g.info(input(g, q, 0)?).shape.rank();
    Ok(match (quantization(g, q, rank), quantization(g, dq, rank)) {
        (Some(a), Some(b)) => a.scale == b.scale && a.zero == b.zero && a.axis == b.axis,
        _ => false,
    })
}

/// `(x - zero) · scale` of the quantized constant `x` that DQ-like node
/// `id` reads, added as an f32 constant named after it.
pub(super) fn dequantized_constant(g: &mut Graph, id: NodeId, x: Value) -> Result<Value, OnnxError> {
    let t = constant(g, x)
        .cloned()
        .ok_or_else(|| error(g, id, "the quantized input is not a constant"))?;
    let q = quantization(g, id, t.dims().len())
        .ok_or_else(|| error(g, id, "the scale or zero point is not a constant"))?;
    let f32 = dequantize_values(&t, &q).map_err(|reason| error(g, id, reason))?;
    named_const(g, id, x, f32)
}

/// `t` (read by node `id`) added as a constant named after the quantized
/// constant `q` it stands for, without onnxruntime's `_quantized` suffix.
pub(super) fn named_const(g: &mut Graph, id: NodeId, q: Value, t: Tensor) -> Result<Value, OnnxError> {
    let base = g.node(q.node).name.clone();
    let name = g.fresh_name(base.strip_suffix("_quantized").unwrap_or(&base));
    g.add_const(&name, t).map_err(|e| error(g, id, e))
}

pub(super) fn dequantize_values(t: &Tensor, q: &Quantization) -> Result<Tensor, String> {
    if !matches!(t.dtype(), DType::I8 | DType::U8 | DType::I32) {
        return Err(format!(
            "the quantized tensor is {:?}, not int8, uint8 or int32",
            t.dtype()
        ));
    }
    let values = t.to_i64_vec().expect("integer dtypes widen to i64");
    let dims = t.dims();
    let (channels, inner) = match q.axis {
        None => (1, 1),
        Some(axis) => (dims[axis], dims[axis + 1..].iter().product::<usize>()),
    };
    if channels != q.scale.len() {
        return Err(format!(
            "{} scales for {channels} channels of a {dims:?} tensor",
            q.scale.len()
        ));
    }
    let out: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            (v - q.zero[c]) as f32 * q.scale[c]
        })
        .collect();
    Ok(Tensor::from_f32(dims.to_vec(), &out))
}

/// `Mul(Cast<f32>(MatMulInteger(DynamicQuantizeLinear(x), Wq)), x_scale ·
/// w_scale)` as `MatMul(x, W)`; false (left as it is) for any other form.
fn dynamic_product(g: &mut Graph, id: NodeId) -> Result<bool, OnnxError> {
    let inputs = g.inputs_of(id);
    let (Some(a), Some(b)) = (inputs[0], inputs.get(1).copied().flatten()) else {
        return Ok(false);
    };
    let Some(scaled) = single_reader(g, Value { node: id, slot: 0 })
        .filter(|&c| g.node(c).op == Op::Cast { to: DType::F32 })
        .and_then(|c| single_reader(g, Value { node: c, slot: 0 }))
        .filter(|&m| g.node(m).op == Op::Binary(crate::ir::BinaryOp::Mul))
    else {
        return Ok(false);
    };
    // The other factor: x_scale · w_scale, w_scale one per output column.
    let factor = g
        .inputs_of(scaled)
        .into_iter()
        .flatten()
        .find(|v| g.node(v.node).op != Op::Cast { to: DType::F32 });
    let Some(factor) = factor.filter(|f| g.node(f.node).op == Op::Binary(crate::ir::BinaryOp::Mul)) else {
        return Ok(false);
    };
    let x_scale = Value {
        node: a.node,
        slot: 1,
    };
    let w_scale = match g.inputs_of(factor.node).as_slice() {
        [Some(p), Some(q)] if *p == x_scale => *q,
        [Some(p), Some(q)] if *q == x_scale => *p,
        _ => return Ok(false),
    };
    let a_zero = inputs.get(2).copied().flatten();
    let (Some(x), Some(w)) = (
        dynamic_input(g, a, Some(x_scale), a_zero),
        column_weight(g, b, w_scale, inputs.get(3).copied().flatten()),
    ) else {
        return Ok(false);
    };
    let product = product(g, id, x, b, w, None)?;
    g.replace_uses(
        Value {
            node: scaled,
            slot: 0,
        },
        product,
    );
    Ok(true)
}

/// `x` when `a` is `DynamicQuantizeLinear(x)`'s quantized output and
/// `scale` / `zero` (absent: 0) its scale and zero point.
pub(super) fn dynamic_input(g: &Graph, a: Value, scale: Option<Value>, zero: Option<Value>) -> Option<Value> {
    let q = a.node;
    let ok = matches!(g.node(q).op, Op::DynamicQuantizeLinear)
        && a.slot == 0
        && scale == Some(Value { node: q, slot: 1 })
        && zero.is_none_or(|z| z == Value { node: q, slot: 2 });
    ok.then(|| g.inputs_of(q).first().copied().flatten()).flatten()
}

/// The f32 values of the constant 2-D 8-bit weight `b` under a constant
/// `scale` and `zero` point (absent: 0), each one value or one per output
/// column; `None` for any other form.
pub(super) fn column_weight(g: &Graph, b: Value, scale: Value, zero: Option<Value>) -> Option<Tensor> {
    let weight = constant(g, b).filter(|t| t.dims().len() == 2)?;
    let scale = constant(g, scale)?.to_f32_vec()?;
    let zero = match zero {
        None => vec![0; scale.len()],
        Some(z) => constant(g, z)?.to_i64_vec()?,
    };
    let columns = scale.len().max(zero.len());
    let q = Quantization {
        scale: to_columns(scale, columns)?,
        zero: to_columns(zero, columns)?,
        axis: (columns > 1).then_some(1),
    };
    dequantize_values(weight, &q).ok()
}

/// `MatMul(x, w) (+ bias)` named after node `id`, the weight `w` (the
/// dequantized `b`) named after `b`: the product's f32 form.
pub(super) fn product(
    g: &mut Graph,
    id: NodeId,
    x: Value,
    b: Value,
    w: Tensor,
    bias: Option<Value>,
) -> Result<Value, OnnxError> {
    let w = named_const(g, id, b, w)?;
    let name = g.fresh_name(g.node(id).name.trim_end_matches("_quant"));
    let product = g.add(&name, Op::MatMul, &[x, w]).map_err(|e| error(g, id, e))?;
    match bias {
        None => Ok(product),
        Some(bias) => {
            let name = g.fresh_name(&format!("{name}.bias"));
            g.add(&name, Op::Binary(crate::ir::BinaryOp::Add), &[product, bias])
                .map_err(|e| error(g, id, e))
        }
    }
}

/// `v` with one entry per column: as it is, or its one value repeated.
fn to_columns<T: Copy>(v: Vec<T>, columns: usize) -> Option<Vec<T>> {
    match v.len() {
        1 => Some(vec![v[0]; columns]),
        n if n == columns => Some(v),
        _ => None,
    }
}

/// The only node reading `v`, when `v` is not also a graph output.
pub(super) fn single_reader(g: &Graph, v: Value) -> Option<NodeId> {
    match g.consumers(v).as_slice() {
        [(reader, _)] if !g.is_output(v) => Some(*reader),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_values_use_their_columns_scale_and_zero_point() {
        // [2, 3] uint8, one scale and zero point per column (axis 1).
        let t = Tensor::from_raw(DType::U8, vec![2, 3], vec![10u8, 20, 30, 0, 128, 255].into()).unwrap();
        let q = Quantization {
            scale: vec![0.5, 0.25, 2.0],
            zero: vec![10, 128, 0],
            axis: Some(1),
        };
        let f = dequantize_values(&t, &q).unwrap().to_f32_vec().unwrap();
        assert_eq!(f, vec![0.0, -27.0, 60.0, -5.0, 0.0, 510.0]);
        // Per row (axis 0) with the same values: each row its own scale.
        let q = Quantization {
            scale: vec![1.0, 0.5],
            zero: vec![0, 0],
            axis: Some(0),
        };
        let f = dequantize_values(&t, &q).unwrap().to_f32_vec().unwrap();
        assert_eq!(f, vec![10.0, 20.0, 30.0, 0.0, 64.0, 127.5]);
    }

    #[test]
    fn scales_that_fit_no_channel_count_and_float_tensors_are_refused() {
        let t = Tensor::from_raw(DType::I8, vec![2, 3], vec![1u8; 6].into()).unwrap();
        let q = Quantization {
            scale: vec![1.0, 1.0],
            zero: vec![0, 0],
            axis: Some(1),
        };
        assert_eq!(
            dequantize_values(&t, &q).unwrap_err(),
            "2 scales for 3 channels of a [2, 3] tensor"
        );
        let per_tensor = Quantization {
            scale: vec![1.0],
            zero: vec![0],
            axis: None,
        };
        let e = dequantize_values(&Tensor::from_f32(vec![2], &[1.0, 2.0]), &per_tensor).unwrap_err();
        assert!(e.contains("F32"), "{e}");
    }
}
