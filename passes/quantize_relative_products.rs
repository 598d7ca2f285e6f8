//! `quantize_relative_products` (onnxruntime's dynamic int8 form): DeBERTa's
//! relative terms' products — a query's or key's heads against the rows of
//! a projected position table — as 8-bit integer products, as the linears'
//! products against their weights are (the tables are weights too: the
//! relative embeddings through the layer's key and query projections):
//!
//! ```text
//! x  [B, h, S, d] · T[:, rows, :]ᵀ          T [h, R, d], computed from constants
//! →
//! a  = max|T| over d, per head and row         [h, R, 1]
//! tq = QuantizeLinear(T / a, 1/127)            s8, every row at full resolution
//! xq, xs, xz = DynamicQuantizeLinear(x)        u8, one scale per tensor
//! Cast<f32>(MatMulInteger(xq, tq[:, rows, :]ᵀ, xz)) · (xs · a[:, rows, :]ᵀ / 127)
//! ```
//!
//! Why. Left f32, they were what kept DeBERTa's int8 file from halving its
//! time: DeBERTa-v3-base at S=512 spent 86 ms of ~590 in them with the
//! attention's own products int8 (onnxruntime 1.32, Zen 4, 2 threads,
//! `ort_profile.py`). In u8 × s8 (one interleaved run, int8 / fp32): S=512
//! 0.50 → 0.46, S=128 0.37 → 0.36, B=8 S=64 0.39 → 0.34; with
//! `--quantize-attention` S=512 0.49 → 0.46.
//!
//! Why per row: the table's rows are positions, whose projections differ
//! in size; one scale for the whole table cost deberta-v3-cls's worst row
//! 0.991 → 0.979 (OpenVINO's static form, measured when its form was
//! tried). Each row's own scale is a column scale of the product, applied
//! after it. The table and its scales depend only on constants, so the
//! runtime computes them once, at load; only the cut to the rows length S
//! reads (a `Slice` by run-time bounds, as the f32 form has) runs per call.
//!
//! Conditions checked: a `MatMul(x, Transpose[0, 2, 1](Slice(T, first,
//! end, [1])))` with `x` f32 of rank 4, `T` f32 [h, R, d] computed from
//! constants only (no graph input reaches it), the slice along T's rows
//! with unit steps, and `x`'s last dim T's d.

use crate::ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, Tensor, UnaryOp, Value};

use super::pattern::{computed_from_constants, constant, input};
use super::quantize_int8::MIN_ABSMAX;
use super::{Pass, PassReport};

pub struct QuantizeRelativeProducts {
    /// `--quantize-skip`'s patterns: a product whose name contains one
    /// (`c2p.all_rows`, `layer.3.attention.self.p2c`) stays f32, as a
    /// Linear would.
    pub skip: Vec<String>,
}

impl Pass for QuantizeRelativeProducts {
    fn name(&self) -> &'static str {
        "quantize_relative_products"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let kept = |g: &Graph, m: &Match| {
            let name = &g.node(m.product).name;
            self.skip.iter().any(|p| name.contains(p.as_str()))
        };
        let matches: Vec<Match> = g
            .node_ids()
            .filter_map(|id| match_at(g, id))
            .filter(|m| !kept(g, m))
            .collect();
        let before = g.node_count();
        // Each table is read by one product (every term projects the
        // shared table through its own Linear).
        for m in &matches {
            let table = quantize_table(g, m)?;
            let out = rewrite(g, m, table)?;
            g.replace_uses(
                Value {
                    node: m.product,
                    slot: 0,
                },
                out,
            );
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: g.node_count() - before,
            nodes_removed: 0,
        })
    }
}

/// The names of the products the pass rewrites (the MatMuls), which
/// `--quantize-skip` patterns may name.
pub fn relative_product_names(g: &Graph) -> Vec<String> {
    g.node_ids()
        .filter_map(|id| match_at(g, id))
        .map(|m| g.node(m.product).name.clone())
        .collect()
}

struct Match {
    product: NodeId,
    x: Value,
    /// T [h, R, d].
    table: Value,
    /// The slice's start and end (the rows S reads, run-time values).
    cut: [Value; 2],
}

