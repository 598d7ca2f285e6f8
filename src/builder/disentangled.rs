//! DeBERTa's disentangled attention, as transformers' `DisentangledSelfAttention`
//! (v1 and v2) computes it in eval mode:
//!
//! ```text
//! rel[i, j]  = bucket(i − j)                         (identity without buckets)
//! r[i, j]    = clamp(rel[i, j] + span, 0, 2·span − 1)
//! PK, PQ     = the shared table (layer-normed in v3) through the layer's
//!              c2p and p2c projections (its key and query Linears, biases
//!              included, under share_att_key)
//! c2p[i, j]  = q_i · PK[r[i, j]]        p2c[i, j] = k_j · PQ[r[i, j]]
//! scores     = q_i · k_j / σ + c2p + p2c      σ = √(d · (1 + |pos_att_type|))
//! ```
//!
//! with PK and PQ divided by σ before their products: transformers divides
//! each gathered term by σ, the same up to rounding, and here the division
//! falls on the constant tables (runtimes fold it at load) instead of a
//! [B, h, S, S] tensor per layer; the fused attention then reads the terms
//! and the mask as one additive term, in the form DeBERTa's exports have.
//!
//! The bucket of every distance is computed here, in Rust, with torch's f32
//! operations, into a constant lookup table the graph reads by the
//! (clamped) distance: no float op decides a bucket at run time, where each
//! runtime's logarithm may round a boundary differently, and the table
//! serves any sequence length (beyond ±`saturation` every distance falls in
//! the first or last row). transformers' v1 slices the table to
//! `min(S, max_relative_positions)` rows each way around its centre; for
//! S below that bound no clamp is reached, and indexing the whole table
//! with span = `max_relative_positions` gives the same rows, so v1 is v2
//! without buckets here.
//!
//! The gathers (`torch.gather` along the last axis) are `GatherElements`
//! on the products, as transformers writes them: c2p by `r[i, j]`, p2c by
//! `r[i, j]` transposed (its rows are the keys) and the result transposed
//! back. The products are taken only against the rows length S reads
//! (`rows_read`: 255 of deberta-v3's 2span = 512 at S = 128; onnxruntime
//! 153.8 → 145.1 ms against Optimum's 161.1 on a Zen 4 EPYC, 2 threads),
//! the indices counted from the first of them. The [B, h, S, S] indices are expanded once for
//! every layer. (The earlier form, one `Gather` of the flattened
//! [B, h, S·2span] product by `i·2span + r[i, j]`, gathers single elements
//! through a slice-copying kernel: 4.2× slower in onnxruntime at S = 128,
//! 1.6× at S = 512.) The sum `c2p + p2c` is added to the scaled Q·Kᵀ,
//! the form fuse_attention folds into the fused Attention's mask.
//!
//! Masking: transformers fills masked scores with `finfo.min` under the 2-D
//! mask `m_i · m_j`, so a padded query sees no key and attends uniformly
//! over all of them. Here the scores are masked by keys only (as BERT's)
//! and the padded queries' rows are replaced by the mean of the values —
//! the uniform average, exactly — so no row is ever fully masked (runtimes
//! disagree on those) and the attention stays the standard form.

use crate::config::DisentangledAttention;
use crate::ir::{BinaryOp, DType, Op, Tensor, Value};

use super::{BuildError, Builder};

/// The c2p and p2c GatherElements index grids.
type IndexGrids = (Value, Value);
/// The first table row a length reads and one past its last, int64 [1].
type RowBounds = (Value, Value);

/// What every layer's disentangled attention reads, built once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shared {
    /// Padding positions, bool [B, S, 1].
    padded: Value,
    /// The mask as f32 [B, S, 1].
    mask: Value,
    /// GatherElements indices into the c2p and p2c products, int32
    /// [B, h, S, S] (p2c's transposed), counted from `rows`' first;
    /// `None` without relative attention.
    indices: Option<IndexGrids>,
    /// The table rows sequence length S reads, `[first, end)` as two
    /// int64 [1]: the products are taken against those rows only.
    rows: Option<RowBounds>,
    /// The relative-position table as the projections read it (normed
    /// where the config says).
    table: Option<Value>,
}

