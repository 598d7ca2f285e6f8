//! onnxruntime's packed `Attention`: Q, K and V projected from one input by
//! weights [H, 3H] and bias [3H], scaled dot-product attention over
//! `num_heads` heads, the mask added to the scores. Written as three linear
//! layers and the standard `Attention`, then decomposed into the primitive
//! form (`decompose_attention`), which runs everywhere and which
//! `fuse_attention` recognises like any export's.
//!
//! The mask, as onnxruntime's kernel reads it: a 2-D raw mask keeps the
//! keys whose value is > 0; a 1-D mask index [B] keeps the first L keys of
//! each row — the right-padding assumption of onnxruntime's optimizer, so
//! a left-padded row attends to its padding and not to its last tokens.
//! That is what the file computes, and what its import keeps: the import
//! reproduces the file, not the model it was made from. Masked scores get
//! `mask_filter_value` (default -10000) added.

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Op, Tensor, Value};
use crate::passes::decompose_attention_node;

use super::ort_forms::Writer;

/// onnxruntime's default `mask_filter_value`.
const DEFAULT_FILTER: f32 = -10000.0;

pub(super) fn standard(
    w: &mut Writer,
    num_heads: usize,
    scale: Option<f32>,
    mask_filter_value: Option<f32>,
    masks: &mut HashMap<(Value, u32), Value>,
) -> Result<Vec<Option<Value>>, String> {
    let x = w.required(0, "input")?;
    let (weights, bias) = (w.required(1, "weights")?, w.required(2, "bias")?);
    let packed = w.g.info(weights).shape.dims().get(1).and_then(|d| d.fixed());
    let hidden = packed
        .map(|p| p / 3)
        .filter(|&h| h > 0 && num_heads > 0 && h % num_heads as i64 == 0);
    let hidden = hidden.ok_or_else(|| format!("weights {} do not pack Q, K, V", w.g.info(weights).shape))?;
    let mut projections = Vec::with_capacity(3);
    for (i, what) in ["query", "key", "value"].into_iter().enumerate() {
        let start = i as i64 * hidden;
        let wi = last_axis_part(w, weights, start, hidden, &format!("{what}.weight"))?;
        let bi = last_axis_part(w, bias, start, hidden, &format!("{what}.bias"))?;
        let product = w.op(&format!("{what}.matmul"), Op::MatMul, &[x, wi])?;
        projections.push(w.op(what, Op::Binary(BinaryOp::Add), &[product, bi])?);
    }
    let fill = mask_filter_value.unwrap_or(DEFAULT_FILTER);
    let mask = match w.input(3) {
        // Every layer reads the same mask (and the same sequence length).
        Some(m) => Some(match masks.get(&(m, fill.to_bits())) {
            Some(&made) => made,
            None => {
                let made = additive_mask(w, x, m, fill)?;
                masks.insert((m, fill.to_bits()), made);
                made
            }
        }),
        None => None,
    };
    let attention = w.node(
        "attention",
        Op::Attention {
            q_num_heads: num_heads,
            kv_num_heads: num_heads,
            scale,
        },
        &[
            Some(projections[0]),
            Some(projections[1]),
            Some(projections[2]),
            mask,
        ],
    )?;
    let out = decompose_attention_node(w.g, attention)
        .map_err(|e| e.to_string())?
        .ok_or("only f32 attention on [B, S, H] is supported")?;
    Ok(vec![Some(out)])
}

/// Columns `start..start + len` of the last axis of `packed`: a constant
/// of its own when `packed` is an f32 constant (a weight the passes see as
/// one), else a Slice.
fn last_axis_part(w: &mut Writer, packed: Value, start: i64, len: i64, what: &str) -> Result<Value, String> {
    if let Op::Constant(t) = &w.g.node(packed.node).op {
        if let (Some(values), Some(&cols)) = (
            t.to_f32_vec().filter(|_| t.dtype() == DType::F32),
            t.dims().last(),
        ) {
            let (start, len) = (start as usize, len as usize);
            let part: Vec<f32> = values
                .chunks(cols)
                .flat_map(|row| &row[start..start + len])
                .copied()
                .collect();
            let mut dims = t.dims().to_vec();
            *dims.last_mut().ok_or("a scalar cannot be packed")? = len;
            return w.constant(what, Tensor::from_f32(dims, &part));
        }
    }
    let bounds = [start, start + len, -1].map(|b| Tensor::vec_i64(&[b]));
    let [s, e, a] = bounds;
    let (s, e, a) = (
        w.constant(&format!("{what}.start"), s)?,
        w.constant(&format!("{what}.end"), e)?,
        w.constant(&format!("{what}.axis"), a)?,
    );
    w.op(what, Op::Slice, &[packed, s, e, a])
}

/// The mask as a float [B, 1, 1, S] added to the scores: 0 where a key is
/// kept, `fill` where it is masked.
fn additive_mask(w: &mut Writer, x: Value, mask: Value, fill: f32) -> Result<Value, String> {
    let as_i64 = w.op("mask.i64", Op::Cast { to: DType::I64 }, &[mask])?;
    let keep = match w.g.info(mask).shape.rank() {
        // Sequence lengths: key j is real when j < L.
        1 => {
            let len = w.dim(x, 1)?;
            let len = w.op("mask.length", Op::Squeeze { axes: vec![0] }, &[len])?;
            let (zero, one) = (
                w.constant("mask.zero", Tensor::scalar_i64(0))?,
                w.constant("mask.one", Tensor::scalar_i64(1))?,
            );
            let positions = w.op("mask.positions", Op::Range, &[zero, len, one])?;
            let lengths = w.op("mask.lengths", Op::Unsqueeze { axes: vec![1] }, &[as_i64])?;
            w.op("mask.keep", Op::Binary(BinaryOp::Less), &[positions, lengths])?
        }
        2 => {
            let zero = w.constant("mask.zero", Tensor::vec_i64(&[0]))?;
            w.op("mask.keep", Op::Binary(BinaryOp::Greater), &[as_i64, zero])?
        }
        r => {
            return Err(format!(
                "a rank-{r} mask is not supported (only a 1-D mask index of lengths or a 2-D raw mask)"
            ))
        }
    };
    let (kept, masked) = (
        w.constant("mask.kept", Tensor::scalar_f32(0.0))?,
        w.constant("mask.fill", Tensor::scalar_f32(fill))?,
    );
    let additive = w.op("mask.additive", Op::Where, &[keep, kept, masked])?;
    w.op("mask.heads", Op::Unsqueeze { axes: vec![1, 2] }, &[additive])
}
