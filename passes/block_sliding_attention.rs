//! `block_sliding_attention` (-O2): sliding-window attention computed along
//! its band only. A query of a sliding layer sees the keys within `reach`
//! of it (ModernBERT: `local_attention / 2`), yet the masked form scores all
//! S keys and throws all but 2·reach + 1 away — at S = 8,192 with a reach of
//! 64, 98 % of its attention work and an [S, S] mask per batch row.
//!
//! What is recognized is what the builder's sliding layer computes (see
//! builder/sliding.rs), by its meaning, not its node order:
//!
//! ```text
//! band  = Where(|i − j| ≤ reach, 0, MIN)        i, j = 0..S of the queries
//! mask  = Min(padding [B, 1, 1, S], band)
//! ctx   = Attention(q, k, v, mask)
//! blind = Squeeze(ReduceMax(mask, last axis) ≤ MIN/2)   [B, S, 1]
//! out   = Where(blind, ReduceMean(v, axis 1), ctx)
//! ```
//!
//! and rewritten with the queries in blocks of `block = max(1, reach / 2)`:
//! block b holds queries b·block … b·block + block − 1 and scores the keys
//! b·block − reach … b·block + block − 1 + reach (`block + 2·reach` of them,
//! gathered, with positions outside 0..S masked), one `Attention` over all
//! blocks of all rows at once ([B·blocks, block, H]). Per query that is
//! `block + 2·reach` keys instead of S (160 against 2,048 for ModernBERT at
//! S = 2,048), and no [S, S] tensor is made. The last block's queries past S
//! repeat the last position and are cut off at the end.
//!
//! Windows reaching further than [`MAX_BLOCKED_REACH`] keep the masked form:
//! the blocked form's window constant holds `block × width` = 1.25·reach²
//! entries (a reach of 512: 327,680; a config's `local_attention` of 10¹²
//! would ask for more memory than any machine has), and a window that wide
//! saves little below S = 4·reach anyway.
//!
//! The same numbers: a visible key has the same score and mask in both
//! forms, and every key the blocked form leaves out was masked with MIN,
//! whose softmax weight is exactly 0 next to a visible key. A row with no
//! visible key is the same row in both (the band lies inside the block's
//! keys), and both give it the mean of V.

use std::collections::HashMap;

use crate::ir::{parse_blocks, BinaryOp, DType, Dim, Graph, IrError, NodeId, Op, Tensor, UnaryOp, Value};

use super::pattern::{constant, input, operands, producer, scalar};
use super::{Pass, PassReport};

pub struct BlockSlidingAttention;

/// The widest reach (`local_attention / 2`) computed in blocks; ModernBERT's
/// is 64.
pub const MAX_BLOCKED_REACH: usize = 512;

/// One sliding layer's attention, as recognized.
struct Match {
    /// The `Where` that picks the blind rows' mean.
    root: NodeId,
    attention: NodeId,
    q: Value,
    k: Value,
    v: Value,
    /// The padding mask [B, 1, 1, S].
    padding: Value,
    /// The mean of V over all positions, [B, 1, H].
    uniform: Value,
    reach: usize,
}

impl Pass for BlockSlidingAttention {
    fn name(&self) -> &'static str {
        "block_sliding_attention"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        let before = g.node_count();
        let mut layouts: HashMap<(Value, usize), Layout> = HashMap::new();
        for m in &matches {
            let dims = &g.info(m.q).shape.dims()[..2];
            let layout = match layouts.get(&(m.padding, m.reach)) {
                Some(l) if l.batch_and_length == dims => l,
                _ => {
                    let l = layout(g, m)?;
                    layouts.insert((m.padding, m.reach), l);
                    &layouts[&(m.padding, m.reach)]
                }
            };
            let out = blocked(g, m, layout)?;
            g.replace_uses(
                Value {
                    node: m.root,
                    slot: 0,
                },
                out,
            );
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: g.node_count() - before,
            ..Default::default()
        })
    }
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    if g.node(root).op != Op::Where {
        return None;
    }
    let (blind, uniform, ctx) = (input(g, root, 0)?, input(g, root, 1)?, input(g, root, 2)?);
    let attention = ctx.node;
    let Op::Attention { .. } = producer(g, ctx).op else {
        return None;
    };
    let (q, k, v, mask) = (
        input(g, attention, 0)?,
        input(g, attention, 1)?,
        input(g, attention, 2)?,
        input(g, attention, 3)?,
    );
    // out = Where(blind, mean of v over positions, ctx)
    let mean_of_v = producer(g, uniform).op
        == Op::ReduceMean {
            axes: vec![1],
            keepdims: true,
        }
        && input(g, uniform.node, 0) == Some(v);
    if !mean_of_v || blind_rows(g, blind) != Some(mask) {
        return None;
    }
    let (padding, reach) = windowed_padding(g, mask, q)?;
    if reach > MAX_BLOCKED_REACH {
        return None;
    }
    let f32_3d = [q, k, v].iter().all(|&x| {
        let info = g.info(x);
        info.dtype == DType::F32 && info.shape.rank() == 3 && info.shape.dims()[2].fixed().is_some()
    });
    // The sequence must be a symbol (or a block count would be fixed) and
    // the keys the queries themselves (self-attention).
    let seq = &g.info(q).shape.dims()[1];
    let self_attention = g.info(k).shape.dims()[1] == *seq && matches!(seq, Dim::Sym(_));
    (f32_3d && self_attention).then_some(Match {
        root,
        attention,
        q,
        k,
        v,
        padding,
        uniform,
        reach,
    })
}

