//! The gated feed-forward block (GLU, Shazeer 2020): the up projection
//! multiplied by the activated gate projection. SwiGLU when the activation
//! is silu (NomicBERT's `fc11(x) · silu(fc12(x))`, EuroBERT's
//! `up_proj(x) · silu(gate_proj(x))`), GeGLU with GELU. GTE packs both
//! projections into one Linear (`up_gate_proj`, outputs `[up | gate]`).

use crate::ir::{BinaryOp, Value};

use super::{BuildError, Builder};

impl Builder<'_> {
    /// `intermediate.dense(x) · act(intermediate.gate(x))` for layer `p`
    /// (BERT's names; the family's row renames them), the input of
    /// `output.dense`.
    pub(super) fn gated_linear_unit(&mut self, x: Value, p: &str) -> Result<Value, BuildError> {
        let up = self.linear(x, &format!("{p}.intermediate.dense"))?;
        let gate = self.linear(x, &format!("{p}.intermediate.gate"))?;
        let act = self.activation(gate, self.config.hidden_act, &format!("{p}.intermediate.act"))?;
        self.binary(&format!("{p}.intermediate.glu"), BinaryOp::Mul, up, act)
    }

    /// `up · act(gate)` with `[up | gate] = intermediate.dense(x)`, one
    /// Linear of 2 × intermediate outputs (GTE's `up_gate_proj`, split as
    /// `torch.split(up_gate, intermediate_size, dim=-1)`).
    pub(super) fn packed_gated_linear_unit(&mut self, x: Value, p: &str) -> Result<Value, BuildError> {
        let width = self.config.intermediate_size;
        let both = self.linear(x, &format!("{p}.intermediate.dense"))?;
        let up = self.slice_last(both, 0, width, &format!("{p}.intermediate.up"))?;
        let gate = self.slice_last(both, width, 2 * width, &format!("{p}.intermediate.gate"))?;
        let act = self.activation(gate, self.config.hidden_act, &format!("{p}.intermediate.act"))?;
        self.binary(&format!("{p}.intermediate.glu"), BinaryOp::Mul, up, act)
    }
}
