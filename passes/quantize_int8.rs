//! `quantize_int8`: linear layers `Add(MatMul(x, W), b)` run as integer
//! matrix products with int8 weights, and large embedding tables are stored
//! as int8 (weight-only).
//!
//! Weights: int8, symmetric (zero point 0), one scale per output column
//! (`ws[n] = max_k |W[k, n]| / 127`) or one per tensor.
//!
//! Activations, symmetric int8 with zero point 0, so that no zero-point
//! correction sums are needed at run time:
//! - dynamic, one scale per token row: `s = max(|x|, last axis) / 127`,
//!   `q = Cast<i8>(Round(x / s))`, `y = Cast<f32>(MatMulInteger(q, Wq)) · s · ws + b`;
//! - static, from calibrated per-channel ranges `r_k`: half of each
//!   channel's range is moved into the weight rows (SmoothQuant, α = 0.5:
//!   `f_k = sqrt(r_k / max_n |W[k, n]|)`, `W' = diag(f) W`), then one
//!   scale `s = max_k(r_k / f_k) / 127` for the tensor:
//!   `q = Cast<i8>(Clip(Round(x · 1/(s·f)), -127, 127))`,
//!   `y = Cast<f32>(MatMulInteger(q, W'q)) · (s · ws') + b`. Inputs made by
//!   a Gelu (the FFN output layer) keep per-token dynamic scales: on
//!   MiniLM one calibrated scale there drops the min row cosine from 0.994
//!   to 0.911 (plain per-tensor scales on every input, no smoothing: 0.964;
//!   with 99.99th-percentile clipping instead of the max: 0.908).
//!
//! Linears reading the same `x` (Q, K, V) share one quantization of it.
//! Embedding tables (Gather of a constant 2-D f32 table with at least
//! [`MIN_EMBEDDING_ROWS`] rows) become an int8 table with one scale per
//! row: `Cast<f32>(Gather(Tq, ids)) · Gather(scales, ids)`.
//!
//! Why this form. tract lowers MatMulInteger, QLinearMatMul and
//! DynamicQuantizeLinear alike to its quantized einsum; what differs is
//! the work around the integer product. Zero point 0 on both operands and
//! i8 × i8 leave no zero-point correction sums (onnxruntime's
//! `quantize_dynamic` output spends 37 % of its tract time in them, and
//! 22 % in DynamicQuantizeLinear; ../shared/notes/measured-anchors.md), and
//! tract fuses the dequantization `Cast · s · ws + b` into one
//! `OptBinChain(Mul+Mul+Add)`. Per-token scales cost what a per-tensor
//! scale does (a ReduceMax over the last axis instead of all axes) and are
//! what gets MiniLM to ≥ 0.99: min row cosine 0.9918 against PyTorch, where
//! per-tensor symmetric activations reach 0.961 and onnxruntime's own
//! per-channel dynamic int8 0.986.
//!
//! Measured on this project's AVX2 + FMA machine (no AVX-512, no VNNI),
//! tract 0.23.9, BERT-base, B=1, S=128, 2 threads, one interleaved run of
//! 7 (`examples/latency.rs`), medians:
//!
//! | form | tract | ratio |
//! |---|---|---|
//! | f32 (`--target tract`) | 740 ms | 1.00 |
//! | this pass, dynamic | 2526 ms | 3.41 |
//! | this pass, static | 2527 ms | 3.41 |
//! | onnxruntime `quantize_dynamic` (per channel) | 3472 ms | 4.69 |
//!
//! Per op (`examples/profile.rs`): the integer products take 2449 ms of the
//! 2538 (96.5 %); everything this form adds around them — Round 8.9 ms,
//! Cast 16 ms, Abs 5.6 ms, ReduceMax 3.6 ms, the fused dequantization
//! 10.6 ms — is 2 %. On AVX2, tract's only int8 kernel (`avx2_mmm_i32_8x8`)
//! sign-extends bytes to i32 and multiplies with `vpmulld`: 8 products per
//! instruction against 16 per FMA pair in f32, so int8 cannot beat f32 on
//! this CPU in tract, whatever the graph. On AVX-512 VNNI (`vpdpbusd`) the
//! same products run 3.15× faster than f32 (the anchors' machine); there
//! this form leaves only the ~2 % overhead around them.

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Graph, IrError, Op, Tensor, UnaryOp, Value};

