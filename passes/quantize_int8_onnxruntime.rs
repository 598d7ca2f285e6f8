//! `quantize_int8_onnxruntime` (`--target onnxruntime --quantize dynamic`):
//! linear layers `Add(MatMul(x, W), b)` (bias-free `MatMul(x, W)` too:
//! then without the `+ b`) in the int8 form onnxruntime's CPU kernels run
//! fastest — u8 activations quantized at run time, s8 weights
//! with a scale per output column:
//!
//! ```text
//! q, s, zp = DynamicQuantizeLinear(x)          one per distinct x (Q, K, V share it)
//! y = Mul(Cast<f32>(MatMulInteger(q, Wq, zp)), Mul(s, ws)) + b
//! ```
//!
//! Why this exact form. onnxruntime's graph optimizer (level ≥ extended)
//! rewrites `Mul(Cast(MatMulInteger(A, B, a_zp[, b_zp])), Mul(a_scale, b_scale))`
//! followed by `Add(·, bias)` into one com.microsoft `MatMulIntegerToFloat`
//! (`matmul_integer_to_float.cc`), and a MatMulIntegerToFloat whose A comes
//! from a DynamicQuantizeLinear read by it alone into `DynamicQuantizeMatMul`
//! (`dynamic_quantize_matmul_fusion.cc`). Its conditions, all kept here:
//! the Cast, the MatMulInteger and the scale Mul each have one reader; the
//! scale Mul takes the activation scale first and the weight scale second;
//! the bias is the Add's *second* input, a constant 1-D tensor wider than 1;
//! B, its scale and zero point are constant initializers. Its u8 × s8
//! kernels are the fast ones (VNNI `vpdpbusd`, or `vpmaddubsw` on AVX2);
//! bertc's portable i8 × i8 form falls on the slow path there (3× slower
//! than fp32 on BERT-base).
//!
//! A weight read by several linears (ALBERT's layers) is stored once, its
//! smoothing factors shared by all its readers (see [`smoothing_factors`]).
//!
//! Weights are symmetric (no zero-point input: zero), so the only
//! correction term is the activation's zero point, which the kernel folds
//! into its packed-B column sums. Every op is standard ONNX, so tract runs
//! the result too and the accuracy gate checks it.
//!
//! Accuracy. DynamicQuantizeLinear has one scale per tensor, set by the
//! largest value of any token: on the real MiniLM that alone gives a worst
//! sentence-embedding row cosine of 0.983 against PyTorch in onnxruntime
//! (onnxruntime's own `quantize_dynamic`: 0.987). Two fixes, in standard ops,
//! each applied only where calibration (generated inputs) finds what it
//! fixes — a checkpoint without outliers gets onnxruntime's plain form:
//! - per token (`per_token`) on an FFN output layer's input (a Gelu's
//!   output) whose rows differ by more than [`OUTLIER_ROW_SPREAD`]: each
//!   row is divided by its maximum before DynamicQuantizeLinear and the
//!   product's rows are multiplied back after it (see [`per_token`]);
//! - smoothing (`smooth`, SmoothQuant, α = 0.5) on a layer norm's output
//!   (Q/K/V and FFN input) whose channels differ by more than
//!   [`OUTLIER_CHANNEL_SPREAD`]: per-channel factors `f_k` divide input
//!   channel k and multiply weight row k, `x·W = (x/f)·(f·W)`, so the few
//!   outlier channels of BERT's residual stream no longer set the tensor's
//!   scale.
//!
//! MiniLM, worst golden row in onnxruntime / the gate's worst row in tract:
//!
//! | per token on | smoothed | worst golden row | gate worst row |
//! |---|---|---|---|
//! | – | – | 0.983 | 0.922 |
//! | Gelu inputs | – | 0.990 | 0.976 |
//! | Gelu + layer-norm inputs | – | 0.993 | 0.988 |
//! | Gelu + layer-norm inputs | layer-norm inputs | 0.9978 | 0.9930 |
//! | Gelu inputs | layer-norm inputs | 0.9976 | 0.9930 |
//! | **Gelu inputs of layers 0–3** (default: row spread > 4) | **layer-norm inputs** | **0.9978** | sentence_embedding 0.9962 (all Gelu inputs: 0.9966) |
//! | Gelu inputs | every input | 0.9957 | 0.988 |
//!
//! The default is the cheapest row at the top's accuracy: per-token
//! scaling costs a ReduceMax, a Mul before and a Mul after per input;
//! smoothing one Mul. (α = 0.4 / 0.6 with every input per token: 0.9959 /
//! 0.9962, and α = 0.6 gives an unstable 0.60 worst row on the gate's inputs.)
//! Together they cost 4–8 % of a BERT-base run in onnxruntime; on a
//! random-init BERT-base, whose tokens and channels are even, neither is
//! applied.
//!
//! [`WeightBits::Seven`] gives 7-bit weights (`--weight-bits 7`): on x86 CPUs
//! without VNNI, onnxruntime's u8 × s8 kernel sums pairs of products in 16
//! bits (`vpmaddubsw`), which saturates when two large products meet
//! (onnxruntime issue #6004); with 7 bits every pair stays within i16
//! (255 · 126 = 32130). [`weight_bits_for_cpu`] says which CPUs those are.
//! The default stays 8 bits — the file must not depend on the machine that
//! compiles it, and the lost bit costs accuracy where nothing saturates —
//! and `compile` prints a note naming the flag. MiniLM's worst golden row
//! with this form: 8 bits 0.9978 on a VNNI CPU, 0.9923 with AVX2's
//! saturation emulated exactly (every MatMulInteger rewritten as sums of
//! clipped pair sums, run in onnxruntime), 7 bits 0.9952 on both
//! (onnxruntime's own `quantize_dynamic`: 0.9856, saturated 0.9785).