/// The mask whose rows `blind` flags as having no visible key:
/// `Squeeze(ReduceMax(mask, last axis) ≤ MIN/2, axis 1)`.
fn blind_rows(g: &Graph, blind: Value) -> Option<Value> {
    if producer(g, blind).op != (Op::Squeeze { axes: vec![1] }) {
        return None;
    }
    let le = input(g, blind.node, 0)?;
    if producer(g, le).op != Op::Binary(BinaryOp::LessOrEqual) {
        return None;
    }
    let (best, threshold) = operands(g, le.node)?;
    let row_max = producer(g, best).op
        == Op::ReduceMax {
            axes: vec![-1],
            keepdims: true,
        };
    (row_max && scalar(g, threshold) == Some(f32::MIN / 2.0)).then_some(input(g, best.node, 0)?)
}

/// `Min(padding, band)` in either order, with `band` the window of
/// [`band_reach`] over the queries of `q`: the padding mask [B, 1, 1, S]
/// and the reach.
fn windowed_padding(g: &Graph, mask: Value, q: Value) -> Option<(Value, usize)> {
    if producer(g, mask).op != Op::Binary(BinaryOp::Min) {
        return None;
    }
    let (a, b) = operands(g, mask.node)?;
    let (padding, reach) = match (band_reach(g, a, q), band_reach(g, b, q)) {
        (Some(r), None) => (b, r),
        (None, Some(r)) => (a, r),
        _ => return None,
    };
    let (qd, pd) = (g.info(q).shape.dims(), g.info(padding).shape.dims());
    let padding_shape =
        pd.len() == 4 && pd[0] == qd[0] && pd[1] == Dim::Fixed(1) && pd[2] == Dim::Fixed(1) && pd[3] == qd[1];
    (padding_shape && g.info(padding).dtype == DType::F32).then_some((padding, reach))
}

/// The reach of `Where(|i − j| ≤ reach, 0, MIN)` over positions i, j of
/// `q`'s sequence (the grid `Unsqueeze(p, 1) − Unsqueeze(p, 0)` of
/// `p = Range(0, S, 1)`).
fn band_reach(g: &Graph, band: Value, q: Value) -> Option<usize> {
    if producer(g, band).op != Op::Where {
        return None;
    }
    let (inside, open, closed) = (
        input(g, band.node, 0)?,
        input(g, band.node, 1)?,
        input(g, band.node, 2)?,
    );
    if scalar(g, open) != Some(0.0) || scalar(g, closed) != Some(f32::MIN) {
        return None;
    }
    if producer(g, inside).op != Op::Binary(BinaryOp::LessOrEqual) {
        return None;
    }
    let (distance, reach) = operands(g, inside.node)?;
    let reach = match constant(g, reach)?.to_i64_vec()?.as_slice() {
        [r] if *r >= 0 => *r as usize,
        _ => return None,
    };
    if producer(g, distance).op != Op::Unary(UnaryOp::Abs) {
        return None;
    }
    let grid = input(g, distance.node, 0)?;
    if producer(g, grid).op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    let (rows, cols) = operands(g, grid.node)?;
    let unsqueezed = |v: Value, axis: i64| -> Option<Value> {
        (producer(g, v).op == Op::Unsqueeze { axes: vec![axis] }).then_some(input(g, v.node, 0)?)
    };
    let (p, p2) = (unsqueezed(rows, 1)?, unsqueezed(cols, 0)?);
    (p == p2 && is_positions_of(g, p, q)).then_some(reach)
}

/// Whether `p` is `Range(0, S, 1)` with S the sequence length of `q`.
fn is_positions_of(g: &Graph, p: Value, q: Value) -> bool {
    let int_scalar = |v: Option<Value>, want: i64| {
        v.and_then(|v| constant(g, v)?.to_i64_vec())
            .is_some_and(|x| x.as_slice() == [want])
    };
    producer(g, p).op == Op::Range
        && int_scalar(input(g, p.node, 0), 0)
        && int_scalar(input(g, p.node, 2), 1)
        && g.info(p).shape.dims() == [g.info(q).shape.dims()[1].clone()]
}

