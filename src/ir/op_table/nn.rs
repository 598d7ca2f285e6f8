//! Entries of the neural-network ops: products, reductions, softmax,
//! normalization, activations and attention.

use super::super::op::{GeluApproximation, Op};
use super::{
    between, entries, exactly, onnx, AttrSpec, Attrs,
    CostRule::{self, Uncounted},
};

/// ReduceMean, ReduceMax, ReduceMin, ReduceL2: `axes` became an input in opset 18.
const REDUCE: &[AttrSpec] = &[
    AttrSpec::ints("axes").input_since(1, 18),
    AttrSpec::flag("keepdims", true),
];

/// ReduceSum took `axes` as an input first (opset 13), the other
/// reductions at 18; both spell "no axes" with `noop_with_empty_axes`.
const REDUCE_SUM_ATTRS: &[AttrSpec] = &[
    AttrSpec::ints("axes").input_since(1, 13),
    AttrSpec::flag("keepdims", true),
];

entries! {
    MATMUL = onnx("MatMul", 1, exactly(2), CostRule::MatMul { b: 1 }, |_| Ok(Op::MatMul));
    /// alpha·op(A)·op(B) + beta·C; inputs A, B, C (optional).
    GEMM = onnx("Gemm", 1, between(2, 3), CostRule::Gemm, |a| {
        Ok(Op::Gemm {
            alpha: a.float("alpha")?,
            beta: a.float("beta")?,
            trans_a: a.flag("transA")?,
            trans_b: a.flag("transB")?,
        })
    })
    .with_attributes(&[
        AttrSpec::float("alpha", 1.0),
        AttrSpec::float("beta", 1.0),
        AttrSpec::flag("transA", false).field("trans_a"),
        AttrSpec::flag("transB", false).field("trans_b"),
    ]);
    REDUCE_MEAN = onnx("ReduceMean", 1, exactly(1), Uncounted, |a| {
        reduce(a, |axes, keepdims| Op::ReduceMean { axes, keepdims })
    })
    .with_attributes(REDUCE);
    /// Also over integers: Optimum's mask index sums the int32 mask.
    REDUCE_SUM = onnx("ReduceSum", 1, exactly(1), Uncounted, |a| reduce_any_axes(a, reduce_sum))
        .with_attributes(REDUCE_SUM_ATTRS);
    REDUCE_L2 = onnx("ReduceL2", 1, exactly(1), Uncounted, |a| reduce_any_axes(a, reduce_l2))
        .with_attributes(REDUCE);
    REDUCE_MAX = onnx("ReduceMax", 1, exactly(1), Uncounted, |a| {
        reduce(a, |axes, keepdims| Op::ReduceMax { axes, keepdims })
    })
    .with_attributes(REDUCE);
    REDUCE_MIN = onnx("ReduceMin", 1, exactly(1), Uncounted, |a| {
        reduce(a, |axes, keepdims| Op::ReduceMin { axes, keepdims })
    })
    .with_attributes(REDUCE);
    SOFTMAX = onnx("Softmax", 1, exactly(1), Uncounted, softmax).with_attributes(&[AttrSpec::int("axis", -1)]);
    /// Inputs: x, scale, bias (optional).
    LAYER_NORM = onnx("LayerNormalization", 17, between(2, 3), Uncounted, |a| {
        if a.node().output_count() > 1 {
            return Err("the mean and inv_std_dev outputs are not supported".into());
        }
        Ok(Op::LayerNorm {
            axis: a.int("axis")?,
            epsilon: a.float("epsilon")?,
        })
    })
    .with_attributes(&[AttrSpec::int("axis", -1), AttrSpec::float("epsilon", 1e-5)]);
    /// Inputs: x, scale. (No `stash_type` other than f32.)
    RMS_NORM = onnx("RMSNormalization", 23, exactly(2), Uncounted, |a| {
        if a.node().output_count() > 1 || a.node().int("stash_type").is_some_and(|t| t != 1) {
            return Err("only one output, statistics in f32".into());
        }
        Ok(Op::RmsNorm {
            axis: a.int("axis")?,
            epsilon: a.float("epsilon")?,
        })
    })
    .with_attributes(&[AttrSpec::int("axis", -1), AttrSpec::float("epsilon", 1e-5)]);
    GELU = onnx("Gelu", 20, exactly(1), Uncounted, |a| {
        let approximate = match a.string("approximate") {
            None => GeluApproximation::None,
            Some(s) => GeluApproximation::from_onnx(s)
                .ok_or_else(|| format!("approximate={:?}", String::from_utf8_lossy(s)))?,
        };
        Ok(Op::Gelu { approximate })
    })
    .with_attributes(&[AttrSpec::string("approximate")]);
    /// 3-D Attention: inputs Q, K, V, an additive mask (optional).
    ATTENTION = onnx("Attention", 23, between(3, 4), CostRule::Attention, |a| {
        let n = a.node();
        if n.input_count() > 4 || n.output_count() > 1 || n.int("is_causal").unwrap_or(0) != 0 {
            return Err("only Q, K, V and a mask, non-causal, one output".into());
        }
        let heads = |name: &str| n.int(name).and_then(|h| usize::try_from(h).ok()).filter(|&h| h > 0);
        let (Some(q_num_heads), Some(kv_num_heads)) = (heads("q_num_heads"), heads("kv_num_heads")) else {
            return Err("3-D Attention needs q_num_heads and kv_num_heads".into());
        };
        Ok(Op::Attention {
            q_num_heads,
            kv_num_heads,
            scale: n.float("scale"),
        })
    })
    .with_attributes(&[
        AttrSpec::required_int("q_num_heads"),
        AttrSpec::required_int("kv_num_heads"),
        AttrSpec::optional_float("scale"),
    ]);
    /// Half-split RoPE on 3-D input with [B, S, d/2] caches (no position
    /// ids): the form bertc writes for onnxruntime.
    ROTARY_EMBEDDING = onnx("RotaryEmbedding", 23, exactly(3), Uncounted, |a| {
        let n = a.node();
        if n.int("interleaved").unwrap_or(0) != 0 || n.int("rotary_embedding_dim").unwrap_or(0) != 0 {
            return Err("only the half-split form over whole heads (interleaved 0, rotary_embedding_dim 0)".into());
        }
        let num_heads = n.int("num_heads").and_then(|h| usize::try_from(h).ok()).filter(|&h| h > 0);
        let num_heads = num_heads.ok_or("3-D RotaryEmbedding needs num_heads")?;
        Ok(Op::RotaryEmbedding { num_heads })
    })
    .with_attributes(&[AttrSpec::required_int("num_heads")]);
}

