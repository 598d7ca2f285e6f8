//! Reduced precision as a library call: int8 quantization (dynamic or
//! static with calibration) or f16 weights, then the accuracy report that
//! decides whether the result may be written.
//!
//! The passes themselves (`quantize_int8`, `to_fp16`) only rewrite; this
//! module calibrates static scales by running the f32 graph in tract, and
//! measures the rewritten graph against the f32 one on validation inputs.

mod accuracy;
mod calibrate;
pub mod kernel;
pub mod sensitivity;

use std::collections::HashMap;

pub use crate::runtime::cosine;
pub use accuracy::{
    accuracy_report, compare_runs, run_all, AccuracyReport, OutputAccuracy, DEFAULT_MIN_COSINE,
};
pub use calibrate::{calibrate, calibration_batches, Calibration, CalibrationMethod};
pub use kernel::{
    int8_slower_than_fp32, int8_warning, tract_int8_kernel, Int8Kernel, Int8Verdict, TractInt8Kernel,
};

use crate::error::Error;
use crate::ir::Graph;
use crate::passes::{
    ActivationScales, DeadNodeElimination, PassManager, PassRun, QuantizeInt8, QuantizeInt8Onnxruntime,
    Target, ToFp16, WeightBits, WeightGranularity, SMOOTHING_ALPHA_ONNXRUNTIME,
};
use crate::runtime::NamedTensors;
use crate::session::Session;

/// The calibration and validation policy, in one place: generated
/// calibration is `CALIBRATION_BATCHES` batches of `CALIBRATION_BATCH` ×
/// `CALIBRATION_SEQ` tokens (a calibration file is read in batches of
/// `CALIBRATION_BATCH` rows); the accuracy gate runs `VALIDATION_BATCHES`
/// batches of `VALIDATION_BATCH` × `VALIDATION_SEQ` tokens with seeds
/// distinct from calibration's. Sequences are capped by the position tables.
pub const CALIBRATION_BATCHES: usize = 8;
pub const CALIBRATION_BATCH: usize = 4;
pub const CALIBRATION_SEQ: usize = 128;
pub const VALIDATION_BATCHES: usize = 2;
pub const VALIDATION_BATCH: usize = 4;
pub const VALIDATION_SEQ: usize = 64;

/// The accuracy gate's inputs for `g` (see the policy above).
pub fn validation_inputs(g: &Graph) -> Vec<NamedTensors> {
    let seq = crate::check::sequence_length(g, VALIDATION_SEQ);
    (0..VALIDATION_BATCHES as u64)
        .map(|seed| crate::check::inputs_for_seed(g, VALIDATION_BATCH, seq, seed))
        .collect()
}

/// What `--quantize` / `--precision` ask for.
#[derive(Debug, Clone)]
pub enum Precision {
    /// int8 weights, activations quantized at run time. The onnxruntime
    /// form calibrates where to put per-token scales and smoothing: on
    /// `batches` when given, else on generated realistic inputs.
    Int8Dynamic { batches: Option<Vec<NamedTensors>> },
    /// int8 weights, activations with scales calibrated on `batches`.
    Int8Static {
        batches: Vec<NamedTensors>,
        method: CalibrationMethod,
    },
    /// f16 weights, f32 arithmetic.
    Fp16,
}

#[derive(Debug, Clone)]
pub struct PrecisionOptions {
    pub precision: Precision,
    pub weights: WeightGranularity,
    /// Linear layers whose name contains one of these stay f32.
    pub skip: Vec<String>,
    /// Store large embedding tables as int8 (int8 modes only).
    pub embeddings: bool,
    /// The runtime the int8 form is chosen for: `Onnxruntime` emits u8
    /// activations (DynamicQuantizeLinear) × s8 weights, the pattern its
    /// optimizer fuses into MatMulIntegerToFloat; the others the symmetric
    /// i8 × i8 form.
    pub target: Target,
    /// Bits of the u8 × s8 forms' weights: 8, or 7 where onnxruntime's
    /// u8 × s8 kernel would saturate (x86 without VNNI; see
    /// [`crate::passes::weight_bits_for_cpu`]). The i8 × i8 form takes 8.
    pub weight_bits: u8,
    /// The accuracy gate's bar, which `--quantize-skip auto` chooses for.
    pub min_cosine: f64,
}

