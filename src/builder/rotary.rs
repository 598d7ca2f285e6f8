//! Rotary position embeddings (RoPE), as transformers' `apply_rotary_pos_emb`
//! computes them: each query and key is rotated pairwise by angles
//! `position · θ^(−2i/dim)`, so that their dot product depends on their
//! distance only. Families differ in the base θ, the rotated width (all of
//! the head, or its first part) and which dimensions form a pair
//! ([`RotaryPairs`]); this file takes all three, so every rotary family
//! (NomicBERT, GTE, ModernBERT, EuroBERT, Jina v3) builds with it.
//!
//! Positions are 0..S, as transformers makes them for an encoder (the
//! left-padded rows too). The angles are computed in the graph from the
//! sequence length, not read from a table: no length limit, and no float
//! table that a parameter count would take for a weight (PyTorch's
//! `inv_freq` is a buffer, not a parameter).

use crate::config::LayerAttention;
use crate::family::RotaryPairs;
use crate::ir::{BinaryOp, DType, Op, Tensor, UnaryOp, Value};

use super::{BuildError, Builder};

/// What RoPE needs to know: the base, the rotated width (even, at most the
/// head size), which dimensions pair, and the NTK scaling factor of GTE's
/// remote code (`None`: unscaled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rotary {
    pub theta: f64,
    pub dim: usize,
    pub pairs: RotaryPairs,
    pub ntk_factor: Option<f64>,
}

impl Rotary {
    /// The frequencies this RoPE rotates by: [`inverse_frequencies`], or
    /// [`ntk_inverse_frequencies`] when scaled.
    pub fn inverse_frequencies(&self) -> Vec<f32> {
        match self.ntk_factor {
            Some(factor) => ntk_inverse_frequencies(self.theta, self.dim, factor),
            None => inverse_frequencies(self.theta, self.dim),
        }
    }
}

/// transformers' `inv_freq`, `1 / θ^(2i/dim)` for i in 0..dim/2, in f32 as
/// torch computes it: the reference the graph's angles are tested against.
pub fn inverse_frequencies(theta: f64, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / dim as f32))
        .collect()
}

/// The NTK-scaled `inv_freq` of Alibaba's remote GTE code
/// (`Alibaba-NLP/new-impl`, modeling.py, `NTKScalingRotaryEmbedding`, what
/// gte-base-en-v1.5's `rope_scaling: {"type": "ntk", "factor": 2.0}` runs):
///
/// ```text
/// if seq_len > self.max_position_embeddings:
///     base = self.base * (self.scaling_factor if self.mixed_b is None else 1)
///     inv_freq = 1.0 / (base ** (torch.arange(0, self.dim, 2).float().to(device) / self.dim))
///     if self.mixed_b is None:
///         inv_freq = inv_freq / self.scaling_factor ** (2 / self.dim)  # (6)
/// ```
///
/// Its constructor builds the cache for `max_position_embeddings · factor`
/// positions, so for a factor above 1 that branch is always taken, at any
/// sequence length: `inv_freq_i = (θ·f)^(−2i/dim) / f^(2/dim)`. At factor 1
/// it is never taken (and would change nothing): plain [`inverse_frequencies`].
/// In f32 as torch computes it (the power of the f32 base, then one divide
/// by the f32-rounded scalar).
pub fn ntk_inverse_frequencies(theta: f64, dim: usize, factor: f64) -> Vec<f32> {
    if factor <= 1.0 {
        return inverse_frequencies(theta, dim);
    }
    let scale = factor.powf(2.0 / dim as f64) as f32;
    inverse_frequencies(theta * factor, dim)
        .into_iter()
        .map(|f| f / scale)
        .collect()
}

/// Rotates one vector `x` (the rotated width only) at `position`, in plain
/// Rust: the reference of the graph's rotation.
pub fn rotate_reference(x: &[f32], position: usize, r: Rotary) -> Vec<f32> {
    let half = r.dim / 2;
    let inv = r.inverse_frequencies();
    let mut y = x.to_vec();
    for (i, f) in inv.iter().enumerate() {
        let angle = position as f32 * f;
        let (sin, cos) = (angle.sin(), angle.cos());
        let (a, b) = match r.pairs {
            RotaryPairs::HalfSplit => (i, i + half),
            RotaryPairs::Interleaved => (2 * i, 2 * i + 1),
        };
        y[a] = x[a] * cos - x[b] * sin;
        y[b] = x[b] * cos + x[a] * sin;
    }
    y
}

/// Where the angles of the global θ are built.
const ANGLES: &str = "encoder.rotary";