fn reduce(a: &Attrs, op: fn(Vec<i64>, bool) -> Op) -> Result<Op, String> {
    let axes = a.ints("axes")?.ok_or("reducing over all axes is not supported")?;
    Ok(op(axes, a.flag("keepdims")?))
}

fn reduce_sum(axes: Vec<i64>, keepdims: bool) -> Op {
    Op::ReduceSum { axes, keepdims }
}

fn reduce_l2(axes: Vec<i64>, keepdims: bool) -> Op {
    Op::ReduceL2 { axes, keepdims }
}

/// A reduction whose axes may be absent or empty: with
/// `noop_with_empty_axes` the op passes its input through (an Identity),
/// without it it reduces every axis, listed here from the input's rank so
/// the IR op always names its axes.
fn reduce_any_axes(a: &Attrs, op: fn(Vec<i64>, bool) -> Op) -> Result<Op, String> {
    let axes = a.ints("axes")?.unwrap_or_default();
    if !axes.is_empty() {
        return Ok(op(axes, a.flag("keepdims")?));
    }
    if a.node().int("noop_with_empty_axes").unwrap_or(0) != 0 {
        return Ok(Op::Identity);
    }
    let rank = a
        .node()
        .input(0)
        .map(|x| x.shape.rank() as i64)
        .ok_or("no input")?;
    Ok(op((0..rank).collect(), a.flag("keepdims")?))
}

/// Before opset 13, Softmax flattens to 2-D at `axis` (default 1): the
/// same as the IR's only when that is the last axis.
fn softmax(a: &Attrs) -> Result<Op, String> {
    let opset = a.node().opset();
    if opset >= 13 {
        return Ok(Op::Softmax { axis: a.int("axis")? });
    }
    let rank = a
        .node()
        .input(0)
        .map(|x| x.shape.rank() as i64)
        .ok_or("no input")?;
    let axis = a.node().int("axis").unwrap_or(1);
    if axis != rank - 1 && axis != -1 {
        return Err(format!(
            "opset-{opset} Softmax over axis {axis} of a rank-{rank} input flattens several axes"
        ));
    }
    Ok(Op::Softmax { axis: -1 })
}
