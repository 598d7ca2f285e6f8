//! `quantize_attention` (`--quantize-attention`, onnxruntime's dynamic int8
//! form): a standard `Attention(q, k, v, mask)` → its two products, Q·Kᵀ and
//! P·V, as 8-bit integer products, the softmax's arithmetic f32:
//!
//! ```text
//! qq, qs, qz = DynamicQuantizeLinear(Qh)               u8, one scale per tensor
//! kq = QuantizeLinear(Khᵀ / max|Kh|, 1/127)           s8 symmetric, ks = max|Kh| / 127
//! x  = Cast<f32>(MatMulInteger(qq, kq, qz)) · (qs · ks · scale) [+ mask]
//! e  = exp(x − ReduceMax(x, last axis))                the softmax's numerators, row peak 1
//! eq = QuantizeLinear(e, 1/255)                        u8
//! w  = exp(mask) per key ([B, n, S, 1]; 1 without a key-only mask)
//! vq = QuantizeLinear(Vh·w / max|Vh·w|, 1/127) ++ QuantizeLinear(w, 1/127)   s8, one more column
//! [num | den] = Cast<f32>(MatMulInteger(eq, vq))       [B, n, S, d + 1]
//! context = num / den · max|Vh·w|                   (the 1/255s cancel; 127 · vs = max)
//! ```
//!
//! Why. In the int8 forms the linear layers run u8 × s8 and the attention's
//! products stay f32, whose share grows with S²: ModernBERT-base at S=2,048
//! (onnxruntime 1.32, Zen 4, 2 threads) spends 1,027 ms of a 2,620 ms int8 run
//! in its 8 global layers' Attention kernels, so the int8 file is 0.57× of
//! the f32 one rather than half. These run in onnxruntime's u8 × s8 kernels,
//! the same as the linears' (VNNI `vpdpbusd`, AVX2 `vpmaddubsw`).
//!
//! What costs at long S is not the products but every op between them: each
//! is a full pass over [B, n, S, S] (200 MB a layer at S=2,048), which
//! onnxruntime's f32 Attention kernel keeps inside one kernel. So the form
//! makes as few as it can:
//! - no Softmax: the numerators exp(x − max) are quantized as they are
//!   (each row's peak is exactly 1 → 255, so every row keeps 8 bits
//!   relative to its own largest probability; a fixed 1/255 step on the
//!   probabilities would round each under 1/510 to zero, and a query
//!   spread over more than ~500 keys would read nothing), and the
//!   denominator comes out of the P·V product itself, from V's extra
//!   column — the sum of exactly the quantized numerators it divides;
//! - no mask Add where the mask is per key ([B, 1, 1, S], padding):
//!   exp(x + m) = exp(x)·exp(m), so the key's weight exp(m) multiplies its
//!   value row and its column of the denominator instead ([B, n, S, d]
//!   work, not [B, n, S, S]). A row's maximum is then taken over every
//!   key, so the masked keys' K columns are first set to the visible keys'
//!   mean, whose score never exceeds the visible maximum
//!   ([`masked_keys_at_the_mean`]). Other masks (DeBERTa's relative terms
//!   ride in them) are added to the scores, and there the softmax's own
//!   kernel (`Softmax`, each row over its maximum, multiplied back after
//!   P·V) measured faster than a separate Sub and Exp.
//!
//! Q is u8 because onnxruntime's fast kernels are u8 × s8; K and V are s8
//! symmetric, so no zero point of theirs enters the sums.
//!
//! Opt-in: at S=128 the extra small ops cost more than the int8 products
//! save (ModernBERT-base 88 → 101 ms; the README's table); the accuracy
//! gate holds it like every int8 form. Grouped-query layers (K and V repeated for their query heads)
//! are written out as `decompose_attention` does; layers with a fixed,
//! short key length stay f32 ([`MIN_FIXED_KEYS`]).
//!
//! OpenVINO's static form (`--target openvino --quantize static`,
//! [`QuantizeAttention::static_ranges`]) is the same numerators' form with
//! QuantizeLinear → DequantizeLinear pairs at constant scales where the
//! dynamic form quantizes at run time, which OpenVINO's low-precision
//! transformations turn into int8 MatMuls: Q and K s8 at their calibrated
//! max |x| / 127, the numerators u8 at 1/255 (exact for every row: each
//! row's peak is 1), V s8 at its calibrated max / 127 with the key-weight
//! column scaled by that max so both share one scale at full resolution
//! (the denominators carry the factor; the context takes it back out).
//! The pipeline keeps OpenVINO's attention fused until this pass has run
//! (its decomposition moves to the lowering), so the calibration probes
//! the very Q, K and V this pass looks up by name.