/// What every sliding layer of one padding mask and reach shares: the
/// block positions, the blocked mask and its blind rows, S. Built once
/// (named `encoder.sliding_band.*`), not per layer: 24 kernels a layer.
struct Layout {
    block: usize,
    width: usize,
    /// [B, S] of the queries it was built for.
    batch_and_length: Vec<Dim>,
    /// B and S as 1-D [1] values.
    batch: Value,
    length: Value,
    queries: Value,
    keys_clamped: Value,
    /// [B·blocks, 1, block, width].
    flat_mask: Value,
    /// [B, blocks, block, 1]: rows with no visible key.
    blind: Value,
}

/// The [`Layout`] of `m`'s padding and reach, its shape read from `m.q`.
fn layout(g: &mut Graph, m: &Match) -> Result<Layout, IrError> {
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("encoder.sliding_band.{s}"));
    let block = (m.reach / 2).max(1);
    let width = block + 2 * m.reach;
    let named_const = |g: &mut Graph, s: &str, t: Tensor| {
        let n = name(g, s);
        g.add_const(&n, t)
    };
    let op = |g: &mut Graph, s: &str, op: Op, inputs: &[Value]| {
        let n = name(g, s);
        g.add(&n, op, inputs)
    };
    let binary = |g: &mut Graph, s: &str, b: BinaryOp, x: Value, y: Value| op(g, s, Op::Binary(b), &[x, y]);

    // S (a scalar) and the block starts 0, block, 2·block, … below it.
    let shape = op(g, "shape", Op::Shape, &[m.q])?;
    let one = named_const(g, "seq_axis", Tensor::scalar_i64(1))?;
    let seq = op(g, "seq", Op::Gather { axis: 0 }, &[shape, one])?;
    let zero = named_const(g, "zero", Tensor::scalar_i64(0))?;
    let step = named_const(g, "block", Tensor::scalar_i64(block as i64))?;
    let starts = op(g, "starts", Op::Range, &[zero, seq, step])?;
    let starts = op(g, "starts_column", Op::Unsqueeze { axes: vec![1] }, &[starts])?;
    let last = named_const(g, "one", Tensor::scalar_i64(1))?;
    let last = binary(g, "last", BinaryOp::Sub, seq, last)?;

    // Each block's query and key positions, clamped into 0..S.
    let offsets: Vec<i64> = (0..block as i64).collect();
    let offsets = named_const(g, "query_offsets", Tensor::from_i64(vec![1, block], &offsets))?;
    let queries = binary(g, "queries", BinaryOp::Add, starts, offsets)?;
    let queries = binary(g, "queries_clamped", BinaryOp::Min, queries, last)?;
    let offsets: Vec<i64> = (0..width as i64).map(|t| t - m.reach as i64).collect();
    let offsets = named_const(g, "key_offsets", Tensor::from_i64(vec![1, width], &offsets))?;
    let keys = binary(g, "keys", BinaryOp::Add, starts, offsets)?;
    let low = binary(g, "keys_low", BinaryOp::Max, keys, zero)?;
    let keys_clamped = binary(g, "keys_clamped", BinaryOp::Min, low, last)?;
    let after_start = binary(g, "keys_after_start", BinaryOp::GreaterOrEqual, keys, zero)?;
    let before_end = binary(g, "keys_before_end", BinaryOp::Less, keys, seq)?;
    let in_sequence = binary(g, "keys_in_sequence", BinaryOp::And, after_start, before_end)?;

    // The mask of each block's keys: padding, positions outside 0..S, and
    // the band (a constant: it depends on the offsets alone).
    let flat = named_const(g, "padding_shape", Tensor::vec_i64(&[0, -1]))?;
    let padding = op(g, "padding", Op::Reshape, &[m.padding, flat])?;
    let padding = op(
        g,
        "padding_keys",
        Op::Gather { axis: 1 },
        &[padding, keys_clamped],
    )?;
    let closed = named_const(g, "closed", Tensor::scalar_f32(f32::MIN))?;
    let key_mask = op(g, "key_mask", Op::Where, &[in_sequence, padding, closed])?;
    let key_mask = op(g, "key_mask_rows", Op::Unsqueeze { axes: vec![2] }, &[key_mask])?;
    // The window as a bool constant made float at run time: a float
    // constant would count as a parameter of the model.
    let inside: Vec<bool> = (0..block)
        .flat_map(|a| (0..width).map(move |t| a <= t && t <= a + 2 * m.reach))
        .collect();
    let inside: Vec<u8> = inside.into_iter().map(u8::from).collect();
    let inside = Tensor::from_raw(DType::Bool, vec![block, width], inside.into()).expect("sizes match");
    let inside = named_const(g, "window", inside)?;
    let open = named_const(g, "open", Tensor::scalar_f32(0.0))?;
    let band = op(g, "band", Op::Where, &[inside, open, closed])?;
    let mask = binary(g, "mask", BinaryOp::Min, key_mask, band)?;
    let target = named_const(
        g,
        "mask_shape",
        Tensor::vec_i64(&[-1, 1, block as i64, width as i64]),
    )?;
    let flat_mask = op(g, "mask_blocks", Op::Reshape, &[mask, target])?;
    let best = op(
        g,
        "best",
        Op::ReduceMax {
            axes: vec![-1],
            keepdims: true,
        },
        &[mask],
    )?;
    let half_min = named_const(g, "half_min", Tensor::scalar_f32(f32::MIN / 2.0))?;
    let blind = binary(g, "blind", BinaryOp::LessOrEqual, best, half_min)?;
    let slice_of_shape = |g: &mut Graph, s: &str, from: i64| -> Result<Value, IrError> {
        let start = named_const(g, &format!("{s}_start"), Tensor::vec_i64(&[from]))?;
        let end = named_const(g, &format!("{s}_end"), Tensor::vec_i64(&[from + 1]))?;
        op(g, s, Op::Slice, &[shape, start, end])
    };
    let (batch, length) = (slice_of_shape(g, "batch", 0)?, slice_of_shape(g, "seq_len", 1)?);
    Ok(Layout {
        block,
        width,
        batch_and_length: g.info(m.q).shape.dims()[..2].to_vec(),
        batch,
        length,
        queries,
        keys_clamped,
        flat_mask,
        blind,
    })
}

