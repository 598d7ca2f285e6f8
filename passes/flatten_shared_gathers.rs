//! `flatten_shared_gathers` (OpenVINO's form): a `GatherElements` along the
//! last axis of a rank-4 tensor `data` [B, h, S, R] whose [B, h, S, S']
//! indices are one 2-D grid `index` [S, S'] expanded over B and h →
//! one `Gather` of `data`'s rows flattened, [B, h, S·R], at
//! `i·R + index[i, j]`:
//!
//! ```text
//! out[b, h, i, j] = data[b, h, i, index[i, j]] = flat[b, h, i·R + index[i, j]]
//! ```
//!
//! A `Transpose` of the last two axes after it (DeBERTa's p2c, gathered
//! key-major and turned query-major) is folded in: its output is
//! `data[b, h, j, index[j, i]]`, flat at `j·R + indexᵀ[i, j]`, so the
//! transpose of the [B, h, S, S] result becomes one of the 2-D grid.
//!
//! Why only for OpenVINO: there `GatherElements` runs its reference kernel
//! (`ref_any_f32`) and the p2c transposes copy [B, h, S, S] each; DeBERTa-v3-base
//! at S=512 (openvino 2026.4.1, Zen 4, 2 threads, `ov_profile`) spent 121 ms
//! of its int8 run in the 24 GatherElements and 70 ms in transposes, 95 and
//! 21 ms in this form (`Gather` is a JIT kernel). onnxruntime's `Gather`
//! copies a slice per index: this form was 4.2× slower there at S=128
//! (builder/disentangled.rs), so its file keeps `GatherElements`.
//!
//! Conditions checked: data rank 4 and the gather on its last axis; the
//! indices an `Expand` of a rank-2 grid whose dims are the output's last
//! two; the output's leading dims `data`'s (the Gather takes them from
//! `data`). Negative indices count from the end, as GatherElements'
//! do (wrapped once on the 2-D grid); indices beyond R are invalid ONNX
//! either way.

use crate::ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, Tensor, Value};

use super::{Pass, PassReport};

pub struct FlattenSharedGathers;

impl Pass for FlattenSharedGathers {
    fn name(&self) -> &'static str {
        "flatten_shared_gathers"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        let before = g.node_count();
        for m in &matches {
            let out = rewrite(g, m)?;
            g.replace_uses(m.replaced, out);
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: g.node_count() - before,
            nodes_removed: 0,
        })
    }
}

struct Match {
    gather: NodeId,
    data: Value,
    /// The shared 2-D grid, [S, S'].
    index: Value,
    /// Whether a Transpose of the last two axes follows (then it is the
    /// value replaced).
    transposed: bool,
    replaced: Value,
}

fn match_at(g: &Graph, id: NodeId) -> Option<Match> {
    let Op::GatherElements { axis } = g.node(id).op else {
        return None;
    };
    let [Some(data), Some(indices)] = g.inputs_of(id)[..] else {
        return None;
    };
    let dims = g.info(data).shape.dims().to_vec();
    if dims.len() != 4 || !(axis == 3 || axis == -1) {
        return None;
    }
    let expand = indices.node;
    if g.node(expand).op != Op::Expand || indices.slot != 0 {
        return None;
    }
    let index = g.inputs_of(expand).first().copied().flatten()?;
    let index_dims = g.info(index).shape.dims();
    let gathered = Value { node: id, slot: 0 };
    let out = g.info(gathered).shape.dims();
    let shared = index_dims.len() == 2
        && out.len() == 4
        && out[..3] == dims[..3]
        && index_dims[..] == out[2..]
        && matches!(g.info(index).dtype, DType::I32 | DType::I64);
    if !shared {
        return None;
    }
    // The one reader a Transpose of the last two axes: folded in.
    let readers = g.consumers(gathered);
    let transpose = match (&readers[..], g.is_output(gathered)) {
        ([(reader, 0)], false) => match &g.node(*reader).op {
            Op::Transpose { perm } if perm[..] == [0, 1, 3, 2] => Some(*reader),
            _ => None,
        },
        _ => None,
    };
    Some(Match {
        gather: id,
        data,
        index,
        transposed: transpose.is_some(),
        replaced: Value {
            node: transpose.unwrap_or(id),
            slot: 0,
        },
    })
}

fn rewrite(g: &mut Graph, m: &Match) -> Result<Value, IrError> {
    let base = g.node(m.gather).name.clone();
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.flat.{s}"));
    let int = |g: &mut Graph, s: &str, t: Tensor| {
        let n = name(g, s);
        g.add_const(&n, t)
    };
    let binary = |g: &mut Graph, s: &str, op: BinaryOp, a: Value, b: Value| {
        let n = name(g, s);
        g.add(&n, Op::Binary(op), &[a, b])
    };
    // The 2-D grid's arithmetic in int64 ([S, S'] elements, once).
    let index = g.add(&name(g, "index.i64"), Op::Cast { to: DType::I64 }, &[m.index])?;
    // R, the gathered axis' length.
    let shape = g.add(&name(g, "shape"), Op::Shape, &[m.data])?;
    let three = int(g, "three", Tensor::vec_i64(&[3]))?;
    let four = int(g, "four", Tensor::vec_i64(&[4]))?;
    let zero = int(g, "zero", Tensor::vec_i64(&[0]))?;
    let one = int(g, "one", Tensor::vec_i64(&[1]))?;
    let length = g.add(&name(g, "row_length"), Op::Slice, &[shape, three, four, zero])?;
    // The grid as the output reads it: [S, S'], or its transpose.
    let index = match m.transposed {
        false => index,
        true => g.add(
            &name(g, "index.by_query"),
            Op::Transpose { perm: vec![1, 0] },
            &[index],
        )?,
    };
    // Negative indices count from the end of the row.
    let zero_scalar = int(g, "zero_index", Tensor::scalar_i64(0))?;
    let negative = binary(g, "index.negative", BinaryOp::Less, index, zero_scalar)?;
    let wrapped = binary(g, "index.wrapped", BinaryOp::Add, index, length)?;
    let index = g.add(
        &name(g, "index.from_zero"),
        Op::Where,
        &[negative, wrapped, index],
    )?;
    // Each data row's start, i·R, along the axis the row number runs: the
    // grid's rows (i) or, transposed, its columns (j).
    let grid_shape = g.add(&name(g, "grid_shape"), Op::Shape, &[m.index])?;
    let count = g.add(&name(g, "row_count"), Op::Slice, &[grid_shape, zero, one, zero])?;
    let count = g.add(
        &name(g, "row_count.scalar"),
        Op::Squeeze { axes: vec![0] },
        &[count],
    )?;
    let start = int(g, "range_start", Tensor::scalar_i64(0))?;
    let step = int(g, "range_step", Tensor::scalar_i64(1))?;
    let row_numbers = g.add(&name(g, "row_numbers"), Op::Range, &[start, count, step])?;
    let starts = binary(g, "row_starts", BinaryOp::Mul, row_numbers, length)?;
    let axis = if m.transposed { 0 } else { 1 };
    let starts = g.add(
        &name(g, "row_starts.grid"),
        Op::Unsqueeze { axes: vec![axis] },
        &[starts],
    )?;
    let flat_index = binary(g, "index", BinaryOp::Add, index, starts)?;
    let flat_shape = int(g, "flat_shape", Tensor::vec_i64(&[0, 0, -1]))?;
    let flat = g.add(&name(g, "rows"), Op::Reshape, &[m.data, flat_shape])?;
    g.add(&name(g, "gather"), Op::Gather { axis: 2 }, &[flat, flat_index])
}