use std::collections::HashMap;

use crate::ir::{value_name, BinaryOp, DType, Graph, IrError, Op, Tensor, UnaryOp, Value};

use super::decompose_attention::{
    attention_name, match_at, merge_heads, rewrite_each, split_heads, unexpanded, Heads, Match,
};
// The largest |x| a tensor is given at least: an all-zero K or V (a
// pruned head) gets a finite scale and quantizes to zeros, not 0/0.
use super::quantize_int8::MIN_ABSMAX;
use super::{Pass, PassReport};

pub struct QuantizeAttention {
    /// `None`: onnxruntime's dynamic form (above). `Some`: OpenVINO's
    /// static form, calibrated max |x| of each layer's Q, K and V (keyed by
    /// value name, per channel): QuantizeLinear/DequantizeLinear pairs with
    /// constant scales around both products, which OpenVINO's low-precision
    /// transformations run as int8 MatMuls. The numerators' form makes a
    /// constant 1/255 right for every row (each row's peak is 1), which a
    /// static scale on the probabilities could not be.
    pub static_ranges: Option<HashMap<String, Vec<f32>>>,
}

impl Pass for QuantizeAttention {
    fn name(&self) -> &'static str {
        "quantize_attention"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g
            .node_ids()
            .filter_map(|id| match_at(g, id))
            .filter(|m| !few_keys(g, m))
            .collect();
        let Some(ranges) = &self.static_ranges else {
            return rewrite_each(g, &matches, quantized);
        };
        // A layer whose Q, K or V was not calibrated stays f32.
        let absmax = |g: &Graph, x: Value| {
            let r = ranges.get(&value_name(g, x))?;
            Some(r.iter().copied().fold(0f32, f32::max))
        };
        let mut report = PassReport::default();
        let before = g.node_count();
        for m in &matches {
            let (Some(q), Some(k), Some(v)) = (absmax(g, m.q), absmax(g, m.k), absmax(g, m.v)) else {
                continue;
            };
            let out = quantized_static(g, m, [q, k, v])?;
            g.replace_uses(
                Value {
                    node: m.root,
                    slot: 0,
                },
                out,
            );
            report.matches += 1;
        }
        report.nodes_added = g.node_count() - before;
        Ok(report)
    }
}

/// The Q, K and V of every Attention the pass would quantize: what the
/// static form's calibration measures.
pub fn attention_inputs(g: &Graph) -> Vec<Value> {
    g.node_ids()
        .filter_map(|id| match_at(g, id))
        .filter(|m| !few_keys(g, m))
        .flat_map(|m| [m.q, m.k, m.v])
        .collect()
}

/// Fewer keys than this, fixed in the graph, and a layer's products stay
/// f32: ModernBERT's sliding layers after `block_sliding_attention` score
/// 160 keys per query, and quantizing them too made its S=2,048 run slower
/// (0.61× of f32 against 0.56× with f32 attention): their products are
/// small and the quantization passes and transposes are not.
const MIN_FIXED_KEYS: u64 = 512;