/// transformers' `make_log_bucket_position` for one distance `i − j`, with
/// torch's f32 arithmetic: exact within `buckets / 2`, logarithmic beyond,
/// reaching ±(buckets − 1) at `max_position − 1`.
pub fn deberta_bucket(relative: i64, buckets: usize, max_position: usize) -> i64 {
    let mid = (buckets / 2) as i64;
    let abs = relative.abs();
    if abs <= mid {
        return relative;
    }
    let ratio = (abs as f32 / mid as f32).ln();
    let range = (((max_position - 1) as f64 / mid as f64) as f32).ln();
    let log_pos = (ratio / range * (mid - 1) as f32).ceil() + mid as f32;
    log_pos as i64 * relative.signum()
}

/// The table row distance `i − j` reads: `clamp(bucket + span, 0, 2·span − 1)`.
pub fn table_row(relative: i64, d: &DisentangledAttention, max_position_embeddings: usize) -> i64 {
    let span = d.span(max_position_embeddings) as i64;
    let rel = match d.position_buckets {
        n if n > 0 => deberta_bucket(relative, n as usize, d.max_relative(max_position_embeddings)),
        _ => relative,
    };
    (rel + span).clamp(0, 2 * span - 1)
}

/// The distance beyond which every row is the first or last: the span, and
/// with buckets the maximum position too (the log buckets reach ±span there).
pub fn saturation(d: &DisentangledAttention, max_position_embeddings: usize) -> i64 {
    (d.span(max_position_embeddings)
        .max(d.max_relative(max_position_embeddings))
        + 1) as i64
}

/// The table rows `[first, end)` the distances `−far ..= far` read (a
/// sequence of length `far + 1`): `table_row` is monotone in the distance,
/// so the two extremes bound every row.
pub fn rows_read(far: i64, d: &DisentangledAttention, max_position_embeddings: usize) -> (i64, i64) {
    (
        table_row(-far, d, max_position_embeddings),
        table_row(far, d, max_position_embeddings) + 1,
    )
}

