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
pub mod precision;
pub mod sensitivity;

use std::collections::HashMap;

pub use crate::runtime::cosine;
pub use accuracy::{accuracy_report, compare_runs, run_all, AccuracyReport, OutputAccuracy};
pub use calibrate::{calibrate, calibration_batches, Calibration};
pub use kernel::{
    int8_slower_than_fp32, int8_warning, tract_int8_kernel, Int8Kernel, Int8Verdict, TractInt8Kernel,
};
pub use precision::{CalibrationMethod, Form, Precision, Skip, WeightBits, DEFAULT_MIN_COSINE};

use crate::error::Error;
use crate::ir::Graph;
use crate::passes::{
    ActivationScales, DeadNodeElimination, PassManager, PassRun, QuantizeAttention, QuantizeInt8,
    QuantizeInt8Onnxruntime, Target, ToFp16, SMOOTHING_ALPHA_ONNXRUNTIME,
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
    let seq = crate::runtime::sequence_length(g, VALIDATION_SEQ);
    (0..VALIDATION_BATCHES as u64)
        .map(|seed| crate::runtime::inputs_for_seed(g, VALIDATION_BATCH, seq, seed))
        .collect()
}

/// Rewrites `g` to `precision`, in the form chosen for `target`; returns
/// the pass runs. Calibrates first where the form needs it, and for
/// [`Skip::Auto`] measures which layers stay f32
/// ([`sensitivity::auto_skip`]) — both in tract, on `session`'s threads.
pub fn apply(
    session: &Session,
    g: &mut Graph,
    precision: &Precision,
    target: Target,
) -> Result<Vec<PassRun>, Error> {
    let calibrated = calibration(session, g, precision, target)?;
    let skip = match &precision.skip {
        Skip::Auto => {
            let keep = sensitivity::auto_skip(session, g, precision, target, calibrated.as_ref())?.keep_f32;
            // Said in the file (and the summary): which layers the
            // measurement kept f32.
            g.metadata.insert(KEPT_F32.into(), keep.join(","));
            keep
        }
        Skip::Layers(patterns) => {
            // A pattern that names no layer is a typo, not a choice: it
            // would quantize everything silently.
            let linears = crate::passes::linear_layer_names(g);
            // DeBERTa's relative products, where the form makes them int8
            // (precision_passes' onnxruntime dynamic form).
            let products = match (precision.form, target) {
                (Form::Int8Dynamic, Target::Onnxruntime) => crate::passes::relative_product_names(g),
                _ => Vec::new(),
            };
            let named = |p: &String| linears.iter().chain(&products).any(|n| n.contains(p.as_str()));
            if let Some(p) = patterns.iter().find(|p| !named(p)) {
                let examples: Vec<&str> = linears.iter().take(3).map(String::as_str).collect();
                let products = match products.first() {
                    Some(first) => format!(
                        ", nor its {} relative-position products (named like {first})",
                        products.len()
                    ),
                    None => String::new(),
                };
                return Err(crate::pipeline::OptionError::SkipMatchesNothing {
                    pattern: p.clone(),
                    count: linears.len(),
                    examples: examples.join(", "),
                    products,
                }
                .into());
            }
            patterns.clone()
        }
    };
    Ok(precision_passes(g, precision, target, calibrated.as_ref(), &skip).run(g)?)
}

/// Metadata key of the linear layers `--quantize-skip auto` kept f32
/// (comma-separated node names; empty when none).
pub const KEPT_F32: &str = "bertc.kept_f32";

