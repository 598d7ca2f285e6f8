//! `quantize_int8`: linear layers `Add(MatMul(x, W), b)` (or bias-free
//! `MatMul(x, W)`: then without the `+ b` below) run as integer
//! matrix products with int8 weights, and large embedding tables are stored
//! as int8 (weight-only).
//!
//! Weights: int8, symmetric (zero point 0), one scale per output column
//! (`ws[n] = max_k |W[k, n]| / 127`) or one per tensor.
//!
//! Activations, symmetric int8 with zero point 0, so that no zero-point
//! correction sums are needed at run time. `round8(v)` below is
//! `Cast<i8>((v + R) - R)` with `R = 1.5 · 2^23`: for |v| < 2^22 the f32
//! sum rounds v half to even, exactly as ONNX Round does (see
//! [`ROUNDING_BIAS`]).
//! - dynamic, one scale per token row: `a = max(ReduceMax(x), -ReduceMin(x))`
//!   over the last axis (floored at 1e-30; for a Gelu output, which is
//!   never below -0.171, `max(ReduceMax(x), 0.171)`),
//!   `q = round8(x · exp(ln 127 - ln a))` (= `x · 127 / a`, see [`LN_127`]),
//!   `y = Cast<f32>(MatMulInteger(q, Wq)) · a · (ws / 127) + b`;
//! - static, from calibrated per-channel ranges `r_k`: half of each
//!   channel's range is moved into the weight rows (SmoothQuant, α = 0.5:
//!   `f_k = sqrt(r_k / max_n |W[k, n]|)`, `W' = diag(f) W`), then one
//!   scale `s = max_k(r_k / f_k) / 127` for the tensor:
//!   `q = round8(Clip(x · 1/(s·f), -127, 127))`,
//!   `y = Cast<f32>(MatMulInteger(q, W'q)) · (s · ws') + b`. Inputs made by
//!   a Gelu (the FFN output layer) keep per-token dynamic scales: on
//!   MiniLM one calibrated scale there drops the min row cosine from 0.994
//!   to 0.911 (plain per-tensor scales on every input, no smoothing: 0.964;
//!   with 99.99th-percentile clipping instead of the max: 0.908). So do
//!   attention contexts (see `attention_context`: faster in tract, and
//!   MiniLM's min row 0.9945 → 0.9960); static scales are the layer norms'.
//!
//! Full-size work per quantized activation: two reductions that only read
//! x (one for a Gelu output), one fused multiply-add-sub pass (tract: `OptBinChain(Mul+Add+Sub)`,
//! on every thread; static adds Max+Min to the same chain) and the Cast;
//! per product: the Cast to f32 and one fused `Mul+Mul(+Add)` pass. Every
//! constant factor is folded into a constant (1/127 into the weight
//! scales, 1/(s·f) into one vector, s into the weight scales).
//!
//! Linears reading the same `x` (Q, K, V) share one quantization of it.
//! A weight read by several linears (ALBERT's twelve layers read one set)
//! is quantized and stored once, with its column scales; the static
//! smoothing factors folded into its rows are computed for all its readers
//! together (see `linear_sites`).
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
//! tract 0.23.9 per op (`examples/profile.rs --runs 8`: each node's best
//! run, summed), BERT-base dynamic, B=1, S=128, 2 threads, AMD EPYC Zen 5
//! (AVX-512 VNNI, kernel `avx512vnni_mmm_i32_8x8`), both files profiled back
//! to back on a machine shared with other builds (load 9-10 on 2 cores),
//! before the two changes below:
//!
//! | op | Round + Abs form | Div-scale form |
//! |---|---|---|
//! | int8 products (OptMatMul i8) | 77.6 ms | 78.4 ms |
//! | Cast f32→i8 (49) | 13.8 ms | 13.0 ms |
//! | Cast i32→f32 (73) | 2.3 ms | 2.4 ms |
//! | RoundHalfToEven (49) | 7.6 ms | – |
//! | Abs (49) | 3.4 ms | – |
//! | ReduceMax / ReduceMin, scale ops on [.., 1] | 1.6 ms | 3.0 ms |
//! | quantize multiply (+ Add + Sub here) | 2.0 ms | 5.4 ms |
//! | dequantize chains Mul+Mul(+Add) | 6.6 ms | 7.1 ms |
//! | int8 activation packing | 3.5 ms | 3.3 ms |
//! | **around the products** | **40.6 ms** | **34.3 ms** |
//! | whole plan | 143.6 ms | 138.7 ms |
//!
//! (A first pair, profiled minutes apart under a changing load, read
//! 173 → 110 ms for the plan: the load moves every number; the per-op
//! shares above come from one pair.)
//!
//! The same work after the log-domain row scale ([`LN_127`]) and the
//! single reduction of Gelu outputs ([`GELU_MIN_BOUND`]), the two files
//! profiled alternately twice (`--runs 20`, load 2-3 on the 2 cores), ms
//! per run:
//!
//! | op | Div scale, 2 reductions | this form |
//! |---|---|---|
//! | Cast f32→i8 (48) | 12.9 | 4.4 |
//! | Cast i32→f32 (72) | 2.0-2.6 | 2.0 |
//! | quantize chain Mul+Add+Sub (49) | 3.8-4.2 | 4.1-4.2 |
//! | dequantize chains Mul+Mul(+Add) (72) | 5.5-6.4 | 5.7-5.9 |
//! | Reduce<Max> + Reduce<Min> (98 → 86) | 2.5-2.6 | 2.1 |
//! | ops on the [.., 1] row scales | 0.2-0.3 | 0.2-0.3 |
//! | int8 activation packing (48) | 3.3-3.5 | 3.3-3.4 |
//! | **around the products** | **30.2-32.4** | **22.0-22.1** |
//!
//! What is left is tract 0.23.9's own floor, whatever the graph:
//! - the f32→i8 Cast, `Tensor::natural_cast::<f32, i8>` (tract-data
//!   `tensor.rs`, `*d = s.as_()`), is a scalar single-threaded loop: Rust's
//!   saturating float→int `as` does not vectorize for the default x86-64
//!   target (`cvttss2si` + `maxss`/`minss` + byte shifts, 4 elements per
//!   iteration; so are f32→i32, f32→u8 and f32→i16), ~0.5 ns per element,
//!   8.3 M elements per run. Every other f32→integer path is scalar too:
//!   `QuantizeLinearI8`/`U8` (tract-core `ops/quant.rs`, branchy
//!   `round_ties_to_even` per element, 0.17 ms on [1,128,768] against the
//!   Cast's 0.05), `DynamicQuantizeLinearU8` (tract-onnx `ops/quant.rs`, a
//!   scalar fold for the range and a divide per element), and f32→i32→i8
//!   (the f32→i32 step is the slower scalar loop: 0.19 ms on [1,128,768]).
//!   tract-linalg has no element-wise kernel that ends in an integer type
//!   (its `Lut` is u8→u8).
//! - the int8 activation packing, `PackedI8K4::pack_view` (tract-linalg
//!   `frame/pack.rs`): a memset of the panel, then a strided byte-by-byte
//!   gather, single-threaded, ~0.4 ns per byte.
//! - no x86 int8 kernel stores f32 (`stores()` is i32 and i8), so each
//!   product keeps its i32→f32 Cast and its scale chain as two passes.
//!
//! Other forms checked against tract 0.23.9's sources (the newest
//! tract-onnx on crates.io, 2026-11-30), none of which cuts that work:
//! - MatMulInteger and QLinearMatMul both become a quantized EinSum that
//!   codegen lowers to a plain i8 × i8 → i32 product plus zero-point sums
//!   and a requantization; only a fixed-point `QScale`, per-row/column
//!   i32 binaries and a Cast to a type the kernel stores fuse into it, and
//!   the x86 int8 kernels store i8 and i32 only: no f32 epilogue.
//! - DequantizeLinear of a constant int8 weight is folded back to an f32
//!   weight (an f32 product); QuantizeLinear is `QuantizeLinearI8` (per
//!   tensor, above) or, per axis, Div/Round/Add/Max/Min/Cast.
//! - Merging Q, K and V into one product (`merge_qkv`) changes nothing:
//!   tract splits the product back through the Slices (97 OptMatMul and
//!   124 Casts in the plan either way).
//! - Cast f32→i32→i8 costs more than f32→i8 (above).
//!
//! How far any graph can go (BERT-base, same machine, `examples/profile.rs
//! --runs 20`, sums of per-node minima). fp32 -O2: 160.9 ms, of which the
//! f32 products are 141.6 ms (77 GMAC/s); this form: 69.7-72.7 ms, of which
//! the int8 products are 38.0-38.8 ms (~285 GMAC/s with
//! `avx512vnni_mmm_i32_8x8`) and the f32 work both models share
//! (attention products and their packing, Softmax, Gelu, layer norms)
//! ~16 ms. A file that keeps only what tract must do around the products
//! (x → Cast i8 → product → Cast f32 → + bias: numerically meaningless;
//! `scripts/tract_int8_floor.py` makes it from this pass's output) ran
//! 70.0 ms: without a runtime Exp before them its Casts
//! ran at the slow, dirty-state rate (12.8 ms for the 124). With clean
//! Casts that floor is ~63 ms, 2.55× fp32; a usable form adds at least one
//! scaling pass on each side (~5 ms), so ~2.35× is this CPU's ceiling in
//! tract 0.23.9, against 2.14-2.2× here. Per-tensor instead of per-token
//! ranges (reductions over all axes) saved 1.4-2.1 ms but dropped MiniLM's
//! worst row from 0.9918 to 0.959 (0.982 keeping per-token rows on the
//! four outlier Gelu inputs): not taken.
//!
//! The in-plan Cast used to take 0.155 ms per [1,128,768] (1.6 ns per
//! element) against 0.05 ms in a small model: tract's Reduce<Max>/<Min>
//! kernels return without `vzeroupper`, and the scalar SSE Cast after them
//! ran 3× slower. The row scale is now `exp(ln 127 - ln max|x|)`, whose Exp
//! and Ln kernels clear that state (see [`LN_127`]): the 48 Casts cost
//! ~4.4 ms instead of ~13.
//!
//! On AVX2 without VNNI (the project's earlier machines), tract's only int8
//! kernel (`avx2_mmm_i32_8x8`) widens bytes and multiplies with `vpmulld`:
//! int8 measured 3.4-3.6× slower than f32 there, whatever the graph
//! (`bertc::quantize::kernel` names the kernel and warns).