impl Builder<'_> {
    /// The embeddings multiplied by the mask (DeBERTa's padding rows enter
    /// layer 0 as zeros), and what every layer shares: the padding rows,
    /// the table (normed), the gather indices.
    pub(super) fn disentangled_setup(
        &mut self,
        hidden: Value,
        attention_mask: Value,
    ) -> Result<Value, BuildError> {
        let p = "encoder.disentangled";
        let d = self.config.disentangled.clone().ok_or_else(|| {
            BuildError::Unsupported("a disentangled-attention family without its config fields".into())
        })?;
        let m = self.g.add(
            &format!("{p}.mask_rows"),
            Op::Unsqueeze { axes: vec![2] },
            &[attention_mask],
        )?;
        let zero = self.g.add_const(&format!("{p}.zero"), Tensor::scalar_i64(0))?;
        let padded = self.binary(&format!("{p}.padded"), BinaryOp::Equal, m, zero)?;
        let mask = self
            .g
            .add(&format!("{p}.mask"), Op::Cast { to: DType::F32 }, &[m])?;
        let masked = self.binary("embeddings.masked", BinaryOp::Mul, hidden, mask)?;
        let (indices, rows, table) = match d.relative_attention {
            true => {
                let (indices, rows) = self.gather_indices(masked, &d)?;
                (Some(indices), Some(rows), Some(self.relative_table()?))
            }
            false => (None, None, None),
        };
        self.disentangled = Some(Shared {
            padded,
            mask,
            indices,
            rows,
            table,
        });
        Ok(masked)
    }

    /// The shared table, through its norm where the config asks for one.
    fn relative_table(&mut self) -> Result<Value, BuildError> {
        let spec = self.config.family.spec().disentangled;
        let spec = spec.ok_or_else(|| BuildError::Unsupported("no disentangled attention".into()))?;
        let table = self.param(&format!("{}.weight", spec.table))?;
        let normed = self
            .config
            .disentangled
            .as_ref()
            .is_some_and(|d| d.normed_table());
        match (spec.table_norm, normed) {
            (Some(norm), true) => self.layer_norm(table, norm),
            _ => Ok(table),
        }
    }

    /// `r[i, j] − first` and its transpose, each expanded to [B, h, S, S]
    /// (int32), with the rows `[first, end)` sequence length S reads; B
    /// and S those of `x` ([B, S, …]).
    ///
    /// `table_row` is monotone in the distance, so at length S every row
    /// read lies between `table_row(−(S − 1))` and `table_row(S − 1)`:
    /// 255 of deberta-v3's 512 at S = 128. Constant lookups of those two
    /// bounds by `min(S − 1, saturation)` give them at run time, and the
    /// products against the table (and the gathers from them) shrink
    /// with S — the same rows gathered, so the same numbers.
    fn gather_indices(
        &mut self,
        x: Value,
        d: &DisentangledAttention,
    ) -> Result<(IndexGrids, RowBounds), BuildError> {
        let p = "encoder.relative_rows";
        let max_pos = self.config.max_position_embeddings;
        let t = saturation(d, max_pos);
        let rows: Vec<i64> = (-t..=t).map(|rel| table_row(rel, d, max_pos)).collect();
        let lut = self
            .g
            .add_const(&format!("{p}.lookup"), Tensor::from_i64(vec![rows.len()], &rows))?;
        let diff = self.position_differences(x, p)?;
        let low = self.g.add_const(&format!("{p}.low"), Tensor::scalar_i64(-t))?;
        let high = self.g.add_const(&format!("{p}.high"), Tensor::scalar_i64(t))?;
        let clamped = self.binary(&format!("{p}.at_least"), BinaryOp::Max, diff, low)?;
        let clamped = self.binary(&format!("{p}.at_most"), BinaryOp::Min, clamped, high)?;
        let index = self.binary(&format!("{p}.index"), BinaryOp::Add, clamped, high)?;
        let row = self
            .g
            .add(&format!("{p}.row"), Op::Gather { axis: 0 }, &[lut, index])?;
        // [B, h, S, S] from x's [B, S].
        let shape = self.g.add(&format!("{p}.x_shape"), Op::Shape, &[x])?;
        let int =
            |b: &mut Self, name: &str, v: &[i64]| b.g.add_const(&format!("{p}.{name}"), Tensor::vec_i64(v));
        let (zero, one, two) = (
            int(self, "zero", &[0])?,
            int(self, "one", &[1])?,
            int(self, "two", &[2])?,
        );
        let batch = self
            .g
            .add(&format!("{p}.batch"), Op::Slice, &[shape, zero, one, zero])?;
        let length = self
            .g
            .add(&format!("{p}.length"), Op::Slice, &[shape, one, two, zero])?;
        let (first, end) = self.rows_read_at(length, d, t, p)?;
        let row = self.binary(&format!("{p}.from_first"), BinaryOp::Sub, row, first)?;
        // int32 indices: the expanded [B, h, S, S] grids are read by every
        // layer's two gathers, and at half the bytes onnxruntime's
        // GatherElements runs 1.7x faster (S = 512).
        let row = self
            .g
            .add(&format!("{p}.row_i32"), Op::Cast { to: DType::I32 }, &[row])?;
        let by_key = self.g.add(
            &format!("{p}.row_by_key"),
            Op::Transpose { perm: vec![1, 0] },
            &[row],
        )?;
        let heads = int(self, "heads", &[self.config.num_attention_heads as i64])?;
        let target = self.g.add(
            &format!("{p}.grid_shape"),
            Op::Concat { axis: 0 },
            &[batch, heads, length, length],
        )?;
        let c2p = self.g.add(&format!("{p}.c2p"), Op::Expand, &[row, target])?;
        let p2c = self.g.add(&format!("{p}.p2c"), Op::Expand, &[by_key, target])?;
        Ok(((c2p, p2c), (first, end)))
    }

    /// The first row and one past the last that length `length` (int64
    /// [1]) reads: constant tables by the longest distance, `S − 1`,
    /// clamped to `saturation` `t` (every longer one reads the same rows).
    fn rows_read_at(
        &mut self,
        length: Value,
        d: &DisentangledAttention,
        t: i64,
        p: &str,
    ) -> Result<RowBounds, BuildError> {
        let max_pos = self.config.max_position_embeddings;
        let (first, end): (Vec<i64>, Vec<i64>) = (0..=t).map(|far| rows_read(far, d, max_pos)).unzip();
        let one = self.g.add_const(&format!("{p}.one_row"), Tensor::vec_i64(&[1]))?;
        let farthest = self.binary(&format!("{p}.farthest"), BinaryOp::Sub, length, one)?;
        let bound = self
            .g
            .add_const(&format!("{p}.saturation"), Tensor::vec_i64(&[t]))?;
        let farthest = self.binary(&format!("{p}.farthest_clamped"), BinaryOp::Min, farthest, bound)?;
        let mut lookup = |name: &str, v: &[i64]| -> Result<Value, BuildError> {
            let lut = self
                .g
                .add_const(&format!("{p}.{name}_lookup"), Tensor::from_i64(vec![v.len()], v))?;
            Ok(self
                .g
                .add(&format!("{p}.{name}"), Op::Gather { axis: 0 }, &[lut, farthest])?)
        };
        Ok((lookup("first", &first)?, lookup("end", &end)?))
    }

    /// `c2p + p2c` [B, heads, S, S] for the layer `p`, from its Q and K split
    /// into heads ([B, S, heads, d]); `None` unless the family has
    /// disentangled attention and the config turns it on.
    pub(super) fn disentangled_scores(
        &mut self,
        q_split: Value,
        k_split: Value,
        scale: Value,
        p: &str,
    ) -> Result<Option<Value>, BuildError> {
        let (Some(spec), Some(d), Some(shared)) = (
            self.config.family.spec().disentangled,
            self.config.disentangled.clone(),
            self.disentangled,
        ) else {
            return Ok(None);
        };
        let (Some((c2p_index, p2c_index)), Some(rows), Some(table)) =
            (shared.indices, shared.rows, shared.table)
        else {
            return Ok(None);
        };
        let mut terms = Vec::new();
        if d.c2p() {
            let proj = match d.share_att_key {
                true => format!("{p}.key"),
                false => format!("{p}.{}", layer_part(spec.c2p_projection)),
            };
            let c2p = self.relative_term(
                q_split,
                (table, scale),
                rows,
                &proj,
                c2p_index,
                &format!("{p}.c2p"),
            )?;
            terms.push(c2p);
        }
        if d.p2c() {
            let proj = match d.share_att_key {
                true => format!("{p}.query"),
                false => format!("{p}.{}", layer_part(spec.p2c_projection)),
            };
            // Gathered key-major ([.., j, i]), as transformers does, then
            // transposed to the scores' [.., i, j].
            let by_key = self.relative_term(
                k_split,
                (table, scale),
                rows,
                &proj,
                p2c_index,
                &format!("{p}.p2c"),
            )?;
            terms.push(self.g.add(
                &format!("{p}.p2c.by_query"),
                Op::Transpose {
                    perm: vec![0, 1, 3, 2],
                },
                &[by_key],
            )?);
        }
        match terms[..] {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            [c2p, p2c, ..] => Ok(Some(self.binary(
                &format!("{p}.c2p_p2c"),
                BinaryOp::Add,
                c2p,
                p2c,
            )?)),
        }
    }

    /// One relative term: `x` ([B, S, heads, d]) against the table projected
    /// by `proj` ([2span, heads, d]), divided by the scores' `scale` and cut
    /// to the `rows` S reads, every pair (query or key, row), then the row
    /// of each (i, j) gathered through `index`.
    fn relative_term(
        &mut self,
        x: Value,
        (table, scale): (Value, Value),
        rows: RowBounds,
        proj: &str,
        index: Value,
        name: &str,
    ) -> Result<Value, BuildError> {
        let (heads, head_size) = (self.config.num_attention_heads, self.config.head_size());
        let positions = self.linear_as(table, proj, &format!("{name}.positions"))?;
        let split = self.g.add_const(
            &format!("{name}.split_heads_shape"),
            Tensor::vec_i64(&[-1, heads as i64, head_size as i64]),
        )?;
        let positions = self.g.add(
            &format!("{name}.positions.split_heads"),
            Op::Reshape,
            &[positions, split],
        )?;
        // [2span, h, d] → [h, 2span, d]: each head's rows contiguous.
        let positions = self.g.add(
            &format!("{name}.positions.heads_first"),
            Op::Transpose { perm: vec![1, 0, 2] },
            &[positions],
        )?;
        let positions = self.binary(
            &format!("{name}.positions.scaled"),
            BinaryOp::Div,
            positions,
            scale,
        )?;
        // The whole projected table is computed from constants (runtimes
        // fold it at load); the cut is taken after it, so it stays so. Cut
        // along the rows of [h, 2span, d] (one contiguous block per head:
        // cut along the last axis of [h, d, 2span], onnxruntime's Slice
        // took 0.27 ms per layer and term at S = 128).
        let axis = self
            .g
            .add_const(&format!("{name}.positions.rows_axis"), Tensor::vec_i64(&[1]))?;
        let positions = self.g.add(
            &format!("{name}.positions.rows_read"),
            Op::Slice,
            &[positions, rows.0, rows.1, axis],
        )?;
        // [h, rows, d] → [h, d, rows], the product's right operand (a
        // transposed operand runtimes read in place).
        let positions = self.g.add(
            &format!("{name}.positions.transpose"),
            Op::Transpose { perm: vec![0, 2, 1] },
            &[positions],
        )?;
        let x = self.g.add(
            &format!("{name}.heads_first"),
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[x],
        )?;
        let all = self
            .g
            .add(&format!("{name}.all_rows"), Op::MatMul, &[x, positions])?;
        Ok(self.g.add(
            &format!("{name}.gather"),
            Op::GatherElements { axis: 3 },
            &[all, index],
        )?)
    }

    /// The attention output `ctx` [B, S, H] with each padded query's row
    /// replaced by the mean of the layer's `values` [B, S, H]: what
    /// transformers' fully masked row (every score `finfo.min`) gives.
    pub(super) fn padded_queries_uniform(
        &mut self,
        ctx: Value,
        values: Value,
        p: &str,
    ) -> Result<Value, BuildError> {
        let Some(shared) = self.disentangled else {
            return Ok(ctx);
        };
        self.uniform_rows(ctx, values, shared.padded, p, "padded")
    }

    /// v2's ConvLayer beside layer 0: `LayerNorm(layer0 + act(mask ·
    /// conv1d(embedded))) · mask`; `hidden` itself when the config has none.
    /// The convolution is one MatMul over the k shifted copies of the
    /// embeddings side by side (zeros past either end, as torch pads).
    pub(super) fn conv_layer(&mut self, embedded: Value, hidden: Value) -> Result<Value, BuildError> {
        let (Some(p), Some(d), Some(shared)) = (
            self.config.family.spec().disentangled.and_then(|s| s.conv),
            self.config.disentangled.clone(),
            self.disentangled,
        ) else {
            return Ok(hidden);
        };
        if d.conv_kernel_size == 0 {
            return Ok(hidden);
        }
        let k = d.conv_kernel_size;
        let h = self.config.hidden_size;
        let pad = (k - 1) / 2;
        let conv = format!("{p}.conv");
        // [out, in, k] → [k·in, out]: row o·in + c of the unfolded input.
        let weight = self.param_mapped(&format!("{conv}.weight"), |t| {
            let w = t.to_f32_vec().filter(|w| w.len() == h * h * k)?;
            let mut out = vec![0f32; w.len()];
            for o in 0..h {
                for c in 0..h {
                    for t in 0..k {
                        out[(t * h + c) * h + o] = w[(o * h + c) * k + t];
                    }
                }
            }
            Some(Tensor::from_f32(vec![k * h, h], &out))
        })?;
        let bias = self.param(&format!("{conv}.bias"))?;
        let padded = self.zero_padded(embedded, pad, &conv)?;
        let positions = self.sequence_positions(embedded, &format!("{conv}.rows"))?;
        let mut shifted = Vec::with_capacity(k);
        for t in 0..k {
            // Rows t .. t + S of the S + 2·pad padded rows.
            let name = format!("{conv}.shift{t}");
            let offset = self
                .g
                .add_const(&format!("{name}.offset"), Tensor::scalar_i64(t as i64))?;
            let rows = self.binary(&format!("{name}.rows"), BinaryOp::Add, positions, offset)?;
            shifted.push(self.g.add(&name, Op::Gather { axis: 1 }, &[padded, rows])?);
        }
        let unfolded = self
            .g
            .add(&format!("{conv}.unfold"), Op::Concat { axis: 2 }, &shifted)?;
        let y = self
            .g
            .add(&format!("{conv}.matmul"), Op::MatMul, &[unfolded, weight])?;
        let y = self.binary(&format!("{conv}.add"), BinaryOp::Add, y, bias)?;
        let y = self.binary(&format!("{conv}.masked"), BinaryOp::Mul, y, shared.mask)?;
        let y = self.activation(y, d.conv_act, &format!("{p}.act"))?;
        let sum = self.binary(&format!("{p}.residual"), BinaryOp::Add, hidden, y)?;
        let normed = self.layer_norm(sum, &format!("{p}.LayerNorm"))?;
        self.binary(&format!("{p}.output_masked"), BinaryOp::Mul, normed, shared.mask)
    }

    /// `x` [B, S, H] with `pad` zero rows before and after along axis 1.
    fn zero_padded(&mut self, x: Value, pad: usize, p: &str) -> Result<Value, BuildError> {
        if pad == 0 {
            return Ok(x);
        }
        let shape = self.g.add(&format!("{p}.pad_shape_of"), Op::Shape, &[x])?;
        let batch = self.slice_last(shape, 0, 1, &format!("{p}.pad_batch"))?;
        let rest = self.g.add_const(
            &format!("{p}.pad_rows"),
            Tensor::vec_i64(&[pad as i64, self.config.hidden_size as i64]),
        )?;
        let shape = self
            .g
            .add(&format!("{p}.pad_shape"), Op::Concat { axis: 0 }, &[batch, rest])?;
        let zeros = self.g.add(
            &format!("{p}.pad_zeros"),
            Op::ConstantOfShape {
                value: Tensor::from_f32(vec![1], &[0.0]),
            },
            &[shape],
        )?;
        Ok(self
            .g
            .add(&format!("{p}.padded"), Op::Concat { axis: 1 }, &[zeros, x, zeros])?)
    }

    /// v1's `in_proj` (rows per head [q_h | k_h | v_h], no bias) with its
    /// columns reordered at build time to [q | k | v], the fused layout
    /// the rest of the layer (and fuse_attention) reads: `x @ W`.
    pub(super) fn per_head_qkv(&mut self, x: Value, p: &str) -> Result<Value, BuildError> {
        let (heads, d) = (self.config.num_attention_heads, self.config.head_size());
        let hidden = heads * d;
        let name = format!("{p}.qkv");
        let w = self.param_mapped(&format!("{name}.weight"), |t| {
            // Stored [in, out] (transposed): reorder the out columns.
            let w = t.to_f32_vec().filter(|w| w.len() == hidden * 3 * hidden)?;
            let mut out = vec![0f32; w.len()];
            for row in 0..hidden {
                for h in 0..heads {
                    for part in 0..3 {
                        for e in 0..d {
                            let from = h * 3 * d + part * d + e;
                            let to = part * hidden + h * d + e;
                            out[row * 3 * hidden + to] = w[row * 3 * hidden + from];
                        }
                    }
                }
            }
            Some(Tensor::from_f32(vec![hidden, 3 * hidden], &out))
        })?;
        Ok(self.g.add(&format!("{name}.matmul"), Op::MatMul, &[x, w])?)
    }

    /// v1's `q_bias` and `v_bias` added to the query and value projections
    /// (its `in_proj` has none; K has no bias at all); `y` itself elsewhere.
    pub(super) fn per_head_bias(&mut self, y: Value, part: &str, p: &str) -> Result<Value, BuildError> {
        let bias = match (self.config.family.spec().qkv, part) {
            (crate::family::QkvProjection::FusedPerHead, "query") => "q_bias",
            (crate::family::QkvProjection::FusedPerHead, "value") => "v_bias",
            _ => return Ok(y),
        };
        let b = self.param(&format!("{p}.{bias}"))?;
        self.binary(&format!("{p}.{part}.{bias}"), BinaryOp::Add, y, b)
    }
}

