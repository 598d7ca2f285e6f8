//! The index arithmetic of a packed graph, built once from the attention
//! mask, and the two moves that use it: packing a `[B, S, …]` value to the
//! real tokens' `[T, …]`, and unpacking `[T, …]` back to `[B, S, …]` with
//! zeros at the padding positions.
//!
//! Standard ops only (NonZero, Gather, CumSum, Where, Concat,
//! ConstantOfShape, Reshape): tract, onnxruntime and OpenVINO all run them.
//! Unpacking is a Gather from `[T + 1, …]` (the packed rows and one zero
//! row) at an inverse index `[B, S]`, rather than a ScatterND into zeros:
//! one op, no write conflicts to reason about, and the same result.

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Dim, Graph, IrError, Op, Tensor, Value};

/// Where a packed operand's rows come from: the positions of `[B, S, …]`,
/// of `[1, S, …]` (or `[S, …]`: per position, shared by the batch) or of
/// `[B, 1, …]` (per sequence, shared by its tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rows {
    Token,
    Position,
    Sequence,
}

/// The values every pack and unpack reads, and what was made of them.
pub struct TokenIndices {
    /// Row-major index of each real token in `[B·S]`: `[T]`.
    flat: Value,
    /// The sequence (b) of each real token: `[T]`.
    rows: Value,
    /// The position (s) of each real token: `[T]`.
    cols: Value,
    /// For each (b, s), the packed row of that token, or T (the zero row)
    /// at padding: `[B, S]`.
    inverse: Value,
    packed: HashMap<(Value, Rows), Value>,
    /// One zero row `[1, rest]` per `rest`, shared by the unpacks.
    zero_rows: HashMap<Vec<i64>, Value>,
    /// Nodes added, for the pass's report.
    pub added: usize,
}

impl TokenIndices {
    /// The indices of the nonzero entries of `mask` (`[B, S]`, integer).
    /// Node names start with `prefix`.
    pub fn new(g: &mut Graph, mask: Value, prefix: &str) -> Result<TokenIndices, IrError> {
        let before = g.node_count();
        let add = |g: &mut Graph, name: &str, op: Op, inputs: &[Value]| {
            let name = g.fresh_name(&format!("{prefix}.{name}"));
            g.add(&name, op, inputs)
        };
        let constant = |g: &mut Graph, name: &str, t: Tensor| {
            let name = g.fresh_name(&format!("{prefix}.{name}"));
            g.add_const(&name, t)
        };
        let zero = constant(g, "zero", Tensor::scalar_i64(0))?;
        let one = constant(g, "one", Tensor::scalar_i64(1))?;
        let nonzero = add(g, "nonzero", Op::NonZero, &[mask])?;
        let rows = add(g, "rows", Op::Gather { axis: 0 }, &[nonzero, zero])?;
        let cols = add(g, "cols", Op::Gather { axis: 0 }, &[nonzero, one])?;
        let mask_shape = add(g, "mask_shape", Op::Shape, &[mask])?;
        let seq = add(g, "sequence_length", Op::Gather { axis: 0 }, &[mask_shape, one])?;
        let row_starts = add(g, "row_starts", Op::Binary(BinaryOp::Mul), &[rows, seq])?;
        let flat = add(g, "flat", Op::Binary(BinaryOp::Add), &[row_starts, cols])?;

        // The packed row of a real token is the count of real tokens up to
        // it, minus one, in row-major order: the order NonZero lists them.
        let minus_one = constant(g, "minus_one", Tensor::vec_i64(&[-1]))?;
        let mask_flat = add(g, "mask_flat", Op::Reshape, &[mask, minus_one])?;
        let real = add(g, "real", Op::Cast { to: DType::Bool }, &[mask_flat])?;
        // A Where rather than a Cast to int64: tract reads a Cast to int64
        // as one to its symbolic dimension type, which CumSum cannot sum.
        let real_count = add(g, "real_i64", Op::Where, &[real, one, zero])?;
        let counted = add(g, "counted", Op::CumSum, &[real_count, zero])?;
        let before_self = add(g, "packed_row", Op::Binary(BinaryOp::Sub), &[counted, one])?;
        let nonzero_shape = add(g, "nonzero_shape", Op::Shape, &[nonzero])?;
        let count = add(g, "count", Op::Gather { axis: 0 }, &[nonzero_shape, one])?;
        let inverse_flat = add(g, "inverse_flat", Op::Where, &[real, before_self, count])?;
        let inverse = add(g, "inverse", Op::Reshape, &[inverse_flat, mask_shape])?;
        Ok(TokenIndices {
            flat,
            rows,
            cols,
            inverse,
            packed: HashMap::new(),
            zero_rows: HashMap::new(),
            added: g.node_count() - before,
        })
    }

