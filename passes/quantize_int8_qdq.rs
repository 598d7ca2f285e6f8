//! `quantize_int8_qdq` (`--target openvino --quantize static`): linear
//! layers `Add(MatMul(x, W), b)` (or bias-free `MatMul(x, W)`) with QuantizeLinear/DequantizeLinear
//! pairs around the product's operands, the form OpenVINO turns into int8
//! kernels (it reads each pair as a FakeQuantize and runs the MatMul on u8
//! activations × s8 weights):
//!
//! ```text
//! xd = DequantizeLinear(QuantizeLinear(x · 1/f, s, 128), s, 128)   one per distinct x
//! Wd = DequantizeLinear(Wq, ws, 0, axis 1)                         s8, a scale per column
//! y  = MatMul(xd, Wd) + b
//! ```
//!
//! Activations are u8 with one calibrated scale per tensor. The layer
//! norms' outputs and attention's context are symmetric (zero point 128),
//! `s = max_k(r_k / f_k) / 127` from the ranges `r_k` of each input
//! channel; weights are symmetric s8 per output column. The layer norms'
//! outputs (Q/K/V and the FFN input, where BERT's outlier channels live)
//! are smoothed first (SmoothQuant, α = 0.5: `x·W = (x/f)·(f·W)`), the
//! factors shared with the onnxruntime form ([`super::smoothing_factors`]).
//!
//! A Gelu's output (the FFN output layer's input) is different, and was
//! the reason this form once kept that layer f32 (a third of the model's
//! multiply-adds; OpenVINO ran the file 1.3× slower than onnxruntime's own
//! QDQ file). Measured on the real MiniLM's Gelu outputs: one or two
//! channels per layer reach 14–23 while the 99th percentile of the channel
//! ranges is 3–4.5 — channel outliers, not token outliers — and the values
//! never go below GELU's minimum, -0.17. So:
//! - **asymmetric u8**: the range is `[GELU_MIN, max_k r_k]`, its zero
//!   point where 0 falls (≈ 7), not 128: symmetric u8 wastes half of the
//!   255 levels on negatives that do not exist;
//! - **outlier channels split off** (LLM.int8()'s decomposition, static):
//!   the channels whose range exceeds [`OUTLIER_RANGE_FACTOR`] × the 99th
//!   percentile of the ranges have their weight rows zeroed in the int8
//!   product (so the activation's clipping there multiplies zeros) and go
//!   through a small f32 product `Gather(x, channels) · W[channels]` added
//!   to it: 1–2 of 1536 channels, so the f32 side costs ~0.1 % of the
//!   layer. SmoothQuant does not fit here: moving a 20× channel into the
//!   weights makes that row set every column's weight scale (MiniLM worst
//!   row 0.981 with α = 0.5, worse than none).
//!
//! MiniLM, worst golden row in OpenVINO with the FFN output quantized
//! (everything else as described; `scripts` measured both runtimes alike):
//!
//! | Gelu output form | worst row |
//! |---|---|
//! | kept f32 (the former default) | 0.99668 |
//! | symmetric u8, one scale | 0.978 |
//! | asymmetric u8 | 0.988 |
//! | asymmetric u8, SmoothQuant α = 0.5 / 0.7 | 0.981 / 0.982 |
//! | symmetric u8, outliers split | 0.9953 |
//! | **asymmetric u8, outliers split** (default) | **0.9959** |
//!
//! A weight read by several linears (ALBERT's twelve layers read one set)
//! has one s8 copy, scale and zero-point vector; each linear rewires its
//! own MatMul (found with the linear, not among the weight's readers) to a
//! DequantizeLinear of that copy. Its smoothing factors and outlier
//! channels are decided for all its readers together.
//!
//! Every op is standard ONNX: tract runs the result for the accuracy gate
//! (at about f32 speed: it does not fuse Q/DQ pairs into integer products).

use std::collections::HashMap;

use crate::ir::{value_name, BinaryOp, DType, Graph, IrError, Op, Tensor, Value};

use super::linear_sites::{
    ffn_hidden, linear_sites, read_by_many, site_groups, FfnHidden, LinearSite, QuantizedWeights,
};
use super::pattern::constant;
use super::quantize_int8::quantize_embeddings;
use super::quantize_int8_onnxruntime::GELU_MIN;
use super::{quantize_weight_s8, Pass, PassReport, WeightBits, WeightGranularity};