/// The part of a layer-part name after `attention.self.` (the projections
/// are named as layer parts in the family table).
fn layer_part(part: &str) -> &str {
    part.strip_prefix("attention.self.").unwrap_or(part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;

    fn deberta(position_buckets: i64, max_relative_positions: i64) -> DisentangledAttention {
        DisentangledAttention {
            relative_attention: true,
            pos_att_type: vec!["p2c".into(), "c2p".into()],
            max_relative_positions,
            position_buckets,
            share_att_key: true,
            norm_rel_ebd: "layer_norm".into(),
            position_biased_input: false,
            conv_kernel_size: 0,
            conv_act: Activation::Tanh,
            pooler_hidden_act: Activation::Gelu,
            legacy: true,
        }
    }

    /// deberta-v3's buckets, small buckets, v2's unbucketed 6 positions and
    /// v1's whole-table span, each with its max_position_embeddings.
    fn table_configs() -> [(DisentangledAttention, usize); 4] {
        [
            (deberta(256, -1), 512),
            (deberta(16, -1), 64),
            (deberta(-1, 6), 64),
            (deberta(-1, -1), 512),
        ]
    }

    /// The lookup table reaches the first and last rows by `saturation`,
    /// so clamping longer distances to it changes no row: any sequence
    /// length reads the table it would read unclamped.
    #[test]
    fn rows_saturate_within_the_lookup_table() {
        for (d, max_pos) in table_configs() {
            let t = saturation(&d, max_pos);
            let last = 2 * d.span(max_pos) as i64 - 1;
            for far in [t, t + 1, t + 1000, 1 << 20] {
                assert_eq!(table_row(far, &d, max_pos), last, "{d:?} at {far}");
                assert_eq!(table_row(-far, &d, max_pos), 0, "{d:?} at -{far}");
            }
            // Distance 0 reads the centre row.
            assert_eq!(table_row(0, &d, max_pos), d.span(max_pos) as i64);
        }
    }

    /// The cut holds every row a sequence length reads and no other: each
    /// distance's row lies in `[first, end)` and both ends are read (at
    /// S = 1, within the exact buckets, past them, past saturation).
    #[test]
    fn rows_read_are_exactly_the_rows_gathered() {
        for (d, max_pos) in table_configs() {
            let t = saturation(&d, max_pos);
            for s in [1, 2, 5, 9, 17, 64, 128, 130, 300, 512, 600, 2048] {
                let far = s - 1;
                let (first, end) = rows_read(far.min(t), &d, max_pos);
                let rows: Vec<i64> = (-far..=far).map(|r| table_row(r, &d, max_pos)).collect();
                assert_eq!(rows.iter().min(), Some(&first), "{d:?} at S = {s}");
                assert_eq!(rows.iter().max().map(|m| m + 1), Some(end), "{d:?} at S = {s}");
            }
            // deberta-v3 at S = 128: 255 of the 512 rows.
            if d.position_buckets == 256 {
                assert_eq!(rows_read(127, &d, max_pos), (129, 384));
            }
        }
    }

    /// The buckets of deberta-v3 (256 buckets, 512 positions) and of the
    /// shared golden's small case (16, 64), as torch's f32 formula gives
    /// them: exact up to mid, then logarithmic, ±(buckets − 1) at max − 1.
    #[test]
    fn buckets_follow_transformers() {
        for (buckets, max) in [(256, 512), (16, 64)] {
            let mid = buckets as i64 / 2;
            for rel in -mid..=mid {
                assert_eq!(deberta_bucket(rel, buckets, max), rel);
            }
            assert_eq!(deberta_bucket(max as i64 - 1, buckets, max), buckets as i64 - 1);
            assert_eq!(deberta_bucket(1 - max as i64, buckets, max), 1 - buckets as i64);
            // Odd in the distance, and monotone.
            for rel in 1..2000 {
                let b = deberta_bucket(rel, buckets, max);
                assert_eq!(deberta_bucket(-rel, buckets, max), -b);
                assert!(b >= deberta_bucket(rel - 1, buckets, max));
            }
        }
        // (16, 64): mid 8, then ceil(log(|rel| / 8) / log(63 / 8) · 7) + 8,
        // as numpy's float32 gives them (10 falls back into bucket 9).
        for (rel, bucket) in [
            (9, 9),
            (10, 9),
            (12, 10),
            (15, 11),
            (19, 11),
            (25, 12),
            (40, 14),
            (63, 15),
            (64, 16),
            (100, 17),
        ] {
            assert_eq!(deberta_bucket(rel, 16, 64), bucket, "distance {rel}");
            assert_eq!(deberta_bucket(-rel, 16, 64), -bucket, "distance -{rel}");
        }
    }
}