/// Whether `m` scores a fixed number of keys below [`MIN_FIXED_KEYS`]
/// (K's axis 1; a symbolic length is the input's, long when asked for).
fn few_keys(g: &Graph, m: &Match) -> bool {
    let keys = g.info(m.k).shape.dims().get(1).and_then(|d| d.fixed());
    keys.is_some_and(|n| (n as u64) < MIN_FIXED_KEYS)
}

fn quantized(g: &mut Graph, m: &Match) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    let Heads { q, k_t, v } = split_heads(g, m)?;
    let dq = g.add_node(&name(g, "query.quantize"), Op::DynamicQuantizeLinear, &[Some(q)])?;
    let out = |slot| Value { node: dq, slot };
    let (qq, qs, qz) = (out(0), out(1), out(2));
    let mask = m.mask.map(|mask| unexpanded(g, mask));
    let key_mask = mask.filter(|&mask| masks_keys_only(g, mask));
    let k_t = match key_mask {
        Some(mask) => masked_keys_at_the_mean(g, m, k_t, mask)?,
        None => k_t,
    };
    let (kq, ks) = symmetric_s8(g, m, k_t, "key")?;

    let si = g.add_node(
        &name(g, "scores.int"),
        Op::MatMulInteger,
        &[Some(qq), Some(kq), Some(qz)],
    )?;
    let sf = g.add(
        &name(g, "scores.float"),
        Op::Cast { to: DType::F32 },
        &[Value { node: si, slot: 0 }],
    )?;
    let qk = binary(g, m, "scores.int_scale", BinaryOp::Mul, qs, ks)?;
    let cn = name(g, "scale");
    let c = g.add_const(&cn, Tensor::scalar_f32(m.scale))?;
    let scale = binary(g, m, "scores.scale", BinaryOp::Mul, qk, c)?;
    let x = binary(g, m, "scaled", BinaryOp::Mul, sf, scale)?;
    let ctx = match (mask, key_mask) {
        (Some(mask), None) => {
            let x = binary(g, m, "masked", BinaryOp::Add, x, mask)?;
            context_of_probabilities(g, m, x, v)?
        }
        (_, key_mask) => context_of_numerators(g, m, x, v, key_mask)?,
    };
    merge_heads(g, m, ctx)
}

/// The context [B, n, S, d] of scores `x` that carry their mask:
/// `p = Softmax(x)`, each row quantized over its own maximum `pm` and
/// multiplied back. (The numerators' form below measured slower here:
/// with the mask added either way, a separate Sub and Exp cost more than
/// onnxruntime's one Softmax kernel — DeBERTa-v3-base at S=512, 442 against
/// 416 ms.)
fn context_of_probabilities(g: &mut Graph, m: &Match, x: Value, v: Value) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    let probs = g.add(&name(g, "softmax"), Op::Softmax { axis: -1 }, &[x])?;
    let pm = row_max(g, m, probs, "softmax.row_max")?;
    let normalized = binary(g, m, "softmax.normalized", BinaryOp::Div, probs, pm)?;
    let (ps, pq) = probabilities_u8(g, m, normalized)?;
    let (vq, vs) = symmetric_s8(g, m, v, "value")?;
    let ci = g.add(&name(g, "context.int"), Op::MatMulInteger, &[pq, vq])?;
    let cf = g.add(&name(g, "context.float"), Op::Cast { to: DType::F32 }, &[ci])?;
    let cscale = binary(g, m, "context.int_scale", BinaryOp::Mul, ps, vs)?;
    let c0 = binary(g, m, "context.scaled", BinaryOp::Mul, cf, cscale)?;
    binary(g, m, "context", BinaryOp::Mul, c0, pm)
}