use std::collections::HashMap;

use crate::ir::{value_name, BinaryOp, ContribOp, DType, Graph, IrError, Op, Tensor, UnaryOp, Value};
use crate::numeric::{le_f32, quantize_i8};
use rayon::prelude::*;

use super::linear_sites::{
    ffn_hidden, linear_sites, merged_ranges, read_by_many, row_abs_max, site_groups, smoothing, LinearSite,
    QuantizedWeights,
};
use super::pattern::constant;
use super::{quantize_weight_s8, Pass, PassReport, WeightBits};

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
    let (values, scales) = quantize_weight_s8(w, None, granularity, WeightBits::Eight);
    QuantizedWeight { values, scales }
}

/// The bytes of constants the graph would hold after this pass, computed
/// from the pass's own decisions without rewriting anything (so `inspect`
/// can report it without materialising weights): each quantized linear's
/// weight at 1 byte plus one f32 scale per output column (the pass stores a
/// column's worth of scales per tensor too), each embedding table it would
/// store as int8 at 1 byte plus one f32 scale per row, every other constant
/// as it is; with static scales, each calibrated input's f32 inverse scale
/// per channel too. A weight read by many linears (ALBERT's) counts once, as
/// the pass stores it. The few small constants the rewrite adds (its
/// rounding and clipping scalars) are not counted.
pub fn stored_bytes(g: &Graph, pass: &QuantizeInt8) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut saved = 0usize;
    let mut added = 0usize;
    for t in linear_sites(g, &pass.skip) {
        let Some(w) = constant(g, t.w) else { continue };
        if w.dtype() != DType::F32 || w.dims().len() != 2 {
            continue;
        }
        let (k, n) = (w.dims()[0], w.dims()[1]);
        if pass.static_scale(g, t.x) && seen.insert(t.x) {
            added += 4 * k;
        }
        if seen.insert(t.w) {
            saved += 4 * k * n;
            added += k * n + 4 * n;
        }
    }
    if pass.embeddings {
        for table in embedding_tables(g) {
            let t = constant(g, table).expect("embedding_tables returns constants");
            if seen.insert(table) {
                let (rows, width) = (t.dims()[0], t.dims()[1]);
                saved += 4 * rows * width;
                added += rows * width + 4 * rows;
            }
        }
    }
    let stored: usize = g
        .node_ids()
        .filter_map(|id| match &g.node(id).op {
            Op::Constant(t) => Some(t.len() * t.dtype().size()),
            _ => None,
        })
        .sum();
    stored - saved + added
}

