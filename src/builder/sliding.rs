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
//! does not give the uniform row; SDPA gives zeros), so they are removed:
//! their mask becomes 0 and their query 0, which makes every score 0 and
//! softmax exactly uniform in any kernel — the same numbers, with no row
//! left fully masked.

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
        let zero = self.scalar(&format!("{p}.zero"), 0.0)?;
        let one = self.scalar(&format!("{p}.one"), 1.0)?;
        let scale = self
            .g
            .add(&format!("{p}.query_scale"), Op::Where, &[blind, zero, one])?;
        // [B, 1, S, 1] → [B, S, 1], to scale the queries before the heads split.
        let scale = self.g.add(
            &format!("{p}.query_scale_rows"),
            Op::Squeeze { axes: vec![1] },
            &[scale],
        )?;
        self.sliding_query_scale = Some(scale);
        let mask = self
            .g
            .add(&format!("{p}.mask"), Op::Where, &[blind, zero, both])?;
        Ok(Some(mask))
    }

    /// Layer `layer`'s queries `q` [B, S, H], zeroed where a sliding layer's
    /// window leaves a query no key (see the module's notes).
    pub(super) fn sliding_query(&mut self, q: Value, layer: usize, p: &str) -> Result<Value, BuildError> {
        match (self.config.layer_attention(layer), self.sliding_query_scale) {
            (LayerAttention::SlidingAttention, Some(scale)) => {
                self.binary(&format!("{p}.query.window_scale"), BinaryOp::Mul, q, scale)
            }
            _ => Ok(q),
        }
    }
}