    /// `v` as `[T, rest]`: its rows at the real tokens. `lead` is how many
    /// of its leading dims `rows` stand for (2 for `[B, S, rest]`,
    /// `[1, S, rest]` and `[B, 1, rest]`, 1 for `[S, rest]`); `rest` must be
    /// fixed. Made once per value.
    pub fn pack(&mut self, g: &mut Graph, v: Value, rows: Rows, lead: usize) -> Result<Value, IrError> {
        if let Some(p) = self.packed.get(&(v, rows)) {
            return Ok(*p);
        }
        let before = g.node_count();
        let base = g.node(v.node).name.clone();
        let dims = g.info(v).shape.dims().to_vec();
        let rest = fixed_dims(dims.get(lead..).unwrap_or_default(), &base)?;
        let target: Vec<i64> = std::iter::once(-1).chain(rest.iter().copied()).collect();
        let target = g.add_const(
            &g.fresh_name(&format!("{base}.pack_shape")),
            Tensor::vec_i64(&target),
        )?;
        let flat = g.add(
            &g.fresh_name(&format!("{base}.flatten")),
            Op::Reshape,
            &[v, target],
        )?;
        let index = match rows {
            Rows::Token => self.flat,
            Rows::Position => self.cols,
            Rows::Sequence => self.rows,
        };
        let packed = g.add(
            &g.fresh_name(&format!("{base}.pack")),
            Op::Gather { axis: 0 },
            &[flat, index],
        )?;
        self.added += g.node_count() - before;
        self.packed.insert((v, rows), packed);
        Ok(packed)
    }

    /// `packed` (`[T, rest]`, f32) back at the positions of `[B, S, rest]`,
    /// zeros at the padding.
    pub fn unpack(&mut self, g: &mut Graph, packed: Value) -> Result<Value, IrError> {
        let before = g.node_count();
        let base = g.node(packed.node).name.clone();
        let info = g.info(packed).clone();
        if info.dtype != DType::F32 {
            return Err(IrError::Invalid {
                node: base,
                reason: format!("only f32 values are unpacked, got {}", info.dtype),
            });
        }
        let rest = fixed_dims(&info.shape.dims()[1..], &base)?;
        let zero_row = self.zero_row(g, &rest)?;
        let padded = g.add(
            &g.fresh_name(&format!("{base}.with_zero_row")),
            Op::Concat { axis: 0 },
            &[packed, zero_row],
        )?;
        let unpacked = g.add(
            &g.fresh_name(&format!("{base}.unpack")),
            Op::Gather { axis: 0 },
            &[padded, self.inverse],
        )?;
        self.added += g.node_count() - before;
        Ok(unpacked)
    }
}

impl TokenIndices {
    /// A zero row `[1, rest]` (f32), one per `rest`, shared by the unpacks.
    fn zero_row(&mut self, g: &mut Graph, rest: &[i64]) -> Result<Value, IrError> {
        if let Some(z) = self.zero_rows.get(rest) {
            return Ok(*z);
        }
        let width: Vec<String> = rest.iter().map(|d| d.to_string()).collect();
        let name = format!("packed.zero_row_{}", width.join("x"));
        let row: Vec<i64> = std::iter::once(1).chain(rest.iter().copied()).collect();
        let row = g.add_const(&g.fresh_name(&format!("{name}.shape")), Tensor::vec_i64(&row))?;
        let zeros = Op::ConstantOfShape {
            value: Tensor::from_f32(vec![1], &[0.0]),
        };
        let z = g.add(&g.fresh_name(&name), zeros, &[row])?;
        self.zero_rows.insert(rest.to_vec(), z);
        Ok(z)
    }
}

/// The fixed sizes of `dims`, or an error naming the value they belong to.
fn fixed_dims(dims: &[Dim], node: &str) -> Result<Vec<i64>, IrError> {
    dims.iter()
        .map(|d| d.fixed())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| IrError::Invalid {
            node: node.to_string(),
            reason: format!("packing needs fixed trailing dims, got {dims:?}"),
        })
}
