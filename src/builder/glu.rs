//! The gated feed-forward block (GLU, Shazeer 2020): the up projection
//! multiplied by the activated gate projection. SwiGLU when the activation
//! is silu (NomicBERT's `fc11(x) · silu(fc12(x))`, EuroBERT's
//! `up_proj(x) · silu(gate_proj(x))`), GeGLU with GELU.

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

    /// `act(input) · gate` from one Linear whose rows are [input | gate]
    /// (ModernBERT's `Wi`: `input, gate = Wi(x).chunk(2)`), the input of
    /// `output.dense`.
    pub(super) fn fused_gated_linear_unit(&mut self, x: Value, p: &str) -> Result<Value, BuildError> {
        let both = self.linear(x, &format!("{p}.intermediate.dense"))?;
        let n = self.config.intermediate_size;
        let input = self.slice_last(both, 0, n, &format!("{p}.intermediate.input"))?;
        let gate = self.slice_last(both, n, 2 * n, &format!("{p}.intermediate.gate"))?;
        let act = self.activation(input, self.config.hidden_act, &format!("{p}.intermediate.act"))?;
        self.binary(&format!("{p}.intermediate.glu"), BinaryOp::Mul, act, gate)
    }
}