use std::collections::{BTreeSet, HashMap};

use crate::ir::{value_name, BinaryOp, DType, Graph, IrError, Op, Tensor, Value};
use crate::numeric::{le_f32, quantize_i8};
use rayon::prelude::*;

use super::linear_sites::{
    ffn_hidden, linear_sites, merged_ranges, read_by_many, row_abs_max, site_groups, smoothing, FfnHidden,
    QuantizedWeights,
};
use super::pattern::constant;
use super::quantize_int8::quantize_embeddings;
use super::{Pass, PassReport, WeightGranularity};

/// How many bits of the s8 range the weights use: all 8 (±127), or 7 (±63)
/// for onnxruntime's u8 × s8 kernels that add pairs of products in 16 bits
/// (see [`weight_bits_for_cpu`]). Only these two exist: a weight range is
/// one of them by construction, not a number to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightBits {
    #[default]
    Eight,
    Seven,
}

impl WeightBits {
    /// The largest weight magnitude: 127 or 63.
    pub fn max(self) -> f32 {
        match self {
            WeightBits::Eight => 127.0,
            WeightBits::Seven => 63.0,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            WeightBits::Eight => 8,
            WeightBits::Seven => 7,
        }
    }
}

/// `--weight-bits`: 8 or 7; any other count is refused, saying so.
impl TryFrom<u8> for WeightBits {
    type Error = String;

    fn try_from(bits: u8) -> Result<WeightBits, String> {
        match bits {
            8 => Ok(WeightBits::Eight),
            7 => Ok(WeightBits::Seven),
            other => Err(format!("{other} is not in 7..=8")),
        }
    }
}

impl std::fmt::Display for WeightBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.bits())
    }
}

/// SmoothQuant's migration strength for this form (see the module doc).
pub const SMOOTHING_ALPHA_ONNXRUNTIME: f32 = 0.5;

