//! Sliding-window attention (ModernBERT's local layers): query i sees key j
//! only when |i − j| ≤ `local_attention / 2`, on top of the padding mask.
//!
//! The two masks meet as transformers' do: a key hidden by either gets
//! exactly `f32::MIN` added, never twice (`MIN + MIN` is −∞, and a row with
//! every key hidden would then softmax to NaN). Such rows exist — padding
//! positions whose whole window is padding — and with every score at
//! exactly `MIN` (score + MIN rounds to MIN) softmax is uniform over all
//! keys, padding included, which is what PyTorch's eager attention gives.
//!
//! Runtimes do not all agree on such rows (onnxruntime's fused Attention
//! does not give the uniform row; SDPA gives zeros), so their output is
//! written as what it is — the mean of V over all keys — chosen by a
//! `Where` after the attention: whatever a kernel makes of an all-`MIN`
//! row is discarded. Kept outside the attention, the fix leaves the
//! attention itself a plain masked one, which `block_sliding_attention`
//! recognizes and computes in blocks along the band.

use crate::config::LayerAttention;
use crate::ir::{BinaryOp, Op, Tensor, UnaryOp, Value};

use super::{BuildError, Builder};

impl Builder<'_> {
    /// The sliding layers' additive mask [B, 1, S, S]: `min(mask, window)`
    /// with `mask` the padding mask [B, 1, 1, S] and `window` 0 inside the
    /// band and `f32::MIN` outside; `None` when the config has no sliding
    /// layers. `x` is any [B, S, …] value giving S.
    pub(super) fn sliding_window_mask(&mut self, mask: Value, x: Value) -> Result<Option<Value>, BuildError> {
        let Some(reach) = self.config.sliding_attention.as_ref().map(|s| s.reach()) else {
            return Ok(None);
        };
        let p = "encoder.sliding_window";
        let d = self.position_differences(x, p)?;
        let d = self
            .g
            .add(&format!("{p}.distance"), Op::Unary(UnaryOp::Abs), &[d])?;
        let reach = self
            .g
            .add_const(&format!("{p}.reach"), Tensor::scalar_i64(reach as i64))?;
        let inside = self.binary(&format!("{p}.inside"), BinaryOp::LessOrEqual, d, reach)?;
        let open = self.scalar(&format!("{p}.open"), 0.0)?;
        let closed = self.scalar(&format!("{p}.closed"), f32::MIN)?;
        let band = self
            .g
            .add(&format!("{p}.band"), Op::Where, &[inside, open, closed])?;
        let both = self.binary(&format!("{p}.both"), BinaryOp::Min, mask, band)?;
        // The rows with no visible key: their best score is still MIN.
        let best = self.g.add(
            &format!("{p}.best"),
            Op::ReduceMax {
                axes: vec![-1],
                keepdims: true,
            },
            &[both],
        )?;
        let half_min = self.scalar(&format!("{p}.half_min"), f32::MIN / 2.0)?;
        let blind = self.binary(&format!("{p}.blind"), BinaryOp::LessOrEqual, best, half_min)?;
        // [B, 1, S, 1] → [B, S, 1], beside the merged heads' context.
        let blind = self.g.add(
            &format!("{p}.blind_rows"),
            Op::Squeeze { axes: vec![1] },
            &[blind],
        )?;
        self.sliding_blind_rows = Some(blind);
        Ok(Some(both))
    }

    /// Layer `layer`'s context `context` [B, S, H] with the rows a sliding
    /// window leaves no key replaced by the mean of `value` [B, S, H] over
    /// all positions: the uniform softmax PyTorch gives them (see the
    /// module's notes).
    pub(super) fn sliding_context(
        &mut self,
        context: Value,
        value: Value,
        layer: usize,
        p: &str,
    ) -> Result<Value, BuildError> {
        let (LayerAttention::SlidingAttention, Some(blind)) =
            (self.config.layer_attention(layer), self.sliding_blind_rows)
        else {
            return Ok(context);
        };
        self.uniform_rows(context, value, blind, p, "window")
    }
}