#[derive(Debug, Clone)]
pub struct QuantizeInt8Qdq {
    pub weights: WeightGranularity,
    /// Linear layers whose name contains one of these are kept in f32.
    pub skip: Vec<String>,
    /// Calibrated range (max |x|) of each input channel, keyed by the name
    /// of the value a linear layer reads.
    pub ranges: HashMap<String, Vec<f32>>,
    /// SmoothQuant factors, keyed like `ranges`.
    pub smooth: HashMap<String, Vec<f32>>,
    /// Quantize the FFN output layer (a Gelu's output) too, asymmetric with
    /// its outlier channels split off (see the module doc).
    pub gelu_inputs: bool,
    /// 8 or 7 (for u8 × s8 kernels that sum pairs in 16 bits).
    pub weight_bits: WeightBits,
    /// Store large embedding tables as int8 with a scale per row, as the
    /// dynamic forms do: kept f32, ALBERT-base's word embeddings were
    /// two thirds of its int8 file (23.6 MB, 0.50× the f32 file).
    pub embeddings: bool,
}

/// u8 activations centred on 128: symmetric ranges in 255 levels.
const ACTIVATION_ZERO_POINT: u8 = 128;

/// A Gelu-output channel whose calibrated range exceeds this many times
/// the 99th percentile of the channel ranges is computed in f32 beside the
/// int8 product. By construction at most 1 % of the channels qualify.
pub const OUTLIER_RANGE_FACTOR: f32 = 2.0;

/// The input channels of `range` that [`OUTLIER_RANGE_FACTOR`] splits off.
pub fn outlier_channels(range: &[f32]) -> Vec<usize> {
    let mut sorted = range.to_vec();
    sorted.sort_by(f32::total_cmp);
    // Nearest rank: the smallest value at or above 99 % of the channels.
    let Some(&p99) = sorted.get((sorted.len() * 99).div_ceil(100).saturating_sub(1)) else {
        return Vec::new();
    };
    let bar = OUTLIER_RANGE_FACTOR * p99;
    (0..range.len()).filter(|&k| range[k] > bar).collect()
}

impl Pass for QuantizeInt8Qdq {
    fn name(&self) -> &'static str {
        "quantize_int8_qdq"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut report = PassReport::default();
        let sites = self.calibrated_sites(g)?;
        let outliers = outliers_per_input(g, &sites, &self.ranges);
        // Before any rewrite: a rewritten product reads a DequantizeLinear,
        // no longer a constant weight, and the gated product after it would
        // not be recognized.
        let hidden: Vec<Option<FfnHidden>> = sites.iter().map(|t| ffn_hidden(g, t.x)).collect();
        let mut dequantized: HashMap<Value, Value> = HashMap::new();
        // One s8 copy (values, scales, zero points) per weight: ALBERT's
        // layers read one. Each product gets its own DequantizeLinear of
        // it, the one-consumer form onnxruntime's QDQ fusion selects.
        let mut weights: QuantizedWeights<QdqWeight> = QuantizedWeights::new();
        for (t, &hidden) in sites.iter().zip(&hidden) {
            let name = value_name(g, t.x);
            let range = &self.ranges[&name];
            let smooth = self
                .smooth
                .get(&name)
                .filter(|f| f.len() == range.len() && hidden != Some(FfnHidden::Gelu));
            let outliers = outliers.get(&t.x).map_or(&[][..], Vec::as_slice);
            let before = g.node_count();
            let xd = match dequantized.get(&t.x) {
                Some(&done) => done,
                None => {
                    let done = match hidden {
                        Some(FfnHidden::Gelu) => self.gelu_activation(g, t.x, range, outliers)?,
                        // Symmetric (a gated product takes either sign), its
                        // scale set by the channels left in the int8 product.
                        Some(FfnHidden::Gated) => {
                            let kept = without_outliers(range, outliers);
                            self.activation(g, t.x, &kept, smooth.map(Vec::as_slice))?
                        }
                        None => self.activation(g, t.x, range, smooth.map(Vec::as_slice))?,
                    };
                    dequantized.insert(t.x, done);
                    done
                }
            };
            // Outlier rows are zeroed in the int8 weight: the f32 side
            // product below carries them.
            let k = range.len();
            let mask: Option<Vec<f32>> = (!outliers.is_empty()).then(|| {
                let mut m = vec![1.0; k];
                outliers.iter().for_each(|&c| m[c] = 0.0);
                m
            });
            let rows = smooth.map(Vec::as_slice).or(mask.as_deref());
            let weight = weights.get_or_make(t.w, rows, || {
                let w = constant(g, t.w).expect("linear weight");
                let (wq, scales) = quantize_weight_s8(w, rows, self.weights, self.weight_bits);
                let base = g.node(t.w.node).name.clone();
                let n = scales.len();
                let wq = g.add_const(&g.fresh_name(&format!("{base}.int8")), wq)?;
                let ws = g.add_const(
                    &g.fresh_name(&format!("{base}.scale")),
                    Tensor::from_f32(vec![n], &scales),
                )?;
                let zero = Tensor::from_raw(DType::I8, vec![n], vec![0u8; n].into()).expect("sizes match");
                let wz = g.add_const(&g.fresh_name(&format!("{base}.zero_point")), zero)?;
                let outlier_rows = match outliers.is_empty() {
                    true => None,
                    false => {
                        let owner = match read_by_many(&sites, t.w) {
                            true => base,
                            false => g.node(t.matmul).name.clone(),
                        };
                        Some(outlier_rows(g, &owner, t.w, outliers)?)
                    }
                };
                Ok(QdqWeight {
                    values: wq,
                    scales: ws,
                    zero_points: wz,
                    outlier_rows,
                })
            })?;
            let base = g.node(t.w.node).name.clone();
            let wd = g.add(
                &g.fresh_name(&format!("{base}.dequantized")),
                Op::DequantizeLinear { axis: 1 },
                &[weight.values, weight.scales, weight.zero_points],
            )?;
            // This linear's own product reads the dequantized operands.
            g.set_input(t.matmul, 0, xd);
            g.set_input(t.matmul, 1, wd);
            if let Some(rows) = weight.outlier_rows {
                outlier_product(g, t, rows)?;
            }
            report.matches += 1;
            report.nodes_added += g.node_count() - before;
        }
        if self.embeddings {
            report.matches += quantize_embeddings(g, &mut report)?;
        }
        Ok(report)
    }
}

