//! Entries of onnxruntime's contrib ops (domain `com.microsoft`): the ones
//! `--target onnxruntime` emits, and the fused int8 products onnxruntime's
//! quantizer and optimizer write.

use super::super::op::{ContribOp, Op};
use super::{
    between, entries, exactly, microsoft, AttrSpec, Attrs,
    CostRule::{self, Uncounted},
};

/// onnxruntime's default epsilon for its fused layer norms.
const EPSILON: &[AttrSpec] = &[AttrSpec::float("epsilon", 1e-12)];

const ATTENTION_ATTRIBUTES: &[AttrSpec] = &[
    AttrSpec::required_int("num_heads"),
    AttrSpec::optional_float("scale"),
    AttrSpec::optional_float("mask_filter_value"),
];

/// num_heads, scale and mask_filter_value of an `Attention` or
/// `QAttention` node of the one form bertc reproduces.
fn attention_attributes(a: &Attrs<'_>, op: &str) -> Result<(usize, Option<f32>, Option<f32>), String> {
    let n = a.node();
    let heads = n.int("num_heads").filter(|&h| h > 0);
    let extra = ["unidirectional", "past_present_share_buffer", "do_rotary"]
        .iter()
        .any(|name| n.int(name).is_some_and(|i| i != 0));
    match heads {
        Some(h) if !extra && !n.has("qkv_hidden_sizes") => {
            Ok((h as usize, n.float("scale"), n.float("mask_filter_value")))
        }
        _ => Err(format!(
            "only bidirectional {op} (unidirectional=0) with num_heads and packed equal Q/K/V, no past state \
             and no rotary"
        )),
    }
}

entries! {
    /// Inputs: input, skip, gamma, beta, bias (optional).
    SKIP_LAYER_NORM = microsoft("SkipLayerNormalization", between(4, 5), Uncounted, |a| {
        Ok(Op::Contrib(ContribOp::SkipLayerNorm {
            epsilon: a.float("epsilon")?,
        }))
    })
    .with_attributes(EPSILON);
    BIAS_GELU = microsoft("BiasGelu", exactly(2), Uncounted, |_| Ok(Op::Contrib(ContribOp::BiasGelu)));
    FAST_GELU = microsoft("FastGelu", exactly(2), Uncounted, |_| Ok(Op::Contrib(ContribOp::FastGelu)));
    /// Inputs: input_ids, segment_ids, word, position, segment tables,
    /// gamma, beta, mask, position_ids (segment_ids and its table, the mask
    /// and position_ids optional: DistilBERT's files have no segments, so
    /// only input_ids is required up front; the rest are checked by name).
    /// Outputs: output, mask_index.
    EMBED_LAYER_NORM = microsoft("EmbedLayerNormalization", between(1, 9), Uncounted, |a| {
        if a.node().output_count() > 2 {
            return Err("the embedding_sum output is not supported".into());
        }
        Ok(Op::Contrib(ContribOp::EmbedLayerNorm {
            epsilon: a.float("epsilon")?,
        }))
    })
    .with_attributes(EPSILON)
    .with_outputs(2);
    /// Inputs: input, packed weights [H, 3H], bias [3H], mask (optional):
    /// raw int32 [B, S], or a mask index [B]. No past state, no bias input.
    ATTENTION = microsoft("Attention", between(3, 4), CostRule::PackedAttention, |a| {
        let (num_heads, scale, mask_filter_value) = attention_attributes(a, "Attention")?;
        Ok(Op::Contrib(ContribOp::Attention {
            num_heads,
            scale,
            mask_filter_value,
        }))
    })
    .with_attributes(ATTENTION_ATTRIBUTES)
    .with_kind("com.microsoft.Attention");
    /// Inputs: input, weights, bias, input_scale, weight_scale, mask,
    /// input_zero_point, weight_zero_point, past (the last four optional;
    /// a past state is refused where the op is read).
    Q_ATTENTION = microsoft("QAttention", between(5, 9), CostRule::PackedAttention, |a| {
        let (num_heads, scale, mask_filter_value) = attention_attributes(a, "QAttention")?;
        Ok(Op::Contrib(ContribOp::QAttention {
            num_heads,
            scale,
            mask_filter_value,
        }))
    })
    .with_attributes(ATTENTION_ATTRIBUTES);
    /// Inputs: input_ids, segment_ids, the five 8-bit tensors (word,
    /// position, segment tables, gamma, beta), mask (may be empty), their
    /// five scales and five zero points. Outputs: output, mask_index.
    Q_EMBED_LAYER_NORM = microsoft("QEmbedLayerNormalization", exactly(18), Uncounted, |a| {
        Ok(Op::Contrib(ContribOp::QEmbedLayerNorm {
            epsilon: a.float("epsilon")?,
        }))
    })
    .with_attributes(EPSILON)
    .with_outputs(2);
    /// Inputs: A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias (the last three optional).
    MATMUL_INTEGER_TO_FLOAT = microsoft("MatMulIntegerToFloat", between(4, 7), CostRule::MatMul { b: 1 }, |_| {
        Ok(Op::Contrib(ContribOp::MatMulIntegerToFloat))
    });
    /// Inputs: A (f32), B, b_scale, b_zero_point, bias (the last two optional).
    DYNAMIC_QUANTIZE_MATMUL = microsoft("DynamicQuantizeMatMul", between(3, 5), CostRule::MatMul { b: 1 }, |_| {
        Ok(Op::Contrib(ContribOp::DynamicQuantizeMatMul))
    });
}
