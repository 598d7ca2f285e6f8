//! `quantize_attention` (`--quantize-attention`, onnxruntime's dynamic int8
//! form): a standard `Attention(q, k, v, mask)` → its two products, Q·Kᵀ and
//! P·V, as 8-bit integer products with f32 scales, softmax and mask f32:
//!
//! ```text
//! qq, qs, qz = DynamicQuantizeLinear(Qh)                 u8, one scale per tensor
//! kq = QuantizeLinear(Khᵀ / max|Kh|, 1/127)             s8, symmetric: ks = max|Kh| / 127
//! scores = Cast<f32>(MatMulInteger(qq, kq, qz)) · (qs · ks · scale) + mask
//! p = Softmax(scores);  pm = ReduceMax(p, last axis)     [B, n, S, 1]
//! pq = QuantizeLinear(p / pm, 1/255)                     u8, each row's largest 255
//! vq = QuantizeLinear(Vh / max|Vh|, 1/127)              s8, likewise vs = max|Vh| / 127
//! context = Cast<f32>(MatMulInteger(pq, vq)) · (vs / 255) · pm
//! ```
//!
//! Why. In the int8 forms the linear layers run u8 × s8 and the attention's
//! products stay f32, whose share grows with S²: ModernBERT-base at S=2,048
//! (onnxruntime 1.32, Zen 4, 2 threads) spends 1,027 ms of a 2,620 ms int8 run
//! in its 8 global layers' Attention kernels, so the int8 file is 0.57× of
//! the f32 one rather than half. These are onnxruntime's u8 × s8 kernels,
//! the same as the linears' (VNNI `vpdpbusd`, AVX2 `vpmaddubsw`).
//!
//! The probabilities' scale is per row. A fixed 1/255 (what static int8
//! attention usually takes) rounds every probability under 1/510 to zero:
//! a query that spreads its attention over more than ~500 keys — every
//! near-uniform row at S ≥ 512 — would read nothing. Divided by its own
//! largest value, each row keeps 8 bits relative to its peak; the division
//! and the ReduceMax are two more passes over [B, n, S, S], the factor back
//! a multiply of [B, n, S, d].
//!
//! Q is u8 because onnxruntime's fast kernels are u8 × s8; K and V are s8
//! symmetric, so no zero point of theirs enters the sums. The scales are
//! per tensor: the scores' and context's scales are then scalars times
//! a row vector.
//!
//! Opt-in: at S=128 the extra passes cost about what the int8 products
//! save (see the README's table); the accuracy gate holds it like every
//! int8 form. Grouped-query layers (K and V repeated for their query heads)
//! are written out as `decompose_attention` does; any layer this cannot
//! write stays the f32 `Attention` it was.

use crate::ir::{BinaryOp, DType, Graph, IrError, Op, Tensor, UnaryOp, Value};

use super::decompose_attention::{
    attention_name, match_at, merge_heads, split_heads, unexpanded, Heads, Match,
};
use super::{Pass, PassReport};

pub struct QuantizeAttention;

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
        let before = g.node_count();
        for m in &matches {
            let out = quantized(g, m)?;
            g.replace_uses(
                crate::ir::Value {
                    node: m.root,
                    slot: 0,
                },
                out,
            );
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: g.node_count() - before,
            nodes_removed: 0,
        })
    }
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

/// The largest |x| a tensor is given at least: an all-zero K or V (a
/// pruned head) gets a finite scale and quantizes to zeros, not 0/0.
const MIN_ABSMAX: f32 = 1e-30;

fn quantized(g: &mut Graph, m: &Match) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| attention_name(g, m, s);
    let Heads { q, k_t, v } = split_heads(g, m)?;
    let dq = g.add_node(&name(g, "query.quantize"), Op::DynamicQuantizeLinear, &[Some(q)])?;
    let out = |slot| Value { node: dq, slot };
    let (qq, qs, qz) = (out(0), out(1), out(2));
    let (kq, ks) = symmetric_s8(g, m, k_t, "key")?;
    let (vq, vs) = symmetric_s8(g, m, v, "value")?;

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
    let mut x = binary(g, m, "scaled", BinaryOp::Mul, sf, scale)?;
    if let Some(mask) = m.mask {
        let mask = unexpanded(g, mask);
        x = binary(g, m, "masked", BinaryOp::Add, x, mask)?;
    }
    let probs = g.add(&name(g, "softmax"), Op::Softmax { axis: -1 }, &[x])?;
    let pm = g.add(
        &name(g, "softmax.row_max"),
        Op::ReduceMax {
            axes: vec![-1],
            keepdims: true,
        },
        &[probs],
    )?;
    let normalized = binary(g, m, "softmax.normalized", BinaryOp::Div, probs, pm)?;
    let psn = name(g, "softmax.quantize_scale");
    let ps = g.add_const(&psn, Tensor::scalar_f32(1.0 / 255.0))?;
    let pzn = name(g, "softmax.zero_point");
    let pz = g.add_const(
        &pzn,
        Tensor::from_raw(DType::U8, vec![], vec![0u8].into()).expect("one u8"),
    )?;
    let pq = g.add(
        &name(g, "softmax.quantize"),
        Op::QuantizeLinear { axis: 1 },
        &[normalized, ps, pz],
    )?;

    let ci = g.add(&name(g, "context.int"), Op::MatMulInteger, &[pq, vq])?;
    let cf = g.add(&name(g, "context.float"), Op::Cast { to: DType::F32 }, &[ci])?;
    let cscale = binary(g, m, "context.int_scale", BinaryOp::Mul, ps, vs)?;
    let c0 = binary(g, m, "context.scaled", BinaryOp::Mul, cf, cscale)?;
    let ctx = binary(g, m, "context", BinaryOp::Mul, c0, pm)?;
    merge_heads(g, m, ctx)
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
    let sn = name(g, "unit_scale");
    let unit = g.add_const(&sn, Tensor::scalar_f32(1.0 / 127.0))?;
    let zn = name(g, "zero_point");
    let zero = g.add_const(
        &zn,
        Tensor::from_raw(DType::I8, vec![], vec![0u8].into()).expect("one i8"),
    )?;
    let q = g.add(
        &name(g, "quantize"),
        Op::QuantizeLinear { axis: 1 },
        &[normalized, unit, zero],
    )?;
    let scale = g.add(&name(g, "scale"), Op::Binary(BinaryOp::Mul), &[amax, unit])?;
    Ok((q, scale))
}

fn binary(g: &mut Graph, m: &Match, what: &str, op: BinaryOp, a: Value, b: Value) -> Result<Value, IrError> {
    let n = attention_name(g, m, what);
    g.add(&n, Op::Binary(op), &[a, b])
}
