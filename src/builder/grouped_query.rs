//! Grouped-query attention (EuroBERT's, Llama's): keys and values are
//! projected to `num_key_value_heads` heads, and query head h reads
//! key/value head `h / (heads / kv_heads)` — transformers' `repeat_kv`,
//! each key/value head repeated for the consecutive query heads of its
//! group, which is also how ONNX's `Attention` (opset 23) reads K and V
//! with `kv_num_heads` < `q_num_heads`.

use crate::ir::{Op, Tensor, Value};

use super::{BuildError, Builder};

/// The key/value head each of `heads` query heads reads.
pub fn repeated_kv_heads(heads: usize, kv_heads: usize) -> Vec<i64> {
    let group = (heads / kv_heads.max(1)).max(1);
    (0..heads).map(|h| (h / group) as i64).collect()
}

impl Builder<'_> {
    /// `x` [B, S, kv_heads, d] → [B, S, heads, d], head h a copy of head
    /// `h / (heads / kv_heads)`: one Gather over the heads axis, the form
    /// `fuse_attention` recognizes as the grouping.
    pub(super) fn repeat_kv_heads(
        &mut self,
        x: Value,
        heads: usize,
        kv_heads: usize,
        p: &str,
    ) -> Result<Value, BuildError> {
        let index = self.g.add_const(
            &format!("{p}.kv_head_index"),
            Tensor::vec_i64(&repeated_kv_heads(heads, kv_heads)),
        )?;
        Ok(self
            .g
            .add(&format!("{p}.repeat_kv"), Op::Gather { axis: 2 }, &[x, index])?)
    }
}