/// The context of unmasked scores `x`, with `key_mask` ([B, 1, 1, S]) if
/// any: the numerators exp(x − max x) quantized, each key's weight
/// exp(mask) on its value row, and the denominators from one more column
/// of V in the same product (see the module's notes).
fn context_of_numerators(
    g: &mut Graph,
    m: &Match,
    x: Value,
    v: Value,
    key_mask: Option<Value>,
) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    let e = numerators(g, m, x)?;
    let (_, eq) = probabilities_u8(g, m, e)?;
    let (v, weights) = weighted_values(g, m, v, key_mask)?;
    let (vq, vs) = symmetric_s8(g, m, v, "value")?;
    // The weights as one more s8 column of V (1 → 127): the same product
    // sums each row's quantized numerators, the softmax's denominator.
    let (wq, _) = unit_s8(g, m, weights, "key_weights")?;
    let vw = g.add(&name(g, "value.with_weights"), Op::Concat { axis: -1 }, &[vq, wq])?;

    let ci = g.add(&name(g, "context.int"), Op::MatMulInteger, &[eq, vw])?;
    let cf = g.add(&name(g, "context.float"), Op::Cast { to: DType::F32 }, &[ci])?;
    let ratio = normalized_context(g, m, cf)?;
    // num · (1/255) · vs over den · (1/255) · (1/127): the ratio · 127 · vs.
    let rn = name(g, "context.int8_max");
    let r = g.add_const(&rn, Tensor::scalar_f32(127.0))?;
    let vscale = binary(g, m, "context.value_scale", BinaryOp::Mul, vs, r)?;
    binary(g, m, "context", BinaryOp::Mul, ratio, vscale)
}

/// The softmax's numerators exp(x − max x) of scores `x`: each row's peak
/// exactly 1.
fn numerators(g: &mut Graph, m: &Match, x: Value) -> Result<Value, IrError> {
    let peak = row_max(g, m, x, "scores.row_max")?;
    let shifted = binary(g, m, "scores.shifted", BinaryOp::Sub, x, peak)?;
    let n = attention_name(g, m, "softmax.numerators");
    g.add(&n, Op::Unary(UnaryOp::Exp), &[shifted])
}

/// V with each key's row weighed by its [`key_weights`] (a key-only mask's
/// exp(mask); V as it is without one), and the weights.
fn weighted_values(
    g: &mut Graph,
    m: &Match,
    v: Value,
    key_mask: Option<Value>,
) -> Result<(Value, Value), IrError> {
    let weights = key_weights(g, m, v, key_mask)?;
    let v = match key_mask {
        Some(_) => binary(g, m, "value.weighted", BinaryOp::Mul, v, weights)?,
        None => v,
    };
    Ok((v, weights))
}

/// The products [B, n, S, d + 1] of the numerators with V and its weight
/// column: each row's first d sums over its last, the denominator.
fn normalized_context(g: &mut Graph, m: &Match, sums: Value) -> Result<Value, IrError> {
    let d = m.head_size as i64;
    let numerators = slice_last(g, m, sums, 0, d, "context.numerators")?;
    let denominators = slice_last(g, m, sums, d, d + 1, "context.denominators")?;
    // A row whose every quantized numerator is 0 (its peak at a masked
    // key, the real ones all under 1/510 of it) reads zeros, not 0/0.
    let fname = attention_name(g, m, "context.min_denominator");
    let floor = g.add_const(&fname, Tensor::scalar_f32(MIN_ABSMAX))?;
    let denominators = binary(
        g,
        m,
        "context.denominators_floored",
        BinaryOp::Max,
        denominators,
        floor,
    )?;
    binary(
        g,
        m,
        "context.normalized",
        BinaryOp::Div,
        numerators,
        denominators,
    )
}