impl QuantizeInt8Qdq {
    /// The linears this pass rewrites: those whose input has calibrated
    /// ranges (as wide as the weight), Gelu inputs only with `gelu_inputs`.
    fn calibrated_sites(&self, g: &Graph) -> Result<Vec<LinearSite>, IrError> {
        let mut sites = Vec::new();
        for t in linear_sites(g, &self.skip) {
            if ffn_hidden(g, t.x).is_some() && !self.gelu_inputs {
                continue;
            }
            let name = value_name(g, t.x);
            let Some(range) = self.ranges.get(&name) else {
                continue;
            };
            let k = constant(g, t.w).expect("linear weight").dims()[0];
            if range.len() != k {
                return Err(IrError::Invalid {
                    node: name,
                    reason: format!(
                        "{} calibrated channel ranges for a weight of {k} rows",
                        range.len()
                    ),
                });
            }
            sites.push(t);
        }
        Ok(sites)
    }
}

/// The outlier channels ([`outlier_channels`]) split off at each Gelu
/// input: the union over its group of linears tied by shared inputs or
/// weights ([`site_groups`]), since they are zeroed in the weights' rows
/// and every reader of a weight must agree on them. In BERT a group is one
/// Gelu output and its FFN output layer (that input's own outliers); in
/// ALBERT, the twelve Gelu outputs reading one FFN output weight.
fn outliers_per_input(
    g: &Graph,
    sites: &[LinearSite],
    ranges: &HashMap<String, Vec<f32>>,
) -> HashMap<Value, Vec<usize>> {
    let hidden = |t: &&LinearSite| ffn_hidden(g, t.x).is_some();
    let mut outliers = HashMap::new();
    for group in site_groups(sites.iter().filter(hidden)) {
        let mut channels: Vec<usize> = group
            .inputs
            .iter()
            .flat_map(|&x| outlier_channels(&ranges[&value_name(g, x)]))
            .collect();
        channels.sort_unstable();
        channels.dedup();
        for &x in &group.inputs {
            outliers.insert(x, channels.clone());
        }
    }
    outliers
}

impl QuantizeInt8Qdq {
    /// A Gelu output's `DequantizeLinear(QuantizeLinear(x))`: asymmetric u8
    /// over `[GELU_MIN, max r_k]`, the outlier channels left out of the
    /// range (they saturate, and meet zeroed weight rows).
    fn gelu_activation(
        &self,
        g: &mut Graph,
        x: Value,
        range: &[f32],
        outliers: &[usize],
    ) -> Result<Value, IrError> {
        let max = range
            .iter()
            .enumerate()
            .filter(|(k, _)| !outliers.contains(k))
            .fold(0f32, |m, (_, &r)| m.max(r));
        let scale = (max - GELU_MIN) / 255.0;
        let zero_point = (-GELU_MIN / scale).round().clamp(0.0, 255.0) as u8;
        qdq_pair(g, x, scale, zero_point)
    }

