//! Sliding-window attention (ModernBERT's local layers): query i sees key j
//! only when |i − j| ≤ `local_attention / 2`, on top of the padding mask.
//!
//! The two masks meet as transformers' do: a key hidden by either gets
//! exactly `f32::MIN` added, never twice (`MIN + MIN` is −∞, and a row with
//! every key hidden would then softmax to NaN). Such rows exist — padding
//! positions whose whole window is padding — and with every score at
//! exactly `MIN` (score + MIN rounds to MIN) softmax is uniform over all
//! keys, padding included, which is what PyTorch's eager attention gives.

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
        let pos = self.sequence_positions(x, p)?;
        let rows = self.g.add(
            &format!("{p}.query_positions"),
            Op::Unsqueeze { axes: vec![1] },
            &[pos],
        )?;
        let cols = self.g.add(
            &format!("{p}.key_positions"),
            Op::Unsqueeze { axes: vec![0] },
            &[pos],
        )?;
        let d = self.binary(&format!("{p}.difference"), BinaryOp::Sub, rows, cols)?;
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
        Ok(Some(self.binary(
            &format!("{p}.mask"),
            BinaryOp::Min,
            mask,
            band,
        )?))
    }
}