/// Each key's weight as a [B, n, S, 1] column: exp(mask) (0 for a masked
/// key) with a key-only mask, else ones shaped like one column of `v`.
fn key_weights(g: &mut Graph, m: &Match, v: Value, key_mask: Option<Value>) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    Ok(match key_mask {
        Some(mask) => {
            let w = g.add(&name(g, "key_weights"), Op::Unary(UnaryOp::Exp), &[mask])?;
            let by_key = g.add(
                &name(g, "key_weights.by_key"),
                Op::Transpose {
                    perm: vec![0, 1, 3, 2],
                },
                &[w],
            )?;
            let hn = name(g, "key_weights.heads");
            let heads = g.add_const(&hn, Tensor::vec_i64(&[1, m.heads as i64, 1, 1]))?;
            g.add(&name(g, "key_weights.expanded"), Op::Expand, &[by_key, heads])?
        }
        None => {
            let column = slice_last(g, m, v, 0, 1, "value.first_column")?;
            let zn = name(g, "zero");
            let zero = g.add_const(&zn, Tensor::scalar_f32(0.0))?;
            let on = name(g, "one");
            let one = g.add_const(&on, Tensor::scalar_f32(1.0))?;
            let zeros = binary(g, m, "value.zeros", BinaryOp::Mul, column, zero)?;
            binary(g, m, "key_weights", BinaryOp::Add, zeros, one)?
        }
    })
}

/// `k_t` [B, n, d, S] with each masked key's column (weight exp(mask) = 0)
/// replaced by the mean of the visible keys' columns. The numerators'
/// form shifts each score row by its maximum over all keys, the masked
/// ones included (finding the visible keys' maximum would be one more
/// pass over [B, n, S, S]); a padded key scoring above every real one
/// would leave the real numerators small and coarsely quantized (MiniLM's
/// worst sentence embedding against f32: 0.9914 with the padding's own
/// keys). A masked key contributes nothing whatever its score, and
/// q·mean(visible k) is the mean of the visible scores, never above their
/// maximum, so the maximum is always a visible key's.
fn masked_keys_at_the_mean(g: &mut Graph, m: &Match, k_t: Value, mask: Value) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, &format!("key.{s}"));
    let w = g.add(&name(g, "weights"), Op::Unary(UnaryOp::Exp), &[mask])?;
    let zn = name(g, "zero");
    let zero = g.add_const(&zn, Tensor::scalar_f32(0.0))?;
    let visible = g.add(&name(g, "visible"), Op::Binary(BinaryOp::Greater), &[w, zero])?;
    let ones = g.add(&name(g, "visible_f32"), Op::Cast { to: DType::F32 }, &[visible])?;
    let kept = g.add(&name(g, "visible_only"), Op::Binary(BinaryOp::Mul), &[k_t, ones])?;
    let sum_over_keys = Op::ReduceSum {
        axes: vec![-1],
        keepdims: true,
    };
    let total = g.add(&name(g, "visible_sum"), sum_over_keys.clone(), &[kept])?;
    let count = g.add(&name(g, "visible_count"), sum_over_keys, &[ones])?;
    // A row with no visible key (all padding) divides by 1, not 0.
    let on = name(g, "one");
    let one = g.add_const(&on, Tensor::scalar_f32(1.0))?;
    let count = g.add(
        &name(g, "visible_count_floored"),
        Op::Binary(BinaryOp::Max),
        &[count, one],
    )?;
    let mean = g.add(
        &name(g, "visible_mean"),
        Op::Binary(BinaryOp::Div),
        &[total, count],
    )?;
    g.add(&name(g, "masked_at_the_mean"), Op::Where, &[visible, k_t, mean])
}