/// The weight range for onnxruntime's u8 × s8 kernels on a CPU: full 8 bits
/// with a dot-product instruction that accumulates in 32 bits (AVX-512
/// VNNI, AVX-VNNI, AMX; ARM's sdot/udot), 7 bits where x86 falls back to
/// `vpmaddubsw`'s saturating 16-bit pair sums.
pub fn weight_bits_for_cpu(x86: bool, vnni: bool) -> WeightBits {
    match x86 && !vnni {
        true => WeightBits::Seven,
        false => WeightBits::Eight,
    }
}

/// [`weight_bits_for_cpu`] of the CPU bertc runs on.
pub fn weight_bits_for_host() -> WeightBits {
    #[cfg(target_arch = "x86_64")]
    {
        // Every AMX CPU also has AVX-512 VNNI.
        let vnni = std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni");
        weight_bits_for_cpu(true, vnni)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        weight_bits_for_cpu(false, false)
    }
}

#[derive(Debug, Clone)]
pub struct QuantizeInt8Onnxruntime {
    pub weights: WeightGranularity,
    /// Linear layers whose name contains one of these are kept in f32.
    pub skip: Vec<String>,
    /// Store large embedding tables as int8 too (weight-only).
    pub embeddings: bool,
    pub weight_bits: WeightBits,
    /// Smoothing factors per input channel, keyed by the name of the value
    /// a linear reads (see the module doc); inputs not listed are not smoothed.
    pub smooth: HashMap<String, Vec<f32>>,
    /// Which inputs get one scale per token instead of one per tensor.
    pub per_token: PerToken,
}

/// Where activations are quantized per token (row) rather than per tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerToken {
    /// Never: DynamicQuantizeLinear everywhere (onnxruntime's own form).
    None,
    /// Inputs made by a Gelu: the FFN output layer's.
    Gelu,
    /// Inputs made by a Gelu or a LayerNormalization (Q/K/V, FFN input).
    GeluAndLayerNorm,
    /// Every linear input.
    All,
    /// The linear inputs with these names (what [`per_token_inputs`]
    /// chooses from calibration: the default).
    Inputs(BTreeSet<String>),
}

impl QuantizeInt8Onnxruntime {
    pub fn new() -> QuantizeInt8Onnxruntime {
        QuantizeInt8Onnxruntime {
            weights: WeightGranularity::PerChannel,
            skip: Vec::new(),
            embeddings: true,
            weight_bits: WeightBits::Eight,
            smooth: HashMap::new(),
            per_token: PerToken::Gelu,
        }
    }
}

impl Default for QuantizeInt8Onnxruntime {
    fn default() -> Self {
        Self::new()
    }
}

/// Symmetric quantization of a 2-D [K, N] weight to [-max, max] (s8
/// storage, max from `bits`), rows first multiplied by `rows` when given;
/// returns the values and the scale of each column.
pub fn quantize_weight_s8(
    w: &Tensor,
    rows: Option<&[f32]>,
    granularity: WeightGranularity,
    bits: WeightBits,
) -> (Tensor, Vec<f32>) {
    let qmax = bits.max();
    let (k, n) = (w.dims()[0], w.dims()[1]);
    // Read in place: a [K, N] f32 copy of BERT-base's 85 M weights is
    // 340 MB of fresh memory, whose page faults cost more than the
    // arithmetic.
    let raw = w.f32_le_bytes().expect("a float weight");
    let row_factor = |i: usize| rows.map_or(1.0, |r| r[i]);
    let mut max = vec![0f32; n];
    if n > 0 {
        for (i, row) in raw.chunks_exact(4 * n).enumerate() {
            let f = row_factor(i);
            for (m, x) in max.iter_mut().zip(row.chunks_exact(4)) {
                *m = m.max((le_f32(x) * f).abs());
            }
        }
    }
    if granularity == WeightGranularity::PerTensor {
        let all = max.iter().copied().fold(0f32, f32::max);
        max.iter_mut().for_each(|m| *m = all);
    }
    let scales: Vec<f32> = max
        .iter()
        .map(|&m| if m > 0.0 { m / qmax } else { 1.0 })
        .collect();
    let mut q = vec![0u8; k * n];
    // An all-zero weight quantizes to zeros, which `q` already holds: not
    // writing them leaves its fresh pages untouched, so `inspect` can run
    // this pass over placeholder weights without materialising them.
    if max.iter().any(|&m| m > 0.0) {
        // Rows in parallel: each element is a pure function of its input.
        q.par_chunks_exact_mut(n)
            .zip(raw.par_chunks_exact(4 * n))
            .enumerate()
            .for_each(|(i, (qrow, row))| {
                let f = row_factor(i);
                for ((qv, x), s) in qrow.iter_mut().zip(row.chunks_exact(4)).zip(&scales) {
                    *qv = quantize_i8(le_f32(x) * f, *s, qmax);
                }
            });
    }
    let t = Tensor::from_raw(DType::I8, vec![k, n], q.into()).expect("sizes match");
    (t, scales)
}