/// The calibration of every linear input, for the forms that use it
/// (static scales, smoothing, per-token scales): measured once, whatever
/// is skipped, on the precision's calibration inputs (generated realistic
/// inputs without them).
pub fn calibration(
    session: &Session,
    g: &Graph,
    precision: &Precision,
    target: Target,
) -> Result<Option<Calibration>, Error> {
    let method = match precision.form {
        Form::Int8Dynamic if target == Target::Onnxruntime => CalibrationMethod::MinMax,
        Form::Int8Static(method) => method,
        Form::Int8Dynamic | Form::Fp16 | Form::Fp32 => return Ok(None),
    };
    let batches = calibration_batches(g, precision.calibrate.as_deref())?;
    // The static form of --quantize-attention reads Q's, K's and V's
    // ranges too (OpenVINO's attention is still fused here: its
    // decomposition waits for the lowering, see PipelineOptions).
    let attention = match (precision.attention, precision.form) {
        (true, Form::Int8Static(_)) => crate::passes::attention_inputs(g),
        _ => Vec::new(),
    };
    Ok(Some(calibrate(session, g, &[], &attention, &batches, method)?))
}

/// The passes [`apply`] runs for `precision` and `target`, with the
/// calibration measured (none for the forms that read none) and keeping
/// the linears matched by `skip` f32. Needs no tract: given a calibration,
/// the fuzz target ([`crate::untrusted::onnx_model`]) runs exactly these.
pub fn precision_passes(
    g: &Graph,
    precision: &Precision,
    target: Target,
    calibrated: Option<&Calibration>,
    skip: &[String],
) -> PassManager {
    let calibrated = calibrated.cloned().unwrap_or_default();
    let ranges = || calibrated.ranges.clone();
    let smooth = |ranges: &HashMap<String, Vec<f32>>| {
        crate::passes::smoothing_factors(g, skip, ranges, SMOOTHING_ALPHA_ONNXRUNTIME)
    };
    let pm = match precision.form {
        // Nothing to rewrite: the pipeline runs no precision stage.
        Form::Fp32 => return PassManager::new(),
        Form::Fp16 => PassManager::new().with(ToFp16),
        Form::Int8Dynamic if target == Target::Onnxruntime => {
            let pm = PassManager::new().with(QuantizeInt8Onnxruntime {
                weights: precision.weights,
                skip: skip.to_vec(),
                embeddings: precision.embeddings,
                weight_bits: precision.weight_bits,
                smooth: smooth(&calibrated.ranges),
                per_token: crate::passes::PerToken::Inputs(crate::passes::per_token_inputs(
                    g,
                    skip,
                    &calibrated.row_spread,
                )),
            });
            let pm = match precision.attention {
                true => pm.with(QuantizeAttention { static_ranges: None }),
                false => pm,
            };
            // DeBERTa's c2p and p2c: products against constant tables,
            // int8 like the linears' products against their weights.
            pm.with(crate::passes::QuantizeRelativeProducts { skip: skip.to_vec() })
        }
        Form::Int8Dynamic => PassManager::new().with(QuantizeInt8 {
            activations: ActivationScales::Dynamic,
            weights: precision.weights,
            skip: skip.to_vec(),
            embeddings: precision.embeddings,
        }),
        // onnxruntime fuses the same Q/DQ form into MatMulIntegerToFloat
        // (u8 x s8, QuantizeLinear left standing): its static int8.
        Form::Int8Static(_) if matches!(target, Target::Openvino | Target::Onnxruntime) => {
            let ranges = ranges();
            let attention = QuantizeAttention {
                static_ranges: Some(ranges.clone()),
            };
            let pm = PassManager::new().with(crate::passes::QuantizeInt8Qdq {
                weights: precision.weights,
                skip: skip.to_vec(),
                smooth: smooth(&ranges),
                ranges,
                // Asymmetric, outlier channels split off: MiniLM's worst
                // golden row 0.9959 (f32 there: 0.9967), and OpenVINO runs
                // every product of the model in int8.
                gelu_inputs: true,
                weight_bits: precision.weight_bits,
                embeddings: precision.embeddings,
            });
            // After the linears, whose rewrite keeps the Q, K and V values
            // the calibration named.
            match precision.attention {
                true => pm.with(attention),
                false => pm,
            }
        }
        Form::Int8Static(_) => PassManager::new().with(QuantizeInt8 {
            activations: ActivationScales::Static(ranges()),
            weights: precision.weights,
            skip: skip.to_vec(),
            embeddings: precision.embeddings,
        }),
    };
    pm.with(DeadNodeElimination).verify_each(true)
}