use super::pattern::{constant, linear};
use super::{Pass, PassReport};

/// Smallest table treated as an embedding to store as int8 (position and
/// token-type tables are small and stay f32).
pub const MIN_EMBEDDING_ROWS: usize = 4096;

/// How activation scales are found.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivationScales {
    /// Computed at run time, per token row.
    Dynamic,
    /// Calibrated: the range (max |x|) of each input channel of each
    /// linear input, keyed by the name of the node producing it.
    Static(HashMap<String, Vec<f32>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightGranularity {
    PerChannel,
    PerTensor,
}

#[derive(Debug, Clone)]
pub struct QuantizeInt8 {
    pub activations: ActivationScales,
    pub weights: WeightGranularity,
    /// Linear layers whose name contains one of these are kept in f32.
    pub skip: Vec<String>,
    /// Store large embedding tables as int8 too.
    pub embeddings: bool,
}

impl QuantizeInt8 {
    pub fn dynamic() -> QuantizeInt8 {
        QuantizeInt8 {
            activations: ActivationScales::Dynamic,
            weights: WeightGranularity::PerChannel,
            skip: Vec::new(),
            embeddings: true,
        }
    }
}

/// An int8 weight and the f32 scale of each of its columns (one scale
/// repeated when per tensor).
pub struct QuantizedWeight {
    pub values: Tensor,
    pub scales: Vec<f32>,
}

/// Symmetric int8 quantization of a 2-D [K, N] weight.
pub fn quantize_weight(w: &Tensor, granularity: WeightGranularity) -> QuantizedWeight {
    let (k, n) = (w.dims()[0], w.dims()[1]);
    let v = w.to_f32_vec().expect("f32 weight");
    let mut max = vec![0f32; n];
    for row in v.chunks_exact(n) {
        for (m, x) in max.iter_mut().zip(row) {
            *m = m.max(x.abs());
        }
    }
    if granularity == WeightGranularity::PerTensor {
        let all = max.iter().copied().fold(0f32, f32::max);
        max.iter_mut().for_each(|m| *m = all);
    }
    let scales: Vec<f32> = max
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let mut q = vec![0u8; k * n];
    for (qrow, row) in q.chunks_exact_mut(n).zip(v.chunks_exact(n)) {
        for ((qv, x), s) in qrow.iter_mut().zip(row).zip(&scales) {
            *qv = (x / s).round().clamp(-127.0, 127.0) as i8 as u8;
        }
    }
    QuantizedWeight {
        values: Tensor::from_raw(DType::I8, vec![k, n], q.into()).expect("sizes match"),
        scales,
    }
}

/// One linear layer to rewrite.
pub(super) struct Target {
    pub(super) out: Value,
    pub(super) x: Value,
    pub(super) w: Value,
    pub(super) b: Value,
}

/// The linear layers to quantize, in canonical order: not skipped by name,
/// their MatMul read only by their Add, their input computed at run time.
pub(super) fn targets(g: &Graph, skip: &[String]) -> Vec<Target> {
    crate::ir::canonical_order(g)
        .into_iter()
        .filter_map(|id| {
            let out = Value { node: id, slot: 0 };
            let l = linear(g, out)?;
            let name = &g.node(id).name;
            let skipped = skip.iter().any(|p| name.contains(p.as_str()));
            let alone = g.consumers(l.matmul).len() == 1 && constant(g, l.x).is_none();
            (!skipped && alone).then_some(Target {
                out,
                x: l.x,
                w: l.w,
                b: l.b,
            })
        })
        .collect()
}

/// The distinct inputs of the linear layers the pass would quantize: the
/// values static quantization calibrates.
pub fn linear_inputs(g: &Graph, skip: &[String]) -> Vec<Value> {
    let mut xs: Vec<Value> = targets(g, skip).into_iter().map(|t| t.x).collect();
    xs.sort();
    xs.dedup();
    xs
}

impl Pass for QuantizeInt8 {
    fn name(&self) -> &'static str {
        "quantize_int8"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut report = PassReport::default();
        let targets = targets(g, &self.skip);
        // The largest |W[k, n]| of each input channel k over every linear reading x.
        let mut row_max: HashMap<Value, Vec<f32>> = HashMap::new();
        for t in &targets {
            let w = constant(g, t.w).expect("linear weight");
            let n = w.dims()[1];
            let entry = row_max.entry(t.x).or_insert_with(|| vec![0.0; w.dims()[0]]);
            for (m, row) in entry.iter_mut().zip(w.to_f32_vec().expect("f32").chunks_exact(n)) {
                *m = row.iter().fold(*m, |m, v| m.max(v.abs()));
            }
        }
        // One quantization per distinct input.
        let mut quantized: HashMap<Value, Quantized> = HashMap::new();
        for t in targets {
            let before = g.node_count();
            let base = g.node(t.out.node).name.clone();
            let Quantized {
                q,
                row_scale,
                scale: s,
                smooth,
            } = match quantized.get(&t.x) {
                Some(done) => done.clone(),
                None => {
                    let done = self.quantize_activation(g, t.x, &row_max[&t.x], &base)?;
                    quantized.insert(t.x, done.clone());
                    done
                }
            };
            let w = constant(g, t.w).expect("linear weight");
            let qw = match &smooth {
                None => quantize_weight(w, self.weights),
                Some(factors) => {
                    let n = w.dims()[1];
                    let mut v = w.to_f32_vec().expect("f32");
                    for (row, f) in v.chunks_exact_mut(n).zip(factors) {
                        row.iter_mut().for_each(|x| *x *= f);
                    }
                    quantize_weight(&Tensor::from_f32(w.dims().to_vec(), &v), self.weights)
                }
            };
            let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
            let wn = name(g, "weight_int8");
            let wq = g.add_const(&wn, qw.values)?;
            let mn = name(g, "matmul_int8");
            let acc = g.add(&mn, Op::MatMulInteger, &[q, wq])?;
            let cn = name(g, "to_f32");
            let accf = g.add(&cn, Op::Cast { to: DType::F32 }, &[acc])?;
            let scaled = match row_scale {
                Some(rs) => {
                    let rn = name(g, "row_scale");
                    let y = g.add(&rn, Op::Binary(BinaryOp::Mul), &[accf, rs])?;
                    let sn = name(g, "weight_scale");
                    let ws = g.add_const(&sn, Tensor::from_f32(vec![qw.scales.len()], &qw.scales))?;
                    let cn = name(g, "col_scale");
                    g.add(&cn, Op::Binary(BinaryOp::Mul), &[y, ws])?
                }
                None => {
                    let both: Vec<f32> = qw.scales.iter().map(|w| w * s).collect();
                    let sn = name(g, "scale");
                    let sc = g.add_const(&sn, Tensor::from_f32(vec![both.len()], &both))?;
                    let cn = name(g, "dequantize");
                    g.add(&cn, Op::Binary(BinaryOp::Mul), &[accf, sc])?
                }
            };
            let an = name(g, "bias_int8");
            let y = g.add(&an, Op::Binary(BinaryOp::Add), &[scaled, t.b])?;
            g.replace_uses(t.out, y);
            report.matches += 1;
            report.nodes_added += g.node_count() - before;
        }
        if self.embeddings {
            let tables = quantize_embeddings(g, &mut report)?;
            report.matches += tables;
        }
        Ok(report)
    }
}