/// The run-time quantization of one linear input.
#[derive(Clone, Copy)]
struct Quantized {
    q: Value,
    scale: Value,
    zero_point: Value,
    /// Per token: the [.., 1] scale each output row is multiplied by.
    row_scale: Option<Value>,
}

impl Pass for QuantizeInt8Onnxruntime {
    fn name(&self) -> &'static str {
        "quantize_int8_onnxruntime"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut report = PassReport::default();
        let mut quantized: HashMap<Value, Quantized> = HashMap::new();
        // One s8 copy and scale vector per weight (ALBERT's layers share theirs).
        let mut weights: QuantizedWeights<(Value, Value)> = QuantizedWeights::new();
        let sites = linear_sites(g, &self.skip);
        let mut rewritten: HashMap<Value, Value> = HashMap::new();
        for t in &sites {
            let before = g.node_count();
            let base = g.node(t.out.node).name.clone();
            let x_name = value_name(g, t.x);
            let factors = self.smooth.get(&x_name);
            if let Some(f) = factors {
                let k = g.info(t.x).shape.dims().last().and_then(|d| d.fixed());
                if k != Some(f.len() as i64) {
                    return Err(IrError::Invalid {
                        node: x_name,
                        reason: format!(
                            "{} smoothing factors for an input of shape {}",
                            f.len(),
                            g.info(t.x).shape
                        ),
                    });
                }
            }
            let qx = match quantized.get(&t.x) {
                Some(&done) => done,
                None => {
                    // A linear reading another one (layer 0 reads ALBERT's
                    // and ELECTRA's embedding projection) reads its rewrite.
                    let x = rewritten.get(&t.x).copied().unwrap_or(t.x);
                    let x = match factors {
                        Some(f) => smoothed(g, x, f)?,
                        None => x,
                    };
                    let gelu = matches!(g.node(t.x.node).op, Op::Gelu { .. });
                    let want = match (&self.per_token, &g.node(t.x.node).op) {
                        (PerToken::None, _) => false,
                        (PerToken::Inputs(names), _) => names.contains(&x_name),
                        (PerToken::All, _) | (_, Op::Gelu { .. }) => true,
                        (PerToken::GeluAndLayerNorm, Op::LayerNorm { .. }) => true,
                        _ => false,
                    };
                    let done = match want {
                        true => per_token(g, x, gelu)?,
                        _ => {
                            let n = g.fresh_name(&format!("{x_name}.quantize_u8"));
                            let id = g.add_node(&n, Op::DynamicQuantizeLinear, &[Some(x)])?;
                            let slot = |slot| Value { node: id, slot };
                            Quantized {
                                q: slot(0),
                                scale: slot(1),
                                zero_point: slot(2),
                                row_scale: None,
                            }
                        }
                    };
                    quantized.insert(t.x, done);
                    done
                }
            };
            let factors = factors.map(Vec::as_slice);
            let (wq, ws) = weights.get_or_make(t.w, factors, || {
                let w = constant(g, t.w).expect("linear weight");
                let (wq, ws) = quantize_weight_s8(w, factors, self.weights, self.weight_bits);
                let owner = match read_by_many(&sites, t.w) {
                    true => g.node(t.w.node).name.clone(),
                    false => base.clone(),
                };
                let n = g.fresh_name(&format!("{owner}.weight_s8"));
                let wq = g.add_const(&n, wq)?;
                let n = g.fresh_name(&format!("{owner}.weight_scale"));
                Ok((wq, g.add_const(&n, Tensor::from_f32(vec![ws.len()], &ws))?))
            })?;
            let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
            let n = name(g, "scale");
            let scale = g.add(&n, Op::Binary(BinaryOp::Mul), &[qx.scale, ws])?;
            let n = name(g, "matmul_int8");
            let acc = g.add_node(
                &n,
                Op::MatMulInteger,
                &[Some(qx.q), Some(wq), Some(qx.zero_point)],
            )?;
            let n = name(g, "to_f32");
            let accf = g.add(&n, Op::Cast { to: DType::F32 }, &[Value { node: acc, slot: 0 }])?;
            let n = name(g, "dequantize");
            let mut y = g.add(&n, Op::Binary(BinaryOp::Mul), &[accf, scale])?;
            if let Some(rs) = qx.row_scale {
                // After the fused product: onnxruntime's fusion stops at this
                // Mul, so the bias Add below stays outside it (as it must).
                let n = name(g, "row_scale");
                y = g.add(&n, Op::Binary(BinaryOp::Mul), &[y, rs])?;
            }
            if let Some(b) = t.b {
                let n = name(g, "bias_int8");
                y = g.add(&n, Op::Binary(BinaryOp::Add), &[y, b])?;
            }
            g.replace_uses(t.out, y);
            rewritten.insert(t.out, y);
            report.matches += 1;
            report.nodes_added += g.node_count() - before;
        }
        if self.embeddings {
            report.matches += quantize_embeddings(g, &mut report)?;
        }
        Ok(report)
    }
}

