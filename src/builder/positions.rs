//! The embedding parts where BERT's relatives differ: RoBERTa's position
//! ids counted from the real tokens, the one token-type row of models
//! without a `token_type_ids` input, and the projection of ELECTRA's and
//! ALBERT's narrower embeddings to the hidden size.

use crate::family::EmbeddingProjection;
use crate::ir::{BinaryOp, Op, Tensor, Value};

use super::{BuildError, Builder};

impl Builder<'_> {
    /// transformers' `create_position_ids_from_input_ids`, in the graph:
    /// `m = (ids ≠ pad)` as 0/1, `cumsum(m, 1) · m + pad`. Real tokens get
    /// pad + 1, pad + 2, … wherever they start, so a left-padded row gets
    /// the positions of its unpadded self; padding gets `pad`.
    pub(super) fn padding_position_ids(&mut self, input_ids: Value) -> Result<Value, BuildError> {
        let p = "embeddings.position_ids";
        let pad = self
            .config
            .pad_token_id
            .ok_or_else(|| BuildError::Unsupported("position ids from padding need pad_token_id".into()))?;
        let pad = self.g.add_const(&format!("{p}.pad"), Tensor::scalar_i64(pad))?;
        let is_pad = self.binary(&format!("{p}.is_pad"), BinaryOp::Equal, input_ids, pad)?;
        // A Where rather than a Cast to int64: tract reads a Cast to int64
        // as one to its symbolic dimension type, which CumSum cannot sum.
        let zero = self.g.add_const(&format!("{p}.zero"), Tensor::scalar_i64(0))?;
        let one = self.g.add_const(&format!("{p}.one"), Tensor::scalar_i64(1))?;
        let real = self
            .g
            .add(&format!("{p}.real"), Op::Where, &[is_pad, zero, one])?;
        let axis = self.g.add_const(&format!("{p}.axis"), Tensor::scalar_i64(1))?;
        let count = self.g.add(&format!("{p}.count"), Op::CumSum, &[real, axis])?;
        // cumsum(m) · m as a Where: at S = 1 tract folds the CumSum away
        // and reads m · m as Square, which it has for floats only (issue
        // 25 N9: "Square does not support I64").
        let count = self
            .g
            .add(&format!("{p}.count_real"), Op::Where, &[is_pad, zero, count])?;
        self.binary(&format!("{p}.offset"), BinaryOp::Add, count, pad)
    }

    /// `0..S` (int64), S the length of axis 1 of `x` at run time, named
    /// `{p}.*`: the positions relative and rotary attention compute from.
    pub(super) fn sequence_positions(&mut self, x: Value, p: &str) -> Result<Value, BuildError> {
        let shape = self.g.add(&format!("{p}.shape"), Op::Shape, &[x])?;
        let axis = self
            .g
            .add_const(&format!("{p}.seq_axis"), Tensor::scalar_i64(1))?;
        let len = self
            .g
            .add(&format!("{p}.seq_len"), Op::Gather { axis: 0 }, &[shape, axis])?;
        let zero = self.g.add_const(&format!("{p}.start"), Tensor::scalar_i64(0))?;
        let one = self.g.add_const(&format!("{p}.step"), Tensor::scalar_i64(1))?;
        Ok(self
            .g
            .add(&format!("{p}.positions"), Op::Range, &[zero, len, one])?)
    }

    /// `i − j` (int64 [S, S]) for query position i and key position j, S
    /// the length of axis 1 of `x`, named `{p}.*`: the distances relative
    /// attention and sliding windows read.
    pub(super) fn position_differences(&mut self, x: Value, p: &str) -> Result<Value, BuildError> {
        let pos = self.sequence_positions(x, p)?;
        let (rows, cols) = self.query_and_key_axes(pos, p)?;
        self.binary(&format!("{p}.difference"), BinaryOp::Sub, rows, cols)
    }

    /// A value `v` [S] per position as [S, 1] (down the queries) and
    /// [1, S] (across the keys), named `{p}.query_positions` and
    /// `{p}.key_positions`: an [S, S] grid broadcasts from the two.
    pub(super) fn query_and_key_axes(&mut self, v: Value, p: &str) -> Result<(Value, Value), BuildError> {
        let rows = self.g.add(
            &format!("{p}.query_positions"),
            Op::Unsqueeze { axes: vec![1] },
            &[v],
        )?;
        let cols = self.g.add(
            &format!("{p}.key_positions"),
            Op::Unsqueeze { axes: vec![0] },
            &[v],
        )?;
        Ok((rows, cols))
    }

    /// Models without a `token_type_ids` input: RoBERTa's embeddings still
    /// add row 0 of their token-type table (transformers' zero buffer);
    /// DistilBERT and MPNet have no table, nor GTE with `type_vocab_size` 0.
    pub(super) fn constant_token_type(&mut self, words: Value) -> Result<Value, BuildError> {
        if !self
            .config
            .family
            .spec()
            .token_types
            .has_table(self.config.type_vocab_size)
        {
            return Ok(words);
        }
        let table = self.param("embeddings.token_type_embeddings.weight")?;
        let zero = self
            .g
            .add_const("embeddings.token_type_row", Tensor::scalar_i64(0))?;
        let row = self.g.add(
            "embeddings.token_type_embeddings",
            Op::Gather { axis: 0 },
            &[table, zero],
        )?;
        self.binary("embeddings.add_token_type", BinaryOp::Add, words, row)
    }

    /// ELECTRA projects `embedding_size` to the hidden size when they
    /// differ (`embeddings_project`); ALBERT always does
    /// (`encoder.embedding_hidden_mapping_in`).
    pub(super) fn embedding_projection(&mut self, x: Value) -> Result<Value, BuildError> {
        match projection(self.config) {
            Some((name, false)) => self.linear(x, name),
            Some((_, true)) | None => Ok(x),
        }
    }

    /// The embeddings' norm, after DeBERTa's `embed_proj` where it has one.
    pub(super) fn embedding_norm(&mut self, sum: Value) -> Result<Value, BuildError> {
        let sum = match projection(self.config) {
            Some((name, true)) => self.linear(sum, name)?,
            Some((_, false)) | None => sum,
        };
        self.layer_norm(sum, "embeddings.LayerNorm")
    }
}

/// The Linear from the embeddings to the encoder, if the model has one,
/// and whether it comes before the embeddings' norm (DeBERTa's).
pub(super) fn projection(c: &crate::config::BertConfig) -> Option<(&'static str, bool)> {
    let resized = c.embedding_size() != c.hidden_size;
    match c.family.spec().embedding_projection {
        EmbeddingProjection::None => None,
        EmbeddingProjection::WhenResized(name) => resized.then_some((name, false)),
        EmbeddingProjection::Always(name) => Some((name, false)),
        EmbeddingProjection::BeforeNormWhenResized(name) => resized.then_some((name, true)),
    }
}