/// The tables the pass stores as int8: f32 matrices of at least
/// [`MIN_EMBEDDING_ROWS`] rows read by a `Gather{axis 0}`.
fn embedding_tables(g: &Graph) -> Vec<Value> {
    crate::ir::canonical_order(g)
        .into_iter()
        .filter(|&id| g.node(id).op == Op::Gather { axis: 0 })
        .filter_map(|id| {
            let table = g.inputs_of(id).first().copied()??;
            let t = constant(g, table)?;
            let big = t.dtype() == DType::F32 && t.dims().len() == 2 && t.dims()[0] >= MIN_EMBEDDING_ROWS;
            big.then_some(table)
        })
        .collect()
}

/// The distinct inputs of the linear layers the pass would quantize: the
/// values static quantization calibrates.
pub fn linear_inputs(g: &Graph, skip: &[String]) -> Vec<Value> {
    let mut xs: Vec<Value> = linear_sites(g, skip).into_iter().map(|t| t.x).collect();
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
        let sites = linear_sites(g, &self.skip);
        let calibrated = self.static_scales(g, &sites)?;
        // One quantization per distinct input, one int8 copy per weight
        // (ALBERT's layers share theirs), one column-scale constant per
        // dynamic weight.
        let mut quantized: HashMap<Value, Quantized> = HashMap::new();
        let mut weights: QuantizedWeights<(Value, Vec<f32>)> = QuantizedWeights::new();
        let mut column_scales: HashMap<(Value, ColumnScale), Value> = HashMap::new();
        let mut rewritten: HashMap<Value, Value> = HashMap::new();
        for t in &sites {
            let before = g.node_count();
            let base = g.node(t.out.node).name.clone();
            let calibrated = calibrated.get(&t.x);
            let quantized_x = match quantized.get(&t.x) {
                Some(&done) => done,
                None => {
                    // A linear reading another one (layer 0 reads ALBERT's
                    // and ELECTRA's embedding projection) reads its rewrite.
                    let x = rewritten.get(&t.x).copied().unwrap_or(t.x);
                    let done = quantize_activation(g, x, calibrated, &base)?;
                    quantized.insert(t.x, done);
                    done
                }
            };
            let smooth = calibrated.map(|c| c.smooth.as_slice());
            // A weight read by many linears (ALBERT's) is named after itself.
            let shared = read_by_many(&sites, t.w);
            let owner = match shared {
                true => g.node(t.w.node).name.clone(),
                false => base.clone(),
            };
            let (wq, scales) = weights.get_or_make(t.w, smooth, || {
                let w = constant(g, t.w).expect("linear weight");
                let (values, scales) = quantize_weight_s8(w, smooth, self.weights, WeightBits::Eight);
                let wn = g.fresh_name(&format!("{owner}.weight_int8"));
                Ok((g.add_const(&wn, values)?, scales))
            })?;
            // The column scales of weight `wq` as `form` makes them: one
            // constant per weight and form, made by its first reader.
            let mut column_scale = |g: &mut Graph, form: ColumnScale| -> Result<Value, IrError> {
                if let Some(&ws) = column_scales.get(&(wq, form)) {
                    return Ok(ws);
                }
                let cols: Vec<f32> = match form {
                    ColumnScale::Over127 => scales.iter().map(|w| w / 127.0).collect(),
                    ColumnScale::AsIs => scales.clone(),
                };
                let sn = g.fresh_name(&format!("{owner}.weight_scale"));
                let ws = g.add_const(&sn, Tensor::from_f32(vec![cols.len()], &cols))?;
                column_scales.insert((wq, form), ws);
                Ok(ws)
            };
            let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
            let mn = name(g, "matmul_int8");
            let acc = g.add(&mn, Op::MatMulInteger, &[quantized_x.q(), wq])?;
            let cn = name(g, "to_f32");
            let accf = g.add(&cn, Op::Cast { to: DType::F32 }, &[acc])?;
            let scaled = match quantized_x {
                Quantized::PerRow { row_scale, .. } => {
                    let rn = name(g, "row_scale");
                    let y = g.add(&rn, Op::Binary(BinaryOp::Mul), &[accf, row_scale])?;
                    // The row scale is max|x| (not max|x| / 127): the 1/127
                    // is folded into the column scales.
                    let ws = column_scale(g, ColumnScale::Over127)?;
                    let cn = name(g, "col_scale");
                    g.add(&cn, Op::Binary(BinaryOp::Mul), &[y, ws])?
                }
                Quantized::Calibrated { scale: s, .. } if !shared => {
                    // The input's scale folded into the weight's column scales.
                    let both: Vec<f32> = scales.iter().map(|w| w * s).collect();
                    let sn = name(g, "scale");
                    let sc = g.add_const(&sn, Tensor::from_f32(vec![both.len()], &both))?;
                    let cn = name(g, "dequantize");
                    g.add(&cn, Op::Binary(BinaryOp::Mul), &[accf, sc])?
                }
                Quantized::Calibrated { scale: s, .. } => {
                    // A shared weight's column scales are stored once; each
                    // reader multiplies by its own input's scale after them
                    // (tract chains both Muls and the bias Add in one pass).
                    let ws = column_scale(g, ColumnScale::AsIs)?;
                    let cn = name(g, "dequantize");
                    let y = g.add(&cn, Op::Binary(BinaryOp::Mul), &[accf, ws])?;
                    let sn = name(g, "input_scale");
                    let sc = g.add_const(&sn, Tensor::scalar_f32(s))?;
                    let cn = name(g, "scale");
                    g.add(&cn, Op::Binary(BinaryOp::Mul), &[y, sc])?
                }
            };
            let y = match t.b {
                Some(b) => {
                    let an = name(g, "bias_int8");
                    g.add(&an, Op::Binary(BinaryOp::Add), &[scaled, b])?
                }
                None => scaled,
            };
            g.replace_uses(t.out, y);
            rewritten.insert(t.out, y);
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

/// A weight's column-scale constant: its scales over 127 (dynamic rows
/// bring max|x|, not max|x| / 127) or as they are (a shared static weight).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ColumnScale {
    Over127,
    AsIs,
}

/// The int8 form of one linear input.
#[derive(Clone, Copy)]
enum Quantized {
    /// Quantized per token row at run time; `row_scale` is each row's
    /// max|x|, [.., 1].
    PerRow { q: Value, row_scale: Value },
    /// Quantized with its calibrated per-tensor `scale`.
    Calibrated { q: Value, scale: f32 },
}

impl Quantized {
    fn q(self) -> Value {
        match self {
            Quantized::PerRow { q, .. } | Quantized::Calibrated { q, .. } => q,
        }
    }
}

/// A statically quantized input's calibration: the smoothing factors of
/// its group (folded into its weights' rows) and its own per-tensor scale.
struct StaticScale {
    smooth: Vec<f32>,
    scale: f32,
}

/// SmoothQuant's migration strength: how much of an activation channel's
/// range is moved into the weights (0.5 balances both).
const SMOOTHING_ALPHA: f32 = 0.5;

impl QuantizeInt8 {
    /// The calibration of every input with a static scale.
    ///
    /// Per-channel outliers (a few hidden dims of BERT's residual stream are
    /// 10-100x the rest) would crush a per-tensor scale: x·W = (x / f)·(f·W),
    /// with f_k = sqrt(range_k / max|W_k|), moves half of each channel's
    /// range into the weights' rows. The factors are one set per group of
    /// linears tied by a shared input or weight ([`site_groups`]): the range
    /// of each channel is its largest over the group's inputs, max|W_k| over
    /// the group's weights. In BERT a group is one input and its Q, K, V (or
    /// FFN) weights, as before; in ALBERT the twelve layers reading one
    /// weight share factors, so that the weight is stored once. Each input
    /// keeps its own scale, `s = max_k(range_k / f_k) / 127`.
    fn static_scales(&self, g: &Graph, sites: &[LinearSite]) -> Result<HashMap<Value, StaticScale>, IrError> {
        let ActivationScales::Static(ranges) = &self.activations else {
            return Ok(HashMap::new());
        };
        let groups = site_groups(sites.iter().filter(|t| self.static_scale(g, t.x)));
        let mut scales = HashMap::new();
        for group in &groups {
            let row_max = row_abs_max(g, &group.weights);
            let k = row_max.len();
            let mut own = Vec::with_capacity(group.inputs.len());
            for &x in &group.inputs {
                let producer = value_name(g, x);
                let range = ranges.get(&producer).filter(|r| r.len() == k);
                own.push(range.map(Vec::as_slice).ok_or_else(|| IrError::Invalid {
                    node: producer,
                    reason: format!("no calibrated range of {k} channels for this linear input"),
                })?);
            }
            let smooth = smoothing(&merged_ranges(&own), &row_max, |r, w| {
                r.powf(SMOOTHING_ALPHA) / w.powf(1.0 - SMOOTHING_ALPHA)
            });
            for (&x, range) in group.inputs.iter().zip(own) {
                let smoothed = range.iter().zip(&smooth).map(|(r, f)| r / f).fold(0f32, f32::max);
                let scale = if smoothed > 0.0 { smoothed / 127.0 } else { 1.0 };
                let smooth = smooth.clone();
                scales.insert(x, StaticScale { smooth, scale });
            }
        }
        Ok(scales)
    }
}

/// Adds the int8 quantization of `x`: with its calibrated scale when it
/// has one, else per token row at run time.
fn quantize_activation(
    g: &mut Graph,
    x: Value,
    calibrated: Option<&StaticScale>,
    base: &str,
) -> Result<Quantized, IrError> {
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.input_{s}"));
    let f = |g: &mut Graph, n: &str, v: f32| -> Result<Value, IrError> {
        let n = g.fresh_name(&format!("{base}.input_{n}"));
        g.add_const(&n, Tensor::scalar_f32(v))
    };
    match calibrated {
        Some(StaticScale { smooth, scale: s }) => {
            let inv: Vec<f32> = smooth.iter().map(|f| 1.0 / (s * f)).collect();
            let n = g.fresh_name(&format!("{base}.input_inv_scale"));
            let inv = g.add_const(&n, Tensor::from_f32(vec![inv.len()], &inv))?;
            let mn = name(g, "scaled");
            let d = g.add(&mn, Op::Binary(BinaryOp::Mul), &[x, inv])?;
            // Clip before rounding: the rounded value stays in [-127, 127].
            let (lo, hi) = (f(g, "qmin", -127.0)?, f(g, "qmax", 127.0)?);
            let cn = name(g, "clip");
            let c = g.add(&cn, Op::Clip, &[d, lo, hi])?;
            let q = round_to_i8(g, c, base)?;
            Ok(Quantized::Calibrated { q, scale: *s })
        }
        None => {
            let amax = row_absmax(g, x, base)?;
            // 127 / max|x| on the [.., 1] row vector, so the full-size
            // work is one multiply; the 1/127 goes into the weight scales.
            // Computed as exp(ln 127 - ln max|x|), not a Div: see
            // [`LN_127`] (tract's Cast after the reductions runs 3x slower
            // unless an Exp or Ln kernel runs between them).
            let ln = name(g, "ln_absmax");
            let ln_a = g.add(&ln, Op::Unary(UnaryOp::Log), &[amax])?;
            let c = f(g, "ln127", LN_127)?;
            let dn = name(g, "ln_inv_scale");
            let ln_inv = g.add(&dn, Op::Binary(BinaryOp::Sub), &[c, ln_a])?;
            let sn = name(g, "inv_scale");
            let inv = g.add(&sn, Op::Unary(UnaryOp::Exp), &[ln_inv])?;
            let mn = name(g, "scaled");
            let d = g.add(&mn, Op::Binary(BinaryOp::Mul), &[x, inv])?;
            let q = round_to_i8(g, d, base)?;
            Ok(Quantized::PerRow { q, row_scale: amax })
        }
    }
}

impl QuantizeInt8 {
    /// Whether `x` gets a calibrated (static) scale: with static scales,
    /// every input but an FFN's hidden activation (a Gelu's output or a
    /// gated product; nomic-mlm's worst row 0.9908 → see tests/family2.rs)
    /// and an attention's context.
    ///
    /// GELU outputs range from -0.17 to tens, differently on every token:
    /// one calibrated scale for all tokens loses too much (MiniLM min row
    /// cosine 0.911 with it, 0.994 without), so the FFN output layer keeps
    /// per-token scales; for contexts see [`attention_context`].
    fn static_scale(&self, g: &Graph, x: Value) -> bool {
        matches!(self.activations, ActivationScales::Static(_))
            && ffn_hidden(g, x).is_none()
            && !attention_context(g, x)
    }
}

/// Whether `x` is an attention's context (its heads merged back: the
/// product of the probabilities and V, through Transpose/Reshape, or a
/// fused Attention's output). Static scales leave it per-token dynamic:
/// in tract the f32 product before it returns without `vzeroupper`, so a
/// static scaling pass and Cast straight after it ran 3× slower (0.31
/// against 0.10 ms per layer on BERT-base), where the dynamic form's Exp on
/// the row scales clears that state; and the context's rows vary as much
/// as the tokens' attention does.
fn attention_context(g: &Graph, x: Value) -> bool {
    let mut v = x;
    loop {
        match &g.node(v.node).op {
            // A sliding layer's context: cut to S rows (blocked form) and
            // its blind rows replaced (`Where(blind, mean V, context)`).
            Op::Reshape | Op::Transpose { .. } | Op::Slice | Op::Where => {
                let slot = if g.node(v.node).op == Op::Where { 2 } else { 0 };
                match g.inputs_of(v.node).get(slot).copied().flatten() {
                    Some(input) => v = input,
                    None => return false,
                }
            }
            Op::MatMul | Op::Attention { .. } | Op::Contrib(ContribOp::Attention { .. }) => return true,
            _ => return false,
        }
    }
}

/// max|x| of each row of `x` (over its last axis), at least
/// [`MIN_ABSMAX`], as a [.., 1] vector.
///
/// max(max x, -min x): two reductions that only read x, where Abs would
/// write a whole tensor first. A Gelu output is never below
/// -[`GELU_MIN_BOUND`], so there one reduction does: max(max x, bound) ≥
/// max|x|, equal to it unless the whole row is within the bound.
fn row_absmax(g: &mut Graph, x: Value, base: &str) -> Result<Value, IrError> {
    let name = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.input_{s}"));
    let axes = vec![g.info(x).shape.rank() as i64 - 1];
    let hn = name(g, "max");
    let reduce_max = Op::ReduceMax {
        axes: axes.clone(),
        keepdims: true,
    };
    let hi = g.add(&hn, reduce_max, &[x])?;
    if matches!(g.node(x.node).op, Op::Gelu { .. }) {
        let bn = name(g, "gelu_min_bound");
        let bound = g.add_const(&bn, Tensor::scalar_f32(GELU_MIN_BOUND))?;
        let an = name(g, "absmax");
        return g.add(&an, Op::Binary(BinaryOp::Max), &[hi, bound]);
    }
    let ln = name(g, "min");
    let lo = g.add(&ln, Op::ReduceMin { axes, keepdims: true }, &[x])?;
    let nn = name(g, "neg_min");
    let lo = g.add(&nn, Op::Unary(UnaryOp::Neg), &[lo])?;
    let an = name(g, "absmax_raw");
    let amax = g.add(&an, Op::Binary(BinaryOp::Max), &[hi, lo])?;
    // An all-zero row would give 127 / 0; with this floor its values
    // quantize to 0 and 127 / floor stays finite (a floor of
    // f32::MIN_POSITIVE would make it inf, and 0 · inf NaN).
    let fname = name(g, "min_absmax");
    let floor = g.add_const(&fname, Tensor::scalar_f32(MIN_ABSMAX))?;
    let an = name(g, "absmax");
    g.add(&an, Op::Binary(BinaryOp::Max), &[amax, floor])
}

/// A bound on -Gelu(x): the exact Gelu's minimum is -0.169971 (at
/// x = -0.7518), the tanh approximation's -0.170041; the margin covers
/// runtimes' approximations of erf and tanh. Saves the ReduceMin over the
/// widest activation (BERT's FFN output layer input, 4·hidden wide).
const GELU_MIN_BOUND: f32 = 0.171;

/// Largest |x| a dynamic row is given at least (see `quantize_activation`).
/// Its inverse scale exp(ln 127 - ln 1e-30) = 1.27e32 stays finite in f32.
pub(super) const MIN_ABSMAX: f32 = 1e-30;

/// ln 127: a dynamic row's inverse scale is `exp(LN_127 - ln max|x|)`
/// (127 / max|x| within ~1e-6 relative; the largest |x| still quantizes to
/// ±127, and the dequantization multiplies by max|x| itself).
///
/// Why not `127 / max|x|`: tract 0.23.9's x86 `Reduce<Max>` and
/// `Reduce<Min>` kernels (`x86_64_avx512_max_f32_64n_run`,
/// `x86_64_fma_min_f32_32n_run`, tract-linalg `x86_64/{max,min}.rs`) are
/// inline asm on ymm/zmm registers that returns without `vzeroupper`. The
/// f32→i8 Cast that follows (`Tensor::natural_cast`, scalar SSE code:
/// `cvttss2si`, `minss`/`maxss`, byte shifts) then runs 3× slower: 1.55 ns
/// per element instead of 0.5 (AMD EPYC Zen 5, measured in isolation too: a
/// ReduceMax, ReduceMin or nothing before the same Mul+Add+Sub+Cast on
/// [1, 128, 3072]: 0.65, 0.60, 0.20 ms; with a ReduceSum before it: 0.21).
/// tract's Exp and Ln kernels end with `vzeroupper`; running them on the
/// [.., 1] row vector between the reductions and the Cast costs ~0.002 ms
/// and restores the Cast's speed (BERT-base: 12.9 → 4.4 ms per run).
const LN_127: f32 = 4.844_187;

/// 1.5 · 2^23: for |v| < 2^22, `(v + R) - R` in f32 is `v` rounded half to
/// even, as ONNX Round computes it. Two additions fuse into the multiply
/// before them (tract: one `OptBinChain(Mul+Add+Sub)` pass, on every
/// thread), where a Round op is a separate single-pass op ~9× slower in
/// tract 0.23.9 (0.74 ms against 0.08 ms on [1, 128, 3072], 2 threads).
const ROUNDING_BIAS: f32 = 12_582_912.0;

/// `Cast<i8>((v + R) - R)`: v (already within [-127, 127]) rounded half to
/// even and cast to int8.
fn round_to_i8(g: &mut Graph, v: Value, base: &str) -> Result<Value, IrError> {
    let rn = g.fresh_name(&format!("{base}.input_rounding_bias"));
    let r = g.add_const(&rn, Tensor::scalar_f32(ROUNDING_BIAS))?;
    let an = g.fresh_name(&format!("{base}.input_round_up"));
    let up = g.add(&an, Op::Binary(BinaryOp::Add), &[v, r])?;
    let sn = g.fresh_name(&format!("{base}.input_rounded"));
    let rounded = g.add(&sn, Op::Binary(BinaryOp::Sub), &[up, r])?;
    let qn = g.fresh_name(&format!("{base}.input_int8"));
    g.add(&qn, Op::Cast { to: DType::I8 }, &[rounded])
}

/// Embedding tables read by `Gather{axis 0}` become int8 with a scale per
/// row; returns how many tables were rewritten.
pub(super) fn quantize_embeddings(g: &mut Graph, report: &mut PassReport) -> Result<usize, IrError> {
    let big = embedding_tables(g);
    let gathers: Vec<_> = crate::ir::canonical_order(g)
        .into_iter()
        .filter(|&id| g.node(id).op == Op::Gather { axis: 0 })
        .filter_map(|id| {
            let inputs = g.inputs_of(id);
            let (table, ids) = (inputs.first().copied()??, inputs.get(1).copied()??);
            big.contains(&table).then_some((id, table, ids))
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
                // One scale per row: a row is one token's vector. Rows in
                // parallel (a vocabulary is tens of millions of values).
                let mut q = vec![0u8; rows * width];
                let mut scales = vec![0f32; rows];
                q.par_chunks_exact_mut(width.max(1))
                    .zip(t.f32_le_bytes().expect("f32").par_chunks_exact(4 * width.max(1)))
                    .zip(scales.par_iter_mut())
                    .for_each(|((qrow, row), scale)| {
                        let max = row.chunks_exact(4).fold(0f32, |m, x| m.max(le_f32(x).abs()));
                        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
                        // A zero row quantizes to the zeros `q` holds; not
                        // writing them keeps a placeholder table's pages
                        // untouched (see `quantize_weight_s8`).
                        if max > 0.0 {
                            for (qv, x) in qrow.iter_mut().zip(row.chunks_exact(4)) {
                                *qv = quantize_i8(le_f32(x), s, 127.0);
                            }
                        }
                        *scale = s;
                    });
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

#[cfg(test)]
mod tests {
    use super::{GELU_MIN_BOUND, ROUNDING_BIAS};

    /// No Gelu output, exact or tanh-approximated, is below -GELU_MIN_BOUND
    /// (else its row's max|x| would be understated), and the bound is tight.
    #[test]
    fn gelu_min_bound_covers_both_forms() {
        // erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
        let erf = |x: f64| {
            let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
            let poly = t
                * (0.254_829_592
                    + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
            (1.0 - poly * (-x * x).exp()).copysign(x)
        };
        let exact = |x: f64| 0.5 * x * (1.0 + erf(x / 2f64.sqrt()));
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let tanh = |x: f64| 0.5 * x * (1.0 + (c * (x + 0.044_715 * x * x * x)).tanh());
        let lowest = |f: &dyn Fn(f64) -> f64| {
            (0..=400_000)
                .map(|i| f(-4.0 + i as f64 * 1e-5))
                .fold(0f64, f64::min)
        };
        let (e, t) = (lowest(&exact), lowest(&tanh));
        assert!((-0.16998..-0.16996).contains(&e), "exact Gelu min {e}");
        assert!((-0.17005..-0.17003).contains(&t), "tanh Gelu min {t}");
        let bound = GELU_MIN_BOUND as f64;
        assert!(
            -e < bound && -t < bound && bound + t < 1e-3,
            "{bound} vs {e}, {t}"
        );
    }

    /// `(v + R) - R` in f32 is ONNX Round (half to even) over the whole
    /// range the quantizer feeds it, ties included.
    #[test]
    fn rounding_bias_rounds_half_to_even() {
        let round = |v: f32| (v + ROUNDING_BIAS) - ROUNDING_BIAS;
        for i in -127_000..=127_000 {
            let v = i as f32 / 1000.0;
            assert_eq!(round(v), v.round_ties_even(), "{v}");
        }
        for (v, want) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, -0.0),
            (-2.5, -2.0),
            (126.5, 126.0),
        ] {
            assert_eq!(round(v), want, "{v}");
        }
        // Just below a tie rounds down, whatever the magnitude.
        for v in [0.49999997f32, 126.49999f32, -126.49999f32] {
            assert_eq!(round(v), v.round_ties_even(), "{v}");
        }
    }
}