/// The smallest value exact and tanh GELU take (at x ≈ -0.75): a Gelu
/// output's largest |x| is its maximum unless that is below this.
pub(super) const GELU_MIN: f32 = -0.170;

/// u8 quantization of `x` with, in effect, one scale per token (row of the
/// last axis): each row is divided by its largest |x| first, then
/// DynamicQuantizeLinear quantizes the normalized tensor (whose range is
/// [-1, 1] on every row). The row scale multiplies the product's output
/// afterwards. Why not a [.., 1] scale straight into MatMulIntegerToFloat:
/// onnxruntime 1.32 accepts that shape after its fusion but computes wrong
/// results with it (MiniLM golden row cosine 0.56 at ORT_ENABLE_EXTENDED,
/// 0.992 with optimizations off); a scalar A scale is its tested path.
fn per_token(g: &mut Graph, x: Value, gelu: bool) -> Result<Quantized, IrError> {
    let base = crate::ir::value_name(g, x);
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
    let rank = g.info(x).shape.rank() as i64;
    let reduce = Op::ReduceMax {
        axes: vec![rank - 1],
        keepdims: true,
    };
    let (max, floor) = match gelu {
        // A Gelu's output is ≥ GELU_MIN: its row maximum bounds |x| (with
        // the floor), and the Abs pass over the widest tensor is saved.
        true => {
            let n = name(g, "row_max");
            (g.add(&n, reduce, &[x])?, -GELU_MIN)
        }
        false => {
            let n = name(g, "abs");
            let abs = g.add(&n, Op::Unary(crate::ir::UnaryOp::Abs), &[x])?;
            let n = name(g, "row_absmax");
            // An all-zero row would divide by 0; any positive scale maps it to 0.
            (g.add(&n, reduce, &[abs])?, f32::MIN_POSITIVE)
        }
    };
    let n = name(g, "min_row_scale");
    let c = g.add_const(&n, Tensor::scalar_f32(floor))?;
    let n = name(g, "row_scale");
    let row_scale = g.add(&n, Op::Binary(BinaryOp::Max), &[max, c])?;
    let n = name(g, "row_inv_scale");
    let inv = g.add(&n, Op::Unary(crate::ir::UnaryOp::Reciprocal), &[row_scale])?;
    let n = name(g, "row_normalized");
    let normalized = g.add(&n, Op::Binary(BinaryOp::Mul), &[x, inv])?;
    let n = name(g, "quantize_u8");
    let id = g.add_node(&n, Op::DynamicQuantizeLinear, &[Some(normalized)])?;
    let slot = |slot| Value { node: id, slot };
    Ok(Quantized {
        q: slot(0),
        scale: slot(1),
        zero_point: slot(2),
        row_scale: Some(row_scale),
    })
}

