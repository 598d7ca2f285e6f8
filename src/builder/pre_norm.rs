//! Pre-norm encoder layers (ModernBERT): each sublayer reads a normed copy
//! of the residual stream and adds its output back, `x + f(norm(x))`, where
//! BERT norms after the sum. Layer 0 of ModernBERT has no attention norm
//! (its `attn_norm` is an Identity: the embeddings' norm precedes it); the
//! model's last norm comes after the last layer (bert.rs).

use crate::config::BertConfig;
use crate::family::NormPlacement;
use crate::ir::{BinaryOp, Value};

use super::{BuildError, Builder};

/// Whether layer `i` has its attention norm: every post-norm layer does,
/// and every pre-norm one but a first whose row says it has none.
pub(super) fn has_attention_norm(c: &BertConfig, i: usize) -> bool {
    match c.family.spec().norms {
        NormPlacement::Post => true,
        NormPlacement::Pre {
            first_attention_norm, ..
        } => i > 0 || first_attention_norm,
    }
}

impl Builder<'_> {
    /// Layer `i`: `x + attention(norm₁(x))`, then `y + mlp(norm₂(y))`. The
    /// norms keep BERT's names (`attention.output.LayerNorm`,
    /// `output.LayerNorm`; the family's row renames them).
    pub(super) fn pre_norm_layer(&mut self, x: Value, mask: Value, i: usize) -> Result<Value, BuildError> {
        let p = format!("encoder.layer.{i}");
        let h = match has_attention_norm(self.config, i) {
            true => self.layer_norm(x, &format!("{p}.attention.output.LayerNorm"))?,
            false => x,
        };
        let attn = self.self_attention(h, mask, &format!("{p}.attention.self"), i)?;
        let dense = self.linear(attn, &format!("{p}.attention.output.dense"))?;
        let x = self.binary(&format!("{p}.attention.output.residual"), BinaryOp::Add, x, dense)?;

        let h = self.layer_norm(x, &format!("{p}.output.LayerNorm"))?;
        let act = self.feed_forward(h, &p)?;
        let out = self.linear(act, &format!("{p}.output.dense"))?;
        self.binary(&format!("{p}.output.residual"), BinaryOp::Add, x, out)
    }
}