/// The blocked computation of `m` over `layout`; returns the [B, S, H]
/// context.
fn blocked(g: &mut Graph, m: &Match, layout: &Layout) -> Result<Value, IrError> {
    let base = g.node(m.attention).name.clone();
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.band.{s}"));
    let named_const = |g: &mut Graph, s: &str, t: Tensor| {
        let n = name(g, s);
        g.add_const(&n, t)
    };
    let op = |g: &mut Graph, s: &str, op: Op, inputs: &[Value]| {
        let n = name(g, s);
        g.add(&n, op, inputs)
    };
    let block = layout.block;

    // [B, S, H] → [B·blocks, block or width, H].
    let gather_blocks =
        |g: &mut Graph, s: &str, x: Value, idx: Value, len: usize| -> Result<Value, IrError> {
            let h = g.info(x).shape.dims()[2].fixed().expect("checked fixed");
            let gathered = op(g, s, Op::Gather { axis: 1 }, &[x, idx])?;
            let target = named_const(g, &format!("{s}_shape"), Tensor::vec_i64(&[-1, len as i64, h]))?;
            op(g, &format!("{s}_blocks"), Op::Reshape, &[gathered, target])
        };
    let q = gather_blocks(g, "q", m.q, layout.queries, block)?;
    let k = gather_blocks(g, "k", m.k, layout.keys_clamped, layout.width)?;
    let v = gather_blocks(g, "v", m.v, layout.keys_clamped, layout.width)?;

    let attention = g.node(m.attention).op.clone();
    let ctx = op(g, "attention", attention, &[q, k, v, layout.flat_mask])?;

    // Back to [B, blocks, block, H]; blind rows take the mean of V.
    let h = g.info(ctx).shape.dims()[2]
        .fixed()
        .expect("attention output width");
    let rest = named_const(g, "context_rest", Tensor::vec_i64(&[-1, block as i64, h]))?;
    let target = op(g, "context_shape", Op::Concat { axis: 0 }, &[layout.batch, rest])?;
    let ctx = op(g, "context_blocks", Op::Reshape, &[ctx, target])?;
    let uniform = op(g, "uniform", Op::Unsqueeze { axes: vec![1] }, &[m.uniform])?;
    let ctx = op(g, "context_fixed", Op::Where, &[layout.blind, uniform, ctx])?;

    // [B, blocks·block, H], cut to the S real positions.
    let merge = named_const(g, "merge_shape", Tensor::vec_i64(&[0, -1, h]))?;
    let ctx = op(g, "context", Op::Reshape, &[ctx, merge])?;
    let start = named_const(g, "cut_start", Tensor::vec_i64(&[0]))?;
    let axis = named_const(g, "cut_axis", Tensor::vec_i64(&[1]))?;
    let out = op(g, "cut", Op::Slice, &[ctx, start, layout.length, axis])?;
    debug_assert!(g
        .info(out)
        .shape
        .dims()
        .iter()
        .all(|d| !matches!(d, Dim::Sym(s) if parse_blocks(s).is_some())));
    Ok(out)
}