/// The int8 form of one linear input.
#[derive(Clone)]
struct Quantized {
    q: Value,
    /// Dynamic: the per-row scale [.., 1].
    row_scale: Option<Value>,
    /// Static: the per-tensor scale.
    scale: f32,
    /// Static: per input channel factors folded into the weights' rows.
    smooth: Option<Vec<f32>>,
}

/// SmoothQuant's migration strength: how much of an activation channel's
/// range is moved into the weights (0.5 balances both).
const SMOOTHING_ALPHA: f32 = 0.5;

impl QuantizeInt8 {
    /// Adds the int8 quantization of `x`. `row_max` is the largest |W| of
    /// each input channel over the linears that read x.
    fn quantize_activation(
        &self,
        g: &mut Graph,
        x: Value,
        row_max: &[f32],
        base: &str,
    ) -> Result<Quantized, IrError> {
        let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.input_{s}"));
        let f = |g: &mut Graph, n: &str, v: f32| -> Result<Value, IrError> {
            let n = g.fresh_name(&format!("{base}.input_{n}"));
            g.add_const(&n, Tensor::scalar_f32(v))
        };
        let dynamic = match &self.activations {
            ActivationScales::Dynamic => true,
            // GELU outputs range from -0.17 to tens, differently on every
            // token: one calibrated scale for all tokens loses too much
            // (MiniLM min row cosine 0.911 with it, 0.994 without), so the
            // FFN output layer keeps per-token scales.
            ActivationScales::Static(_) => matches!(g.node(x.node).op, Op::Gelu { .. }),
        };
        match (&self.activations, dynamic) {
            (ActivationScales::Static(ranges), false) => {
                let producer = crate::ir::value_name(g, x);
                let range = ranges.get(&producer).filter(|r| r.len() == row_max.len());
                let range = range.ok_or_else(|| IrError::Invalid {
                    node: producer.clone(),
                    reason: format!(
                        "no calibrated range of {} channels for this linear input",
                        row_max.len()
                    ),
                })?;
                // Per-channel outliers (a few hidden dims of BERT's residual
                // stream are 10-100x the rest) would crush a per-tensor scale:
                // x·W = (x / f)·(f·W), with f_k = sqrt(range_k / max|W_k|),
                // moves half of each channel's range into the weights' rows.
                let smooth: Vec<f32> = range
                    .iter()
                    .zip(row_max)
                    .map(|(&r, &w)| match r > 0.0 && w > 0.0 {
                        true => r.powf(SMOOTHING_ALPHA) / w.powf(1.0 - SMOOTHING_ALPHA),
                        false => 1.0,
                    })
                    .collect();
                let smoothed = range.iter().zip(&smooth).map(|(r, f)| r / f).fold(0f32, f32::max);
                let s = if smoothed > 0.0 { smoothed / 127.0 } else { 1.0 };
                let inv: Vec<f32> = smooth.iter().map(|f| 1.0 / (s * f)).collect();
                let n = g.fresh_name(&format!("{base}.input_inv_scale"));
                let inv = g.add_const(&n, Tensor::from_f32(vec![inv.len()], &inv))?;
                let mn = name(g, "scaled");
                let d = g.add(&mn, Op::Binary(BinaryOp::Mul), &[x, inv])?;
                let rn = name(g, "round");
                let r = g.add(&rn, Op::Unary(UnaryOp::Round), &[d])?;
                let (lo, hi) = (f(g, "qmin", -127.0)?, f(g, "qmax", 127.0)?);
                let cn = name(g, "clip");
                let c = g.add(&cn, Op::Clip, &[r, lo, hi])?;
                let qn = name(g, "int8");
                let q = g.add(&qn, Op::Cast { to: DType::I8 }, &[c])?;
                Ok(Quantized {
                    q,
                    row_scale: None,
                    scale: s,
                    smooth: Some(smooth),
                })
            }
            _ => {
                let an = name(g, "abs");
                let abs = g.add(&an, Op::Unary(UnaryOp::Abs), &[x])?;
                let mn = name(g, "absmax");
                let rank = g.info(x).shape.rank();
                let max = g.add(
                    &mn,
                    Op::ReduceMax {
                        axes: vec![rank as i64 - 1],
                        keepdims: true,
                    },
                    &[abs],
                )?;
                let c = f(g, "inv127", 1.0 / 127.0)?;
                let sn = name(g, "scale_raw");
                let s = g.add(&sn, Op::Binary(BinaryOp::Mul), &[max, c])?;
                // An all-zero row would divide 0 by 0; any positive scale quantizes it to 0.
                let tiny = f(g, "min_scale", f32::MIN_POSITIVE)?;
                let sn = name(g, "scale");
                let s = g.add(&sn, Op::Binary(BinaryOp::Max), &[s, tiny])?;
                let dn = name(g, "div");
                let d = g.add(&dn, Op::Binary(BinaryOp::Div), &[x, s])?;
                let rn = name(g, "round");
                let r = g.add(&rn, Op::Unary(UnaryOp::Round), &[d])?;
                let qn = name(g, "int8");
                let q = g.add(&qn, Op::Cast { to: DType::I8 }, &[r])?;
                Ok(Quantized {
                    q,
                    row_scale: Some(s),
                    scale: 0.0,
                    smooth: None,
                })
            }
        }
    }
}

