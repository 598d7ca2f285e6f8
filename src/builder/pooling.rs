//! sentence-transformers' Pooling and Normalize modules as graph: how the
//! token vectors become one sentence vector (`sentence_embedding`).
//!
//! Each mode is written as sentence-transformers 3.x computes it
//! (`models/Pooling.py`), padding excluded through the attention mask, so
//! that a compiled folder reproduces `SentenceTransformer.encode`.

use std::fmt;

use crate::ir::{BinaryOp, DType, Op, Tensor, UnaryOp, Value};

use super::{BuildError, Builder};

/// How the token vectors are pooled (one `pooling_mode_*` of
/// `1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pooling {
    /// `pooling_mode_cls_token`: the first token's vector.
    Cls,
    /// `pooling_mode_mean_tokens`: the mean over real tokens.
    #[default]
    Mean,
    /// `pooling_mode_max_tokens`: the element-wise max over real tokens.
    Max,
    /// `pooling_mode_mean_sqrt_len_tokens`: the sum over real tokens
    /// divided by the square root of their number.
    MeanSqrtLen,
}

impl Pooling {
    pub const ALL: [Pooling; 4] = [Pooling::Cls, Pooling::Mean, Pooling::Max, Pooling::MeanSqrtLen];

    /// The name metadata and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean-sqrt-len",
        }
    }

    /// The `1_Pooling/config.json` field that selects this mode.
    pub fn config_field(self) -> &'static str {
        match self {
            Pooling::Cls => "pooling_mode_cls_token",
            Pooling::Mean => "pooling_mode_mean_tokens",
            Pooling::Max => "pooling_mode_max_tokens",
            Pooling::MeanSqrtLen => "pooling_mode_mean_sqrt_len_tokens",
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sentence-embedding head: a pooling mode, then L2 normalisation
/// when the model lists a Normalize module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SentencePooling {
    pub mode: Pooling,
    pub normalize: bool,
}

impl Default for SentencePooling {
    /// all-MiniLM-L6-v2's and most sentence-transformers models': mean,
    /// normalised (what `--head sentence-embedding` builds without a
    /// modules.json).
    fn default() -> Self {
        SentencePooling {
            mode: Pooling::Mean,
            normalize: true,
        }
    }
}

const P: &str = "sentence_embedding";