/// Rewrites `g` to the requested precision; returns the pass runs.
/// `skip` = `["auto"]` ([`AUTO_SKIP`]) chooses the layers kept f32 by a
/// sensitivity pass ([`sensitivity::auto_skip`]).
/// tract runs (calibration, the sensitivity pass) on `session`'s threads.
pub fn apply(session: &Session, g: &mut Graph, opts: &PrecisionOptions) -> Result<Vec<PassRun>, Error> {
    let calibrated = calibration(session, g, opts)?;
    let skip = match opts.skip.as_slice() {
        [only] if only == AUTO_SKIP => {
            let keep = sensitivity::auto_skip(session, g, opts, calibrated.as_ref())?.keep_f32;
            // Said in the file (and the summary): which layers the
            // measurement kept f32.
            g.metadata.insert(KEPT_F32.into(), keep.join(","));
            keep
        }
        _ => opts.skip.clone(),
    };
    Ok(precision_passes(g, opts, calibrated.as_ref(), &skip)?.run(g)?)
}

/// `--quantize-skip auto`.
pub const AUTO_SKIP: &str = "auto";

/// Metadata key of the linear layers `--quantize-skip auto` kept f32
/// (comma-separated node names; empty when none).
pub const KEPT_F32: &str = "bertc.kept_f32";

/// The calibration of every linear input, for the forms that use it
/// (static scales, smoothing, per-token scales): measured once, whatever
/// is skipped.
pub fn calibration(
    session: &Session,
    g: &Graph,
    opts: &PrecisionOptions,
) -> Result<Option<Calibration>, Error> {
    Ok(match &opts.precision {
        Precision::Int8Dynamic { batches } if opts.target == Target::Onnxruntime => {
            let generated;
            let batches = match batches {
                Some(given) => given,
                None => {
                    generated = calibration_batches(g, None)?;
                    &generated
                }
            };
            Some(calibrate(session, g, &[], batches, CalibrationMethod::MinMax)?)
        }
        Precision::Int8Static { batches, method } => Some(calibrate(session, g, &[], batches, *method)?),
        Precision::Int8Dynamic { .. } | Precision::Fp16 => None,
    })
}

/// The precision passes for `opts` keeping the linears matched by `skip` f32.
///
/// `weight_bits` 7 or 8, nothing else: 8 by default, 7 where onnxruntime's
/// kernel saturates — on MiniLM's onnxruntime form the worst golden row is
/// 0.9978 with 8 bits where the kernel accumulates in 32 bits (VNNI), 0.9923
/// with 8 bits under AVX2's saturating pair sums (emulated), 0.9952 with 7
/// bits on both.
fn precision_passes(
    g: &Graph,
    opts: &PrecisionOptions,
    calibrated: Option<&Calibration>,
    skip: &[String],
) -> Result<PassManager, Error> {
    let weight_bits =
        WeightBits::try_from(opts.weight_bits).map_err(crate::pipeline::OptionError::WeightBits)?;
    let calibrated = calibrated.cloned().unwrap_or_default();
    let ranges = || calibrated.ranges.clone();
    let smooth = |ranges: &HashMap<String, Vec<f32>>| {
        crate::passes::smoothing_factors(g, skip, ranges, SMOOTHING_ALPHA_ONNXRUNTIME)
    };
    let pm = match &opts.precision {
        Precision::Fp16 => PassManager::new().with(ToFp16),
        Precision::Int8Dynamic { .. } if opts.target == Target::Onnxruntime => {
            PassManager::new().with(QuantizeInt8Onnxruntime {
                weights: opts.weights,
                skip: skip.to_vec(),
                embeddings: opts.embeddings,
                weight_bits,
                smooth: smooth(&calibrated.ranges),
                per_token: crate::passes::PerToken::Inputs(crate::passes::per_token_inputs(
                    g,
                    skip,
                    &calibrated.row_spread,
                )),
            })
        }
        Precision::Int8Dynamic { .. } => PassManager::new().with(QuantizeInt8 {
            activations: ActivationScales::Dynamic,
            weights: opts.weights,
            skip: skip.to_vec(),
            embeddings: opts.embeddings,
        }),
        // onnxruntime fuses the same Q/DQ form into MatMulIntegerToFloat
        // (u8 x s8, QuantizeLinear left standing): its static int8.
        Precision::Int8Static { .. } if matches!(opts.target, Target::Openvino | Target::Onnxruntime) => {
            let ranges = ranges();
            PassManager::new().with(crate::passes::QuantizeInt8Qdq {
                weights: opts.weights,
                skip: skip.to_vec(),
                smooth: smooth(&ranges),
                ranges,
                // Asymmetric, outlier channels split off: MiniLM's worst
                // golden row 0.9959 (f32 there: 0.9967), and OpenVINO runs
                // every product of the model in int8.
                gelu_inputs: true,
                weight_bits,
            })
        }
        Precision::Int8Static { .. } => PassManager::new().with(QuantizeInt8 {
            activations: ActivationScales::Static(ranges()),
            weights: opts.weights,
            skip: skip.to_vec(),
            embeddings: opts.embeddings,
        }),
    };
    Ok(pm.with(DeadNodeElimination).verify_each(true))
}