/// OpenVINO's static form: the numerators' form with every product's
/// operands as QuantizeLinear → DequantizeLinear pairs at constant scales
/// (Q, K, V s8 at their calibrated max |x| / 127, the numerators u8 at
/// 1/255, V's weight column sharing V's scale), so the products themselves
/// stay f32 MatMuls a runtime turns int8.
fn quantized_static(g: &mut Graph, m: &Match, [q_max, k_max, v_max]: [f32; 3]) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    let Heads { q, k_t, v } = split_heads(g, m)?;
    let mask = m.mask.map(|mask| unexpanded(g, mask));
    let key_mask = mask.filter(|&mask| masks_keys_only(g, mask));
    let k_t = match key_mask {
        Some(mask) => masked_keys_at_the_mean(g, m, k_t, mask)?,
        None => k_t,
    };
    let q = qdq(g, m, q, q_max.max(MIN_ABSMAX) / 127.0, DType::I8, "query")?;
    let k_t = qdq(g, m, k_t, k_max.max(MIN_ABSMAX) / 127.0, DType::I8, "key")?;
    let scores = g.add(&name(g, "scores"), Op::MatMul, &[q, k_t])?;
    let cn = name(g, "scale");
    let c = g.add_const(&cn, Tensor::scalar_f32(m.scale))?;
    let mut x = binary(g, m, "scaled", BinaryOp::Mul, scores, c)?;
    if let (Some(mask), None) = (mask, key_mask) {
        x = binary(g, m, "masked", BinaryOp::Add, x, mask)?;
    }
    let e = numerators(g, m, x)?;
    let e = qdq(g, m, e, 1.0 / 255.0, DType::U8, "softmax")?;
    let (v, weights) = weighted_values(g, m, v, key_mask)?;
    // The weights (at most 1) scaled to V's range, so that one scale
    // quantizes both at full resolution: V's own 127 steps however small
    // its range, a weight of 1 at 127. The denominators carry the factor,
    // which the ratio's product with it takes back out.
    let v_max = v_max.max(MIN_ABSMAX);
    let rn = name(g, "value.range");
    let range = g.add_const(&rn, Tensor::scalar_f32(v_max))?;
    let weights = binary(g, m, "key_weights.scaled", BinaryOp::Mul, weights, range)?;
    let vw = g.add(
        &name(g, "value.with_weights"),
        Op::Concat { axis: -1 },
        &[v, weights],
    )?;
    let vw = qdq(g, m, vw, v_max / 127.0, DType::I8, "value")?;
    let sums = g.add(&name(g, "context.sums"), Op::MatMul, &[e, vw])?;
    let ratio = normalized_context(g, m, sums)?;
    let ctx = binary(g, m, "context", BinaryOp::Mul, ratio, range)?;
    merge_heads(g, m, ctx)
}

/// `x` through QuantizeLinear and DequantizeLinear at the constant `scale`
/// (zero point 0, of `dtype`).
fn qdq(g: &mut Graph, m: &Match, x: Value, scale: f32, dtype: DType, what: &str) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, &format!("{what}.{s}"));
    let sn = name(g, "static_scale");
    let s = g.add_const(&sn, Tensor::scalar_f32(scale))?;
    let zn = name(g, "static_zero_point");
    let zero = Tensor::from_raw(dtype, vec![], vec![0u8].into()).expect("one byte");
    let z = g.add_const(&zn, zero)?;
    let q = g.add(&name(g, "quantized"), Op::QuantizeLinear { axis: 1 }, &[x, s, z])?;
    g.add(
        &name(g, "dequantized"),
        Op::DequantizeLinear { axis: 1 },
        &[q, s, z],
    )
}

/// The maximum of each row of `x` (its last axis), kept as [.., 1].
fn row_max(g: &mut Graph, m: &Match, x: Value, what: &str) -> Result<Value, IrError> {
    let n = attention_name(g, m, what);
    let op = Op::ReduceMax {
        axes: vec![-1],
        keepdims: true,
    };
    g.add(&n, op, &[x])
}

/// `p` in [0, 1], each row's peak 1, as u8 at the fixed step 1/255: the
/// step and the quantized tensor.
fn probabilities_u8(g: &mut Graph, m: &Match, p: Value) -> Result<(Value, Value), IrError> {
    let psn = attention_name(g, m, "softmax.quantize_scale");
    let ps = g.add_const(&psn, Tensor::scalar_f32(1.0 / 255.0))?;
    let pzn = attention_name(g, m, "softmax.zero_point");
    let pz = g.add_const(
        &pzn,
        Tensor::from_raw(DType::U8, vec![], vec![0u8].into()).expect("one u8"),
    )?;
    let n = attention_name(g, m, "softmax.quantize");
    let pq = g.add(&n, Op::QuantizeLinear { axis: 1 }, &[p, ps, pz])?;
    Ok((ps, pq))
}

