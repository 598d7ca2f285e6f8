//! Inference for the compute ops: MatMul, Attention and onnxruntime's contrib ops.

use super::super::dtype::DType;
use super::super::graph::ValueInfo;
use super::super::op::ContribOp;
use super::super::shape::{Dim, Shape};
use super::{broadcast, float_only, same_dtype, Infer};

/// 3-D RotaryEmbedding-23: x [B, S, heads·d] (d even), cos and sin
/// [B, S, d/2]; output as x.
pub(super) fn rotary_embedding(heads: usize, inputs: &[Option<&ValueInfo>]) -> Infer {
    let (x, cos, sin) = (inputs[0].unwrap(), inputs[1].unwrap(), inputs[2].unwrap());
    float_only(x)?;
    same_dtype(x, cos)?;
    same_dtype(x, sin)?;
    let [b, s, width] = &x.shape.0[..] else {
        return Err(format!("needs a 3-D input, got {}", x.shape));
    };
    let head = width
        .fixed()
        .filter(|w| heads > 0 && w % heads as i64 == 0 && (w / heads as i64) % 2 == 0)
        .ok_or(format!("the width {width} is not {heads} heads of an even size"))?
        / heads as i64;
    let cache = Shape(vec![b.clone(), s.clone(), Dim::Fixed(head / 2)]);
    for (what, t) in [("cos", cos), ("sin", sin)] {
        if t.shape != cache {
            return Err(format!("{what} {} must be {cache}", t.shape));
        }
    }
    Ok(vec![x.clone()])
}

/// 3-D Attention-23: Q [B, Sq, Hq·d], K [B, Skv, Hkv·d], V [B, Skv, Hkv·dv],
/// mask broadcastable to [B, Hq, Sq, Skv]; output [B, Sq, Hq·dv].
pub(super) fn attention(q_heads: usize, kv_heads: usize, inputs: &[Option<&ValueInfo>]) -> Infer {
    let (q, k, v) = (inputs[0].unwrap(), inputs[1].unwrap(), inputs[2].unwrap());
    float_only(q)?;
    same_dtype(q, k)?;
    same_dtype(q, v)?;
    if [q, k, v].iter().any(|t| t.shape.rank() != 3) {
        return Err(format!(
            "needs 3-D Q, K, V, got {}, {}, {}",
            q.shape, k.shape, v.shape
        ));
    }
    if q_heads == 0 || kv_heads == 0 || !q_heads.is_multiple_of(kv_heads) {
        return Err(format!(
            "q_num_heads {q_heads} must be a positive multiple of kv_num_heads {kv_heads}"
        ));
    }
    let width = |t: &ValueInfo, heads: usize, what: &str| -> Result<i64, String> {
        let w = t.shape.0[2]
            .fixed()
            .ok_or(format!("{what} hidden size must be fixed"))?;
        match w % heads as i64 {
            0 => Ok(w / heads as i64),
            _ => Err(format!(
                "{what} hidden size {w} is not divisible by {heads} heads"
            )),
        }
    };
    if width(q, q_heads, "Q")? != width(k, kv_heads, "K")? {
        return Err("Q and K head sizes differ".into());
    }
    let dv = width(v, kv_heads, "V")?;
    if k.shape.0[..2] != v.shape.0[..2] || q.shape.0[0] != k.shape.0[0] {
        return Err(format!(
            "batch or key length mismatch: {}, {}, {}",
            q.shape, k.shape, v.shape
        ));
    }
    let (b, sq, skv) = (q.shape.0[0].clone(), q.shape.0[1].clone(), k.shape.0[1].clone());
    if let Some(Some(mask)) = inputs.get(3) {
        if !mask.dtype.is_float() {
            return Err(format!(
                "the mask must be an additive float mask, got {}",
                mask.dtype
            ));
        }
        let full = Shape(vec![b.clone(), Dim::Fixed(q_heads as i64), sq.clone(), skv]);
        if mask.shape.rank() > 4 || broadcast(&full, &mask.shape)? != full {
            return Err(format!("mask {} does not broadcast to {full}", mask.shape));
        }
    }
    Ok(vec![ValueInfo::new(
        q.dtype,
        Shape(vec![b, sq, Dim::Fixed(q_heads as i64 * dv)]),
    )])
}