    /// `DequantizeLinear(QuantizeLinear(x · 1/f))` with one calibrated scale.
    fn activation(
        &self,
        g: &mut Graph,
        x: Value,
        range: &[f32],
        smooth: Option<&[f32]>,
    ) -> Result<Value, IrError> {
        let base = crate::ir::value_name(g, x);
        let (input, max) = match smooth {
            Some(f) => {
                let inv: Vec<f32> = f.iter().map(|f| 1.0 / f).collect();
                let c = g.add_const(
                    &g.fresh_name(&format!("{base}.smooth_inv")),
                    Tensor::from_f32(vec![inv.len()], &inv),
                )?;
                let s = g.add(
                    &g.fresh_name(&format!("{base}.smoothed")),
                    Op::Binary(BinaryOp::Mul),
                    &[x, c],
                )?;
                let max = range.iter().zip(f).map(|(r, f)| r / f).fold(0f32, f32::max);
                (s, max)
            }
            None => (x, range.iter().copied().fold(0f32, f32::max)),
        };
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        qdq_pair(g, input, scale, ACTIVATION_ZERO_POINT)
    }
}

/// `range` with the outlier channels' entries zeroed: the range the int8
/// product still sees (the outliers go through the f32 side product).
fn without_outliers(range: &[f32], outliers: &[usize]) -> Vec<f32> {
    let mut kept = range.to_vec();
    outliers.iter().for_each(|&c| kept[c] = 0.0);
    kept
}

/// `DequantizeLinear(QuantizeLinear(x, scale, zero_point))`, u8, one scale.
fn qdq_pair(g: &mut Graph, x: Value, scale: f32, zero_point: u8) -> Result<Value, IrError> {
    let base = crate::ir::value_name(g, x);
    let s = g.add_const(
        &g.fresh_name(&format!("{base}.act_scale")),
        Tensor::scalar_f32(scale),
    )?;
    let zp = Tensor::from_raw(DType::U8, vec![], vec![zero_point].into()).expect("one byte");
    let z = g.add_const(&g.fresh_name(&format!("{base}.act_zero_point")), zp)?;
    let q = g.add(
        &g.fresh_name(&format!("{base}.quantized")),
        Op::QuantizeLinear { axis: 1 },
        &[x, s, z],
    )?;
    g.add(
        &g.fresh_name(&format!("{base}.dequantized")),
        Op::DequantizeLinear { axis: 1 },
        &[q, s, z],
    )
}

/// A weight's Q/DQ constants, made once however many linears read it.
#[derive(Clone, Copy)]
struct QdqWeight {
    values: Value,
    scales: Value,
    zero_points: Value,
    /// The outlier channels' indices and f32 weight rows, when split off.
    outlier_rows: Option<[Value; 2]>,
}

/// The constants of the outlier channels' f32 side product: the channel
/// indices and `W[channels]`, named after `owner`.
fn outlier_rows(g: &mut Graph, owner: &str, w: Value, channels: &[usize]) -> Result<[Value; 2], IrError> {
    let w = constant(g, w).expect("linear weight");
    let n = w.dims()[1];
    let all = w.to_f32_vec().expect("f32 weight");
    let rows: Vec<f32> = channels
        .iter()
        .flat_map(|&c| all[c * n..(c + 1) * n].iter().copied())
        .collect();
    let idx: Vec<i64> = channels.iter().map(|&c| c as i64).collect();
    let i = g.add_const(
        &g.fresh_name(&format!("{owner}.outlier_channels")),
        Tensor::from_i64(vec![idx.len()], &idx),
    )?;
    let wo = g.add_const(
        &g.fresh_name(&format!("{owner}.outlier_weight")),
        Tensor::from_f32(vec![channels.len(), n], &rows),
    )?;
    Ok([i, wo])
}

/// Adds `Gather(x, channels, last axis) · W[channels]` (f32, from
/// [`outlier_rows`]) to the linear's product, before its bias Add (if
/// any): the outlier channels' share.
fn outlier_product(g: &mut Graph, t: &LinearSite, [i, wo]: [Value; 2]) -> Result<(), IrError> {
    let x = t.x;
    let matmul = Value {
        node: t.matmul,
        slot: 0,
    };
    // The product's readers before the sum is added (which reads it too):
    // the bias Add, or a bias-free linear's own readers.
    let readers = g.consumers(matmul);
    let base = g.node(matmul.node).name.clone();
    let rank = g.info(x).shape.rank() as i64;
    let xo = g.add(
        &g.fresh_name(&format!("{base}.outlier_inputs")),
        Op::Gather { axis: rank - 1 },
        &[x, i],
    )?;
    let yo = g.add(
        &g.fresh_name(&format!("{base}.outlier_matmul")),
        Op::MatMul,
        &[xo, wo],
    )?;
    let sum = g.add(
        &g.fresh_name(&format!("{base}.with_outliers")),
        Op::Binary(BinaryOp::Add),
        &[matmul, yo],
    )?;
    for (reader, slot) in readers {
        g.set_input(reader, slot, sum);
    }
    g.redirect_outputs(matmul, sum);
    Ok(())
}