/// `x[.., from..to]` along the last axis.
fn slice_last(g: &mut Graph, m: &Match, x: Value, from: i64, to: i64, what: &str) -> Result<Value, IrError> {
    let mut inputs = vec![x];
    for (bound, value) in [("start", from), ("end", to), ("axis", -1)] {
        let n = attention_name(g, m, &format!("{what}.{bound}"));
        inputs.push(g.add_const(&n, Tensor::vec_i64(&[value]))?);
    }
    g.add(&attention_name(g, m, what), Op::Slice, &inputs)
}

/// Whether the additive `mask` is one value per key ([B, 1, 1, S]): then
/// `softmax(x + mask)` weighs key j's exp(x) by exp(mask_j), which the
/// values can carry instead of a pass over every score. Such a mask is
/// padding (0 for a real key, a large negative or -inf for a padded one:
/// weights 1 and 0); a positive key bias would give weights above 1,
/// which the weight column's s8 step saturates at 1.
fn masks_keys_only(g: &Graph, mask: Value) -> bool {
    let dims = g.info(mask).shape.dims();
    dims.len() == 4 && dims[1].fixed() == Some(1) && dims[2].fixed() == Some(1)
}

/// `x` as s8 with one symmetric scale max|x| / 127: the quantized tensor
/// and its scale.
fn symmetric_s8(g: &mut Graph, m: &Match, x: Value, what: &str) -> Result<(Value, Value), IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, &format!("{what}.{s}"));
    let all: Vec<i64> = (0..g.info(x).shape.rank() as i64).collect();
    let abs = g.add(&name(g, "abs"), Op::Unary(UnaryOp::Abs), &[x])?;
    let amax = g.add(
        &name(g, "absmax_raw"),
        Op::ReduceMax {
            axes: all,
            keepdims: false,
        },
        &[abs],
    )?;
    let fname = name(g, "min_absmax");
    let floor = g.add_const(&fname, Tensor::scalar_f32(MIN_ABSMAX))?;
    let amax = g.add(&name(g, "absmax"), Op::Binary(BinaryOp::Max), &[amax, floor])?;
    // QuantizeLinear's scale a constant (tract takes no other): x / max|x|
    // at 1/127 is x at max|x| / 127.
    let normalized = g.add(&name(g, "normalized"), Op::Binary(BinaryOp::Div), &[x, amax])?;
    let (q, unit) = unit_s8(g, m, normalized, what)?;
    let scale = g.add(&name(g, "scale"), Op::Binary(BinaryOp::Mul), &[amax, unit])?;
    Ok((q, scale))
}

/// `x` in [-1, 1] as s8 at the constant step 1/127 (zero point 0): the
/// quantized tensor and the step.
fn unit_s8(g: &mut Graph, m: &Match, x: Value, what: &str) -> Result<(Value, Value), IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, &format!("{what}.{s}"));
    let sn = name(g, "unit_scale");
    let unit = g.add_const(&sn, Tensor::scalar_f32(1.0 / 127.0))?;
    let zn = name(g, "zero_point");
    let zero_i8 = Tensor::from_raw(DType::I8, vec![], vec![0u8].into()).expect("one i8");
    let zero = g.add_const(&zn, zero_i8)?;
    let q = g.add(
        &name(g, "quantize"),
        Op::QuantizeLinear { axis: 1 },
        &[x, unit, zero],
    )?;
    Ok((q, unit))
}

fn binary(g: &mut Graph, m: &Match, what: &str, op: BinaryOp, a: Value, b: Value) -> Result<Value, IrError> {
    let n = attention_name(g, m, what);
    g.add(&n, Op::Binary(op), &[a, b])
}