impl Builder<'_> {
    /// `sentence_embedding` [B, H] from the encoder output [B, S, H].
    pub(super) fn sentence_embedding(
        &mut self,
        hidden: Value,
        attention_mask: Value,
        pooling: SentencePooling,
    ) -> Result<Value, BuildError> {
        let pooled = match pooling.mode {
            Pooling::Cls => self.cls_token(hidden)?,
            Pooling::Mean => {
                let (sum, count) = self.masked_sum_and_count(hidden, attention_mask)?;
                let floor = self.scalar(&format!("{P}.count_floor"), 1e-9)?;
                let count = self.binary(&format!("{P}.count_clamp"), BinaryOp::Max, count, floor)?;
                self.binary(&format!("{P}.mean"), BinaryOp::Div, sum, count)?
            }
            Pooling::MeanSqrtLen => self.mean_sqrt_len(hidden, attention_mask)?,
            Pooling::Max => self.masked_max(hidden, attention_mask)?,
        };
        match pooling.normalize {
            true => self.l2_normalize(pooled),
            false => Ok(pooled),
        }
    }

    /// `hidden[:, 0]`.
    fn cls_token(&mut self, hidden: Value) -> Result<Value, BuildError> {
        let zero = self
            .g
            .add_const(&format!("{P}.cls_index"), Tensor::scalar_i64(0))?;
        Ok(self
            .g
            .add(&format!("{P}.cls_token"), Op::Gather { axis: 1 }, &[hidden, zero])?)
    }

    /// The mask as f32 [B, S, 1].
    fn float_mask(&mut self, attention_mask: Value) -> Result<Value, BuildError> {
        let m = self.g.add(
            &format!("{P}.mask_unsqueeze"),
            Op::Unsqueeze { axes: vec![2] },
            &[attention_mask],
        )?;
        Ok(self
            .g
            .add(&format!("{P}.mask_cast"), Op::Cast { to: DType::F32 }, &[m])?)
    }

    /// `(Σ mᵢhᵢ, Σ mᵢ)` scaled by 1/S: both written as means over the
    /// token axis (S cancels in their ratio), so no ReduceSum is needed.
    fn masked_sum_and_count(
        &mut self,
        hidden: Value,
        attention_mask: Value,
    ) -> Result<(Value, Value), BuildError> {
        let m = self.float_mask(attention_mask)?;
        let masked = self.binary(&format!("{P}.masked"), BinaryOp::Mul, hidden, m)?;
        let mean_over_tokens = Op::ReduceMean {
            axes: vec![1],
            keepdims: false,
        };
        let sum = self
            .g
            .add(&format!("{P}.token_mean"), mean_over_tokens.clone(), &[masked])?;
        let count = self.g.add(&format!("{P}.mask_mean"), mean_over_tokens, &[m])?;
        Ok((sum, count))
    }

    /// `Σ mᵢhᵢ / sqrt(max(Σ mᵢ, 1e-9))`. Unlike the mean, S does not cancel:
    /// the means are multiplied back by S (read from the shape).
    fn mean_sqrt_len(&mut self, hidden: Value, attention_mask: Value) -> Result<Value, BuildError> {
        let (sum, count) = self.masked_sum_and_count(hidden, attention_mask)?;
        let shape = self.g.add(&format!("{P}.shape"), Op::Shape, &[hidden])?;
        let axis = self
            .g
            .add_const(&format!("{P}.seq_axis"), Tensor::scalar_i64(1))?;
        let s = self
            .g
            .add(&format!("{P}.seq_len"), Op::Gather { axis: 0 }, &[shape, axis])?;
        let s = self
            .g
            .add(&format!("{P}.seq_len_f32"), Op::Cast { to: DType::F32 }, &[s])?;
        let sum = self.binary(&format!("{P}.token_sum"), BinaryOp::Mul, sum, s)?;
        let count = self.binary(&format!("{P}.mask_sum"), BinaryOp::Mul, count, s)?;
        let floor = self.scalar(&format!("{P}.count_floor"), 1e-9)?;
        let count = self.binary(&format!("{P}.count_clamp"), BinaryOp::Max, count, floor)?;
        let root = self.unary(&format!("{P}.count_sqrt"), UnaryOp::Sqrt, count)?;
        self.binary(&format!("{P}.mean_sqrt_len"), BinaryOp::Div, sum, root)
    }

    /// Padding set to -1e9, then the max over tokens, as
    /// sentence-transformers does: `h·m + (m − 1)·1e9` is exactly `h` on
    /// real tokens (m = 1) and exactly -1e9 on padding (m = 0).
    fn masked_max(&mut self, hidden: Value, attention_mask: Value) -> Result<Value, BuildError> {
        let m = self.float_mask(attention_mask)?;
        let kept = self.binary(&format!("{P}.masked"), BinaryOp::Mul, hidden, m)?;
        let one = self.scalar(&format!("{P}.one"), 1.0)?;
        let off = self.binary(&format!("{P}.mask_off"), BinaryOp::Sub, m, one)?;
        let big = self.scalar(&format!("{P}.pad_value"), 1e9)?;
        let fill = self.binary(&format!("{P}.pad_fill"), BinaryOp::Mul, off, big)?;
        let filled = self.binary(&format!("{P}.padded"), BinaryOp::Add, kept, fill)?;
        Ok(self.g.add(
            &format!("{P}.token_max"),
            Op::ReduceMax {
                axes: vec![1],
                keepdims: false,
            },
            &[filled],
        )?)
    }

    /// `F.normalize` (p 2, eps 1e-12): `e / max(‖e‖, 1e-12)`, ‖e‖² written
    /// as H·mean(e²).
    fn l2_normalize(&mut self, e: Value) -> Result<Value, BuildError> {
        let sq = self.binary(&format!("{P}.square"), BinaryOp::Mul, e, e)?;
        let msq = self.g.add(
            &format!("{P}.square_mean"),
            Op::ReduceMean {
                axes: vec![-1],
                keepdims: true,
            },
            &[sq],
        )?;
        let h = self.scalar(&format!("{P}.hidden_size"), self.config.hidden_size as f32)?;
        let ssq = self.binary(&format!("{P}.square_sum"), BinaryOp::Mul, msq, h)?;
        let norm = self.unary(&format!("{P}.norm"), UnaryOp::Sqrt, ssq)?;
        let eps = self.scalar(&format!("{P}.norm_floor"), 1e-12)?;
        let norm = self.binary(&format!("{P}.norm_clamp"), BinaryOp::Max, norm, eps)?;
        self.binary(&format!("{P}.normalize"), BinaryOp::Div, e, norm)
    }
}
