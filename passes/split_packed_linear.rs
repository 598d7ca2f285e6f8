//! `split_packed_linear` (target onnxruntime): a bias-free linear layer
//! whose packed output is read only through column slices — ModernBERT's
//! `Wqkv` (q, k, v) and its GeGLU `Wi` (input, gate), NomicBERT's `Wqkv`,
//! GTE's `up_gate_proj` — becomes one MatMul
//! per slice over that slice's columns of the weight:
//!
//! ```text
//! Slice(MatMul(x, W), s, e, last axis)  →  MatMul(x, W[:, s..e])
//! ```
//!
//! Why: onnxruntime runs the slices of a packed product as a `Split`,
//! which copies every column out again; the separate products run as fast
//! as the packed one. ModernBERT-base, S = 128, 2 threads, AMD EPYC Zen 4
//! (`scripts/ort_profile.py`, two profiles of each): the 44 Splits took
//! 6.3–7.9 ms, the MatMuls 148.8–154.1 ms packed against 148.3–149.0 ms
//! split.
//!
//! Only when every reader of the product is such a Slice (otherwise the
//! packed product is made anyway) and the product is no graph output. The
//! same numbers: each output element is the same dot product of a row of
//! `x` and a column of `W`.

use std::collections::HashMap;

use crate::ir::{canonical_order, DType, Graph, IrError, NodeId, Op, Tensor, Value};

use super::pattern::{bias_free_linear, constant, slice_bounds};
use super::{Pass, PassReport};

pub struct SplitPackedLinear;

struct Match {
    x: Value,
    w: Value,
    /// Each slice: its node and its column range.
    slices: Vec<(NodeId, usize, usize)>,
}

impl Pass for SplitPackedLinear {
    fn name(&self) -> &'static str {
        "split_packed_linear"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = canonical_order(g)
            .into_iter()
            .filter_map(|id| match_at(g, Value { node: id, slot: 0 }))
            .collect();
        let mut report = PassReport::default();
        // Column blocks made once per (weight, range): layers that share a
        // weight (ALBERT's) share its parts too.
        let mut weights: HashMap<(Value, usize, usize), Value> = HashMap::new();
        for m in matches {
            let Some((dims, values)) =
                constant(g, m.w).and_then(|t| Some((t.dims().to_vec(), t.to_f32_vec()?)))
            else {
                continue;
            };
            let mut products: HashMap<(usize, usize), Value> = HashMap::new();
            for (slice, start, end) in m.slices {
                let base = g.node(slice).name.clone();
                let product = match products.get(&(start, end)) {
                    Some(&done) => done,
                    None => {
                        let part = match weights.get(&(m.w, start, end)) {
                            Some(&done) => done,
                            None => {
                                let name = g.fresh_name(&format!("{base}.weight"));
                                let part = g.add_const(&name, columns(&values, &dims, start, end))?;
                                weights.insert((m.w, start, end), part);
                                report.nodes_added += 1;
                                part
                            }
                        };
                        let name = g.fresh_name(&format!("{base}.matmul"));
                        let product = g.add(&name, Op::MatMul, &[m.x, part])?;
                        report.nodes_added += 1;
                        products.insert((start, end), product);
                        product
                    }
                };
                g.replace_uses(Value { node: slice, slot: 0 }, product);
            }
            report.matches += 1;
        }
        Ok(report)
    }
}

/// A packed linear whose every reader is a last-axis Slice of it.
fn match_at(g: &Graph, v: Value) -> Option<Match> {
    let (x, w) = bias_free_linear(g, v)?;
    let wt = constant(g, w)?;
    let &[_, n] = wt.dims() else {
        return None;
    };
    if wt.dtype() != DType::F32 || g.outputs().iter().any(|(_, o)| *o == v) {
        return None;
    }
    let last = g.info(v).shape.rank().checked_sub(1)? as i64;
    let readers = g.consumers(v);
    if readers.len() < 2 {
        return None;
    }
    let mut slices = Vec::with_capacity(readers.len());
    for (reader, slot) in readers {
        let out = Value {
            node: reader,
            slot: 0,
        };
        let (data, start, end, axis) = slice_bounds(g, out)?;
        if slot != 0 || data != v || axis != last {
            return None;
        }
        let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
        if end > n {
            return None;
        }
        slices.push((reader, start, end));
    }
    // Less than the whole width each (a slice of everything is the
    // product itself: nothing to save).
    slices
        .iter()
        .all(|&(_, s, e)| e - s < n)
        .then_some(Match { x, w, slices })
}

/// Columns `start..end` of the 2-D `dims` f32 `values` (row-major).
fn columns(values: &[f32], dims: &[usize], start: usize, end: usize) -> Tensor {
    let (rows, n) = (dims[0], dims[1]);
    let mut out = Vec::with_capacity(rows * (end - start));
    for r in 0..rows {
        out.extend_from_slice(&values[r * n + start..r * n + end]);
    }
    Tensor::from_f32(vec![rows, end - start], &out)
}