impl Builder<'_> {
    /// The config's RoPE for layer `layer` over the whole head, with the
    /// family's pairing (ModernBERT's sliding layers have a θ of their own).
    fn rotary(&self, pairs: RotaryPairs, layer: usize) -> Result<Rotary, BuildError> {
        let theta = self
            .config
            .layer_rope_theta(layer)
            .ok_or_else(|| BuildError::Unsupported("rotary positions need the config's rope_theta".into()))?;
        Ok(Rotary {
            theta,
            dim: self.config.head_size(),
            pairs,
            ntk_factor: self.config.rope_ntk_factor,
        })
    }

    /// `x` [B, S, heads, head size] with its first `dim` dimensions rotated
    /// by position, as layer `layer` does: for each pair (a, b),
    /// `(x_a · cos − x_b · sin, x_b · cos + x_a · sin)`. Nodes `{p}.*`.
    pub(super) fn rotate(
        &mut self,
        x: Value,
        pairs: RotaryPairs,
        layer: usize,
        p: &str,
    ) -> Result<Value, BuildError> {
        let r = self.rotary(pairs, layer)?;
        // One set of angles per θ, shared by the layers that use it.
        let angles = match self.config.layer_attention(layer) {
            LayerAttention::FullAttention => ANGLES,
            LayerAttention::SlidingAttention => "encoder.rotary_local",
        };
        self.rotate_with_angles(x, r, angles, p)
    }

    /// [`Self::rotate`] with RoPE's settings given.
    pub(super) fn rotate_with(&mut self, x: Value, r: Rotary, p: &str) -> Result<Value, BuildError> {
        self.rotate_with_angles(x, r, ANGLES, p)
    }

    /// [`Self::rotate_with`], the angles built once under `angles.*`.
    fn rotate_with_angles(
        &mut self,
        x: Value,
        r: Rotary,
        angles: &str,
        p: &str,
    ) -> Result<Value, BuildError> {
        let head = self.config.head_size();
        if !r.dim.is_multiple_of(2) || r.dim == 0 || r.dim > head {
            return Err(BuildError::Unsupported(format!(
                "a rotary width of {} in heads of {head}: it must be even, > 0 and at most the head",
                r.dim
            )));
        }
        let (cos, sin) = self.rotary_angles(x, r, angles)?;
        let rotated = match r.dim < head {
            true => self.slice_last(x, 0, r.dim, &format!("{p}.rotated"))?,
            false => x,
        };
        let y = match r.pairs {
            RotaryPairs::HalfSplit => {
                let x1 = self.slice_last(rotated, 0, r.dim / 2, &format!("{p}.first_half"))?;
                let x2 = self.slice_last(rotated, r.dim / 2, r.dim, &format!("{p}.second_half"))?;
                let (y1, y2) = self.rotate_pairs(x1, x2, cos, sin, p)?;
                self.g
                    .add(&format!("{p}.concat"), Op::Concat { axis: 3 }, &[y1, y2])?
            }
            RotaryPairs::Interleaved => {
                // [B, S, heads, dim] as [B, S, heads, dim/2, 2]: pair i is row i.
                let pair_shape = self.g.add_const(
                    &format!("{p}.pairs_shape"),
                    Tensor::vec_i64(&[0, 0, 0, r.dim as i64 / 2, 2]),
                )?;
                let paired = self
                    .g
                    .add(&format!("{p}.pairs"), Op::Reshape, &[rotated, pair_shape])?;
                let x1 = self.slice_last(paired, 0, 1, &format!("{p}.even"))?;
                let x2 = self.slice_last(paired, 1, 2, &format!("{p}.odd"))?;
                let column = |b: &mut Self, v: Value, name: &str| -> Result<Value, BuildError> {
                    let op = Op::Unsqueeze { axes: vec![3] };
                    Ok(b.g.add(&format!("{p}.{name}_column"), op, &[v])?)
                };
                let (cos, sin) = (column(self, cos, "cos")?, column(self, sin, "sin")?);
                let (y1, y2) = self.rotate_pairs(x1, x2, cos, sin, p)?;
                let y = self
                    .g
                    .add(&format!("{p}.interleave"), Op::Concat { axis: 4 }, &[y1, y2])?;
                let shape = self.g.add_const(
                    &format!("{p}.merge_shape"),
                    Tensor::vec_i64(&[0, 0, 0, r.dim as i64]),
                )?;
                self.g.add(&format!("{p}.merge"), Op::Reshape, &[y, shape])?
            }
        };
        if r.dim == head {
            return Ok(y);
        }
        let rest = self.slice_last(x, r.dim, head, &format!("{p}.unrotated"))?;
        Ok(self
            .g
            .add(&format!("{p}.with_unrotated"), Op::Concat { axis: 3 }, &[y, rest])?)
    }

    /// `(x1 · cos − x2 · sin, x2 · cos + x1 · sin)`.
    fn rotate_pairs(
        &mut self,
        x1: Value,
        x2: Value,
        cos: Value,
        sin: Value,
        p: &str,
    ) -> Result<(Value, Value), BuildError> {
        let mul = |b: &mut Self, name: &str, a: Value, c: Value| {
            b.binary(&format!("{p}.{name}"), BinaryOp::Mul, a, c)
        };
        let (a, b) = (mul(self, "x1_cos", x1, cos)?, mul(self, "x2_sin", x2, sin)?);
        let y1 = self.binary(&format!("{p}.y1"), BinaryOp::Sub, a, b)?;
        let (c, d) = (mul(self, "x2_cos", x2, cos)?, mul(self, "x1_sin", x1, sin)?);
        let y2 = self.binary(&format!("{p}.y2"), BinaryOp::Add, c, d)?;
        Ok((y1, y2))
    }

    /// cos and sin of `position · inv_freq`, [S, 1, dim/2] to broadcast over
    /// the batch and the heads; built once (`{p}.*`) and shared by every
    /// layer of that θ. `x` is any [B, S, …] value giving S.
    fn rotary_angles(&mut self, x: Value, r: Rotary, p: &str) -> Result<(Value, Value), BuildError> {
        let existing = |name: &str| {
            self.g
                .find(&format!("{p}.{name}"))
                .map(|node| Value { node, slot: 0 })
        };
        if let (Some(cos), Some(sin)) = (existing("cos"), existing("sin")) {
            return Ok((cos, sin));
        }
        let positions = self.sequence_positions(x, p)?;
        let positions = self.g.add(
            &format!("{p}.positions_f32"),
            Op::Cast { to: DType::F32 },
            &[positions],
        )?;
        let positions = self.g.add(
            &format!("{p}.positions_column"),
            Op::Unsqueeze { axes: vec![1] },
            &[positions],
        )?;
        // inv_freq = 1 / θ^(arange(0, dim, 2) / dim), from scalars.
        let int =
            |b: &mut Self, name: &str, v: i64| b.g.add_const(&format!("{p}.{name}"), Tensor::scalar_i64(v));
        let (start, end, step) = (
            int(self, "even_start", 0)?,
            int(self, "dim", r.dim as i64)?,
            int(self, "even_step", 2)?,
        );
        let evens = self
            .g
            .add(&format!("{p}.evens"), Op::Range, &[start, end, step])?;
        let evens = self
            .g
            .add(&format!("{p}.evens_f32"), Op::Cast { to: DType::F32 }, &[evens])?;
        let dim = self.scalar(&format!("{p}.dim_f32"), r.dim as f32)?;
        let exponents = self.binary(&format!("{p}.exponents"), BinaryOp::Div, evens, dim)?;
        // GTE's NTK scaling (see [`ntk_inverse_frequencies`]): the base
        // times the factor, every frequency divided by factor^(2/dim); no
        // node at all at factor 1, which changes nothing.
        let ntk = r.ntk_factor.filter(|&f| f > 1.0);
        let base = match ntk {
            Some(f) => r.theta * f,
            None => r.theta,
        };
        let theta = self.scalar(&format!("{p}.theta"), base as f32)?;
        let powers = self.binary(&format!("{p}.powers"), BinaryOp::Pow, theta, exponents)?;
        let mut inv_freq = self.unary(&format!("{p}.inv_freq"), UnaryOp::Reciprocal, powers)?;
        if let Some(f) = ntk {
            let scale = self.scalar(&format!("{p}.ntk_scale"), f.powf(2.0 / r.dim as f64) as f32)?;
            inv_freq = self.binary(&format!("{p}.ntk_inv_freq"), BinaryOp::Div, inv_freq, scale)?;
        }
        let freqs = self.binary(&format!("{p}.freqs"), BinaryOp::Mul, positions, inv_freq)?;
        let freqs = self.g.add(
            &format!("{p}.freqs_per_head"),
            Op::Unsqueeze { axes: vec![1] },
            &[freqs],
        )?;
        let cos = self.unary(&format!("{p}.cos"), UnaryOp::Cos, freqs)?;
        let sin = self.unary(&format!("{p}.sin"), UnaryOp::Sin, freqs)?;
        Ok((cos, sin))
    }
}
