//! Relative position scores (`position_embedding_type` relative_key and
//! relative_key_query) as transformers 4.x BertSelfAttention computes them:
//!
//! ```text
//! distance[l, r] = l − r + (max_position_embeddings − 1)     // [L, R]
//! P              = distance_embedding[distance]               // [L, R, d]
//! relative_key:       scores += einsum("bhld,lrd->bhlr", q, P)
//! relative_key_query: scores += einsum("bhld,lrd->bhlr", q, P)
//!                             + einsum("bhrd,lrd->bhlr", k, P)
//! ```
//!
//! added to Q·Kᵀ before the 1/√d scaling. The einsums are written as
//! batched MatMuls (batch over l, resp. r) so that every runtime runs them
//! with its matmul kernels, and the sum is one additive score bias — the
//! form fuse_attention folds into the fused Attention's mask.

use crate::config::PositionEmbeddingType;
use crate::ir::{BinaryOp, Op, Tensor, Value};

use super::{BuildError, Builder};

impl Builder<'_> {
    /// The relative score bias [B, heads, L, R] for one layer, from the
    /// layer's Q and K split into heads ([B, L, heads, d]).
    pub(super) fn relative_position_scores(
        &mut self,
        q_split: Value,
        k_split: Value,
        p: &str,
    ) -> Result<Value, BuildError> {
        let index = self.distance_index(q_split)?;
        let table = self.param(&format!("{p}.distance_embedding.weight"))?;
        let emb = self.g.add(
            &format!("{p}.distance_embedding"),
            Op::Gather { axis: 0 },
            &[table, index],
        )?;
        // einsum("bhld,lrd->bhlr", q, P): [L, B, h, d] @ [L, 1, d, R] → [L, B, h, R].
        let by_query = self.batched_by_position(
            q_split,
            emb,
            [0, 2, 1],
            [1, 2, 0, 3],
            &format!("{p}.relative_query"),
        )?;
        if self.config.position_embedding_type != PositionEmbeddingType::RelativeKeyQuery {
            return Ok(by_query);
        }
        // einsum("bhrd,lrd->bhlr", k, P): [R, B, h, d] @ [R, 1, d, L] → [R, B, h, L].
        let by_key = self.batched_by_position(
            k_split,
            emb,
            [1, 2, 0],
            [1, 2, 3, 0],
            &format!("{p}.relative_key"),
        )?;
        self.binary(&format!("{p}.relative_bias"), BinaryOp::Add, by_query, by_key)
    }

    /// `Transpose(x [B, S, h, d] → [S, B, h, d]) @ Unsqueeze(Transpose(P, emb_perm), 1)`,
    /// transposed back to [B, h, L, R] by `out_perm`.
    fn batched_by_position(
        &mut self,
        x: Value,
        emb: Value,
        emb_perm: [usize; 3],
        out_perm: [usize; 4],
        p: &str,
    ) -> Result<Value, BuildError> {
        let x = self.g.add(
            &format!("{p}.positions_first"),
            Op::Transpose {
                perm: vec![1, 0, 2, 3],
            },
            &[x],
        )?;
        let e = self.g.add(
            &format!("{p}.embedding_transpose"),
            Op::Transpose {
                perm: emb_perm.to_vec(),
            },
            &[emb],
        )?;
        let e = self.g.add(
            &format!("{p}.embedding_unsqueeze"),
            Op::Unsqueeze { axes: vec![1] },
            &[e],
        )?;
        let y = self.g.add(&format!("{p}.matmul"), Op::MatMul, &[x, e])?;
        Ok(self.g.add(
            &format!("{p}.transpose"),
            Op::Transpose {
                perm: out_perm.to_vec(),
            },
            &[y],
        )?)
    }

    /// `l − r + max − 1` for l, r in 0..S: built once, shared by every layer.
    pub(super) fn distance_index(&mut self, q_split: Value) -> Result<Value, BuildError> {
        if let Some(v) = self.distance_index {
            return Ok(v);
        }
        let p = "encoder.relative_distance";
        let d = self.position_differences(q_split, p)?;
        let offset = self.config.max_position_embeddings as i64 - 1;
        let offset = self
            .g
            .add_const(&format!("{p}.offset"), Tensor::scalar_i64(offset))?;
        let index = self.binary(&format!("{p}.index"), BinaryOp::Add, d, offset)?;
        self.distance_index = Some(index);
        Ok(index)
    }
}