/// Embedding tables read by `Gather{axis 0}` become int8 with a scale per
/// row; returns how many tables were rewritten.
pub(super) fn quantize_embeddings(g: &mut Graph, report: &mut PassReport) -> Result<usize, IrError> {
    let gathers: Vec<_> = crate::ir::canonical_order(g)
        .into_iter()
        .filter(|&id| g.node(id).op == Op::Gather { axis: 0 })
        .filter_map(|id| {
            let inputs = g.inputs_of(id);
            let (table, ids) = (inputs.first().copied()??, inputs.get(1).copied()??);
            let t = constant(g, table)?;
            let big = t.dtype() == DType::F32 && t.dims().len() == 2 && t.dims()[0] >= MIN_EMBEDDING_ROWS;
            big.then_some((id, table, ids))
        })
        .collect();
    let mut tables: HashMap<Value, (Value, Value)> = HashMap::new();
    for &(id, table, ids) in &gathers {
        let before = g.node_count();
        let base = g.node(id).name.clone();
        let (tq, scales) = match tables.get(&table) {
            Some(&done) => done,
            None => {
                let t = constant(g, table).expect("checked constant");
                let (rows, width) = (t.dims()[0], t.dims()[1]);
                // One scale per row: a row is one token's vector.
                let mut q = Vec::with_capacity(rows * width);
                let mut scales = Vec::with_capacity(rows);
                for row in t.to_f32_vec().expect("f32").chunks_exact(width) {
                    let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
                    let s = if max > 0.0 { max / 127.0 } else { 1.0 };
                    q.extend(
                        row.iter()
                            .map(|x| (x / s).round().clamp(-127.0, 127.0) as i8 as u8),
                    );
                    scales.push(s);
                }
                let tn = g.fresh_name(&format!("{}.int8", g.node(table.node).name));
                let tq = g.add_const(
                    &tn,
                    Tensor::from_raw(DType::I8, vec![rows, width], q.into()).expect("sizes match"),
                )?;
                let sn = g.fresh_name(&format!("{}.row_scale", g.node(table.node).name));
                let sc = g.add_const(&sn, Tensor::from_f32(vec![rows, 1], &scales))?;
                tables.insert(table, (tq, sc));
                (tq, sc)
            }
        };
        let gn = g.fresh_name(&format!("{base}.int8"));
        let rows = g.add(&gn, Op::Gather { axis: 0 }, &[tq, ids])?;
        let cn = g.fresh_name(&format!("{base}.to_f32"));
        let rowsf = g.add(&cn, Op::Cast { to: DType::F32 }, &[rows])?;
        let sn = g.fresh_name(&format!("{base}.scale"));
        let s = g.add(&sn, Op::Gather { axis: 0 }, &[scales, ids])?;
        let mn = g.fresh_name(&format!("{base}.dequantize"));
        let y = g.add(&mn, Op::Binary(BinaryOp::Mul), &[rowsf, s])?;
        g.replace_uses(Value { node: id, slot: 0 }, y);
        report.nodes_added += g.node_count() - before;
    }
    Ok(gathers.len())
}