fn match_at(g: &Graph, id: NodeId) -> Option<Match> {
    if g.node(id).op != Op::MatMul {
        return None;
    }
    let (x, t) = (input(g, id, 0)?, input(g, id, 1)?);
    let Op::Transpose { perm } = &g.node(t.node).op else {
        return None;
    };
    if perm[..] != [0, 2, 1] {
        return None;
    }
    let cut = input(g, t.node, 0)?;
    let slice = g.inputs_of(cut.node);
    if g.node(cut.node).op != Op::Slice || slice.len() != 4 {
        return None;
    }
    let [Some(table), Some(start), Some(end), Some(axes)] = slice[..] else {
        return None;
    };
    let rows_axis = constant(g, axes)?.to_i64_vec()?;
    let table_dims = g.info(table).shape.dims();
    let x_dims = g.info(x).shape.dims();
    let fits = matches!(rows_axis[..], [1] | [-2])
        && table_dims.len() == 3
        && x_dims.len() == 4
        && g.info(x).dtype == DType::F32
        && g.info(table).dtype == DType::F32
        && table_dims[2].fixed().is_some()
        && x_dims[3].fixed() == table_dims[2].fixed();
    (fits && computed_from_constants(g, table)).then_some(Match {
        product: id,
        x,
        table,
        cut: [start, end],
    })
}

/// T as s8 with one scale per head and row, both [h, R, ·].
struct QuantizedTable {
    values: Value,
    scales: Value,
}

fn quantize_table(g: &mut Graph, m: &Match) -> Result<QuantizedTable, IrError> {
    let base = g.node(m.table.node).name.clone();
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
    let abs = g.add(&name(g, "abs"), Op::Unary(UnaryOp::Abs), &[m.table])?;
    let row_max = Op::ReduceMax {
        axes: vec![2],
        keepdims: true,
    };
    let amax = g.add(&name(g, "row_absmax_raw"), row_max, &[abs])?;
    let floor = g.add_const(&name(g, "min_absmax"), Tensor::scalar_f32(MIN_ABSMAX))?;
    let amax = g.add(&name(g, "row_absmax"), Op::Binary(BinaryOp::Max), &[amax, floor])?;
    let unit = g.add_const(&name(g, "unit_scale"), Tensor::scalar_f32(1.0 / 127.0))?;
    let zero_i8 = Tensor::from_raw(DType::I8, vec![], vec![0u8].into()).expect("one i8");
    let zero = g.add_const(&name(g, "zero_point"), zero_i8)?;
    let normalized = g.add(
        &name(g, "normalized"),
        Op::Binary(BinaryOp::Div),
        &[m.table, amax],
    )?;
    let values = g.add(
        &name(g, "s8"),
        Op::QuantizeLinear { axis: 1 },
        &[normalized, unit, zero],
    )?;
    let scales = g.add(&name(g, "row_scale"), Op::Binary(BinaryOp::Mul), &[amax, unit])?;
    Ok(QuantizedTable { values, scales })
}

fn rewrite(g: &mut Graph, m: &Match, table: QuantizedTable) -> Result<Value, IrError> {
    let base = g.node(m.product).name.clone();
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
    let [start, end] = m.cut;
    // The rows S reads from the tables transposed to the product's right
    // operand, [h, ·, R]: the transposes are of constants (folded at load),
    // the cut runs per call. (Transposing each cut instead: 24 more
    // kernels a run, onnxruntime's Transpose 7.7 → 13.6 ms at S=128.)
    let last = g.add_const(&name(g, "rows_axis"), Tensor::vec_i64(&[2]))?;
    let read = |g: &mut Graph, what: &str, v: Value| -> Result<Value, IrError> {
        let t = g.add(
            &name(g, &format!("{what}_transpose")),
            Op::Transpose { perm: vec![0, 2, 1] },
            &[v],
        )?;
        g.add(
            &name(g, &format!("{what}_rows")),
            Op::Slice,
            &[t, start, end, last],
        )
    };
    let tq = read(g, "table_s8", table.values)?;
    let ts = read(g, "table_scale", table.scales)?;
    let dq = g.add_node(&name(g, "quantize"), Op::DynamicQuantizeLinear, &[Some(m.x)])?;
    let out = |slot| Value { node: dq, slot };
    let (xq, xs, xz) = (out(0), out(1), out(2));
    let product = g.add_node(
        &name(g, "int"),
        Op::MatMulInteger,
        &[Some(xq), Some(tq), Some(xz)],
    )?;
    let product = g.add(
        &name(g, "float"),
        Op::Cast { to: DType::F32 },
        &[Value {
            node: product,
            slot: 0,
        }],
    )?;
    let scale = g.add(&name(g, "int_scale"), Op::Binary(BinaryOp::Mul), &[xs, ts])?;
    g.add(
        &name(g, "dequantized"),
        Op::Binary(BinaryOp::Mul),
        &[product, scale],
    )
}