/// `x / f` per channel, as `Mul(x, 1/f)`. Not folded into a copy of the
/// layer norm that makes x: x also feeds the residual, so the copy would
/// be a second LayerNormalization reading the residual sum, which stops
/// onnxruntime's SkipLayerNormalization fusion (BERT-base: 48 layer norms
/// and 23 bias Adds left unfused) — one Mul costs less.
fn smoothed(g: &mut Graph, x: Value, f: &[f32]) -> Result<Value, IrError> {
    let base = crate::ir::value_name(g, x);
    let inv: Vec<f32> = f.iter().map(|f| 1.0 / f).collect();
    let n = g.fresh_name(&format!("{base}.smooth_inv"));
    let inv = g.add_const(&n, Tensor::from_f32(vec![inv.len()], &inv))?;
    let n = g.fresh_name(&format!("{base}.smoothed"));
    g.add(&n, Op::Binary(BinaryOp::Mul), &[x, inv])
}

/// An input's largest calibrated channel range over its median one above
/// which it is smoothed (see [`smoothing_factors`]).
pub const OUTLIER_CHANNEL_SPREAD: f32 = 3.0;

/// An input's row spread ([`crate::quantize::Calibration::row_spread`])
/// above which it is quantized per token (see [`per_token_inputs`]): one
/// scale per tensor then costs the median token more than 2 of its 8 bits.
pub const OUTLIER_ROW_SPREAD: f32 = 4.0;

/// The Gelu-made linear inputs (the FFN output layers') to quantize per
/// token: those whose calibrated row spread is above
/// [`OUTLIER_ROW_SPREAD`]. Trained checkpoints put a few tokens' FFN
/// activations far above the rest ([CLS] on MiniLM, bertc's calibration:
/// 6.4–11.8× the median row in layers 0–3, 3.1× in layer 4, 2.5× in layer
/// 5). Where the rows are even (a random-init BERT-base: 1.3–1.5× in
/// every layer) per-token scaling buys little and costs its ReduceMax and
/// two Muls, so it is left out. On MiniLM, leaving out layers 4 and 5
/// moves the worst golden row in onnxruntime 0.9980 → 0.9978 and the
/// gate's worst sentence-embedding row 0.9966 → 0.9962.
pub fn per_token_inputs(g: &Graph, skip: &[String], row_spread: &HashMap<String, f32>) -> BTreeSet<String> {
    linear_sites(g, skip)
        .into_iter()
        .filter(|t| matches!(g.node(t.x.node).op, Op::Gelu { .. }))
        .map(|t| value_name(g, t.x))
        .filter(|name| row_spread.get(name).is_some_and(|&s| s > OUTLIER_ROW_SPREAD))
        .collect()
}