pub(super) fn contrib(op: &ContribOp, inputs: &[Option<&ValueInfo>]) -> Infer {
    let x = |i: usize| inputs[i].expect("required input present");
    match op {
        ContribOp::SkipLayerNorm { .. } => {
            let (a, skip) = (x(0), x(1));
            float_only(a)?;
            same_dtype(a, skip)?;
            if a.shape != skip.shape || a.shape.rank() != 3 {
                return Err(format!(
                    "input {} and skip {} must be the same 3-D shape",
                    a.shape, skip.shape
                ));
            }
            Ok(vec![ValueInfo::new(a.dtype, a.shape.clone())])
        }
        ContribOp::BiasGelu | ContribOp::FastGelu => {
            let (a, bias) = (x(0), x(1));
            float_only(a)?;
            if bias.shape.rank() != 1 || a.shape.dims().last() != bias.shape.dims().first() {
                return Err(format!(
                    "bias {} must be 1-D over the last dim of {}",
                    bias.shape, a.shape
                ));
            }
            Ok(vec![ValueInfo::new(a.dtype, a.shape.clone())])
        }
        ContribOp::EmbedLayerNorm { .. } => embed_layer_norm(inputs, None),
        // The 8-bit tables read back as f32.
        ContribOp::QEmbedLayerNorm { .. } => {
            let tables = (2..7).filter_map(|i| inputs.get(i).copied().flatten());
            if let Some(t) = tables.clone().find(|t| !super::quant::eight_bit(t)) {
                return Err(format!(
                    "the tables, gamma and beta must be 8-bit, got {}",
                    t.dtype
                ));
            }
            embed_layer_norm(inputs, Some(DType::F32))
        }
        ContribOp::Attention { num_heads, .. } => {
            float_only(x(0))?;
            packed_attention(
                x(0),
                x(1),
                x(2),
                inputs.get(3).copied().flatten(),
                *num_heads,
                x(0).dtype,
            )
        }
        ContribOp::QAttention { num_heads, .. } => {
            if !super::quant::eight_bit(x(0)) || !super::quant::eight_bit(x(1)) {
                return Err(format!(
                    "needs 8-bit input and weights, got {} and {}",
                    x(0).dtype,
                    x(1).dtype
                ));
            }
            packed_attention(
                x(0),
                x(1),
                x(2),
                inputs.get(5).copied().flatten(),
                *num_heads,
                DType::F32,
            )
        }
        ContribOp::MatMulIntegerToFloat => super::quant::matmul_integer_to_float(inputs),
        ContribOp::DynamicQuantizeMatMul => super::quant::dynamic_quantize_matmul(inputs),
    }
}

/// onnxruntime's fused embeddings: [B, S, hidden] in `dtype` (the word
/// table's when `None`), and the mask index [B].
fn embed_layer_norm(inputs: &[Option<&ValueInfo>], dtype: Option<DType>) -> Infer {
    // segment_ids and the segment table are optional (DistilBERT has
    // none); the word, position, gamma and beta inputs are not.
    let given = |i: usize, what: &str| {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or(format!("input {i} ({what}) is missing"))
    };
    let (ids, word) = (given(0, "input_ids")?, given(2, "word_embedding")?);
    for (i, what) in [(3, "position_embedding"), (5, "gamma"), (6, "beta")] {
        given(i, what)?;
    }
    let segments = inputs.get(1).copied().flatten();
    if ids.dtype != DType::I32 || segments.is_some_and(|s| s.dtype != DType::I32) || ids.shape.rank() != 2 {
        return Err("input_ids and segment_ids must be 2-D int32".into());
    }
    let hidden = word
        .shape
        .dims()
        .get(1)
        .cloned()
        .ok_or("the word table must be 2-D")?;
    let mut dims = ids.shape.0.clone();
    dims.push(hidden);
    Ok(vec![
        ValueInfo::new(dtype.unwrap_or(word.dtype), Shape(dims)),
        ValueInfo::new(DType::I32, Shape(vec![ids.shape.0[0].clone()])),
    ])
}

