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

    /// The GLU from one Linear of 2 × intermediate outputs, `intermediate.dense(x)`:
    /// `up · act(gate)` with `[up | gate]` (GTE's `up_gate_proj`, split as
    /// `torch.split(up_gate, intermediate_size, dim=-1)`), or, when
    /// `activate_first`, `act(input) · gate` with `[input | gate]`
    /// (ModernBERT's `Wi`: `input, gate = Wi(x).chunk(2)`).
    pub(super) fn packed_gated_linear_unit(
        &mut self,
        x: Value,
        p: &str,
        activate_first: bool,
    ) -> Result<Value, BuildError> {
        let width = self.config.intermediate_size;
        let both = self.linear(x, &format!("{p}.intermediate.dense"))?;
        let first = match activate_first {
            true => "input",
            false => "up",
        };
        let first = self.slice_last(both, 0, width, &format!("{p}.intermediate.{first}"))?;
        let gate = self.slice_last(both, width, 2 * width, &format!("{p}.intermediate.gate"))?;
        let (activated, other) = match activate_first {
            true => (first, gate),
            false => (gate, first),
        };
        let act = self.activation(
            activated,
            self.config.hidden_act,
            &format!("{p}.intermediate.act"),
        )?;
        let (a, b) = match activate_first {
            true => (act, other),
            false => (other, act),
        };
        self.binary(&format!("{p}.intermediate.glu"), BinaryOp::Mul, a, b)
    }
}