/// SmoothQuant factors for the linear inputs made by a LayerNormalization
/// (with a calibrated range) whose largest channel range is more than
/// [`OUTLIER_CHANNEL_SPREAD`] times the median: those carry the residual
/// stream's outlier channels (MiniLM: 3.6–20× in every layer norm). A
/// layer norm with even channels (random init: 1.6×) is left alone — the
/// Mul would cost time and move nothing. Gelu inputs are per token instead — smoothing them too lowers
/// MiniLM's worst golden row from 0.9976 to 0.9957 — and attention's
/// context gains nothing from it. A gated linear unit's product (the
/// SwiGLU FFN's hidden activation, NomicBERT's) is always smoothed: its
/// channels spread like the residual stream's, and the static Q/DQ form
/// has no per-token scale for it (nomic-mlm's worst row in onnxruntime,
/// static: 0.9898 without, 0.9916 with).
///
/// For each:
/// `f_k = r_k^α / w_k^(1-α)`, where `r_k` is the range of input channel k
/// (`ranges`, keyed by the input's name as [`crate::quantize::calibrate`]
/// gives them) and `w_k` the largest |W[k, n]| over every linear reading
/// that input. α = 0.5 moves half of each channel's range into the weights.
///
/// Shared weights: the factors are folded into the weights' rows, so all
/// inputs of a weight must share them for the weight to be stored once.
/// They are computed per group of linears tied by shared inputs or weights
/// ([`site_groups`]), `r_k` the largest over the group's inputs and `w_k`
/// over its weights, and a group is smoothed, every input of it, when one
/// of its inputs qualifies. In BERT a group is one input and the linears
/// reading it (the rule above); in ALBERT, whose twelve layers read one
/// set of weights, layer 0's Q/K/V input (the embedding projection, not a
/// layer norm) is smoothed with the eleven layer norms after it.
pub fn smoothing_factors(
    g: &Graph,
    skip: &[String],
    ranges: &HashMap<String, Vec<f32>>,
    alpha: f32,
) -> HashMap<String, Vec<f32>> {
    let sites = linear_sites(g, skip);
    let mut factors = HashMap::new();
    for group in site_groups(&sites) {
        let names: Vec<String> = group.inputs.iter().map(|&x| value_name(g, x)).collect();
        let outliers = group.inputs.iter().zip(&names).any(|(&x, name)| {
            ffn_hidden(g, x) == Some(FfnHidden::Gated)
                || matches!(g.node(x.node).op, Op::LayerNorm { .. })
                    && ranges
                        .get(name)
                        .is_some_and(|r| channel_spread(r) > OUTLIER_CHANNEL_SPREAD)
        });
        if !outliers {
            continue;
        }
        let row_max = row_abs_max(g, &group.weights);
        let own: Option<Vec<&[f32]>> = names
            .iter()
            .map(|name| {
                ranges
                    .get(name)
                    .filter(|r| r.len() == row_max.len())
                    .map(Vec::as_slice)
            })
            .collect();
        let Some(own) = own else { continue };
        let f = smoothing(&merged_ranges(&own), &row_max, |r, w| {
            r.powf(alpha) / w.powf(1.0 - alpha)
        });
        for name in names {
            factors.insert(name, f.clone());
        }
    }
    factors
}

/// The largest of `ranges` over their median (1 when all are zero).
fn channel_spread(ranges: &[f32]) -> f32 {
    let mut sorted = ranges.to_vec();
    sorted.sort_by(f32::total_cmp);
    let (median, max) = match sorted.as_slice() {
        [] => return 1.0,
        all => (all[all.len() / 2], all[all.len() - 1]),
    };
    match median > 0.0 {
        true => max / median,
        false if max > 0.0 => f32::INFINITY,
        false => 1.0,
    }
}

/// The names of the linear layers the int8 passes would quantize with no
/// skip list (their bias Adds' names, which `skip` patterns match).
pub fn quantizable_linears(g: &Graph) -> Vec<String> {
    linear_sites(g, &[])
        .into_iter()
        .map(|t| g.node(t.out.node).name.clone())
        .collect()
}

/// The names of every linear layer `skip` patterns may name: those of
/// [`quantizable_linears`] and the heads' last projections, which stay f32
/// anyway (naming the classifier is a choice, not a typo).
pub fn linear_layer_names(g: &Graph) -> Vec<String> {
    super::linear_sites::every_linear_site(g)
        .into_iter()
        .map(|t| g.node(t.out.node).name.clone())
        .collect()
}