/// onnxruntime's packed attention: weights [H, 3H], bias [3H], a 2-D raw
/// or 1-D mask index; the output [B, S, H] in `dtype`.
fn packed_attention(
    a: &ValueInfo,
    w: &ValueInfo,
    b: &ValueInfo,
    mask: Option<&ValueInfo>,
    num_heads: usize,
    dtype: DType,
) -> Infer {
    let hidden3 = w
        .shape
        .dims()
        .get(1)
        .and_then(Dim::fixed)
        .ok_or("weights must be 2-D and fixed")?;
    if hidden3 % (3 * num_heads as i64) != 0 || b.shape.dims() != [Dim::Fixed(hidden3)] {
        return Err(format!(
            "weights {} / bias {} do not pack Q, K, V for {num_heads} heads",
            w.shape, b.shape
        ));
    }
    if let Some(mask) = mask {
        if mask.dtype != DType::I32 || !(1..=2).contains(&mask.shape.rank()) {
            return Err(format!(
                "the mask must be a 2-D int32 raw mask or a 1-D mask index, got {}{}",
                mask.dtype, mask.shape
            ));
        }
    }
    let mut dims = a.shape.0.clone();
    *dims.last_mut().ok_or("input must be 3-D")? = Dim::Fixed(hidden3 / 3);
    Ok(vec![ValueInfo::new(dtype, Shape(dims))])
}

pub(super) fn matmul(a: &ValueInfo, b: &ValueInfo) -> Infer {
    same_dtype(a, b)?;
    float_only(a)?;
    let (ra, rb) = (a.shape.rank(), b.shape.rank());
    if ra == 0 || rb == 0 {
        return Err("MatMul of a scalar".into());
    }
    // numpy rules: a 1-D operand is promoted to a matrix, then the added dim dropped.
    let mut sa = a.shape.0.clone();
    let mut sb = b.shape.0.clone();
    if ra == 1 {
        sa.insert(0, Dim::Fixed(1));
    }
    if rb == 1 {
        sb.push(Dim::Fixed(1));
    }
    let (m, k1) = (&sa[sa.len() - 2], &sa[sa.len() - 1]);
    let (k2, n) = (&sb[sb.len() - 2], &sb[sb.len() - 1]);
    if k1 != k2 {
        return Err(format!("inner dims differ: {} × {}", a.shape, b.shape));
    }
    let batch = broadcast(
        &Shape(sa[..sa.len() - 2].to_vec()),
        &Shape(sb[..sb.len() - 2].to_vec()),
    )?;
    let mut dims = batch.0;
    if ra > 1 {
        dims.push(m.clone());
    }
    if rb > 1 {
        dims.push(n.clone());
    }
    Ok(vec![ValueInfo::new(a.dtype, Shape(dims))])
}

/// MatMulInteger: 8-bit a and b, zero points (optional) of their operand's
/// type that are scalars or 1-D (per row of a, per column of b); i32 result
/// shaped like the float MatMul's.
pub(super) fn matmul_integer(inputs: &[Option<&ValueInfo>]) -> Infer {
    let (a, b) = (inputs[0].unwrap(), inputs[1].unwrap());
    let eight_bit = |t: &ValueInfo| matches!(t.dtype, DType::I8 | DType::U8);
    if !eight_bit(a) || !eight_bit(b) {
        return Err(format!(
            "needs i8 or u8 operands, got {} and {}",
            a.dtype, b.dtype
        ));
    }
    for (what, zp, operand) in [("a", inputs.get(2), a), ("b", inputs.get(3), b)] {
        if let Some(Some(zp)) = zp {
            if zp.dtype != operand.dtype || zp.shape.rank() > 1 {
                return Err(format!(
                    "{what}_zero_point must be a scalar or 1-D {}, got {}{}",
                    operand.dtype, zp.dtype, zp.shape
                ));
            }
        }
    }
    let as_float = |t: &ValueInfo| ValueInfo::new(DType::F32, t.shape.clone());
    let mut out = matmul(&as_float(a), &as_float(b))?;
    out[0].dtype = DType::I32;
    Ok(out)
}
