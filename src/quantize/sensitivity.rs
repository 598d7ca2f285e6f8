//! `--quantize-skip auto`: mixed precision chosen by measurement. The
//! fewest linear layers are kept f32 so that the quantized graph holds the
//! accuracy gate's bars (`--min-cosine`, default [`super::DEFAULT_MIN_COSINE`], and
//! `--min-row-cosine` when given) on the gate's own validation inputs.
//!
//! How: with every layer quantized, one accuracy run; if that holds, no
//! layer stays f32 (the common case: one extra run). Otherwise each layer
//! is quantized alone and its margin to the bars measured (the lowest
//! over outputs of [`super::OutputAccuracy::margin`]) — its sensitivity —
//! and the most sensitive are kept f32 one by one until the rest holds. Calibration is shared by every run; each run costs one
//! rewrite and one pass of the validation inputs in tract (MiniLM: well
//! under a second; BERT-base: seconds, times 73 layers in the worst case).

use super::{accuracy_report, precision_passes, validation_inputs, Calibration, Precision};
use crate::error::Error;
use crate::ir::Graph;
use crate::passes::Target;
use crate::runtime::NamedTensors;
use crate::session::Session;

/// What the sensitivity pass chose.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoSkip {
    /// The linear layers kept f32 (full node names), most sensitive first.
    pub keep_f32: Vec<String>,
    /// Each layer quantized alone, when that was measured: (name, its
    /// margin to the gate's bars — [`super::OutputAccuracy::margin`], the
    /// lowest over outputs), most sensitive first.
    pub sensitivity: Vec<(String, f64)>,
    /// The lowest output cosine of the chosen mix.
    pub cosine: f64,
    /// The lowest cosine of a row a pipeline reads, of the chosen mix.
    pub row_cosine: f64,
}

/// One quantized graph against f32 on the validation inputs.
struct Measured {
    cosine: f64,
    row_cosine: f64,
    margin: f64,
}

/// Chooses the layers to keep f32 (see the module doc) for `precision`'s
/// form and bars on `target`.
pub fn auto_skip(
    session: &Session,
    g: &Graph,
    precision: &Precision,
    target: Target,
    calibrated: Option<&Calibration>,
) -> Result<AutoSkip, Error> {
    let inputs = validation_inputs(g);
    let linears = crate::passes::quantizable_linears(g);
    let measure = |skip: &[String]| measured(session, g, precision, target, calibrated, skip, &inputs);
    let mut chosen = measure(&[])?;
    let mut keep_f32 = Vec::new();
    let mut sensitivity = Vec::new();
    if chosen.margin < 0.0 {
        sensitivity.reserve(linears.len());
        for name in &linears {
            let others: Vec<String> = linears.iter().filter(|n| *n != name).cloned().collect();
            sensitivity.push((name.clone(), measure(&others)?.margin));
        }
        sensitivity.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (name, _) in &sensitivity {
            keep_f32.push(name.clone());
            chosen = measure(&keep_f32)?;
            if chosen.margin >= 0.0 {
                break;
            }
        }
    }
    Ok(AutoSkip {
        keep_f32,
        sensitivity,
        cosine: chosen.cosine,
        row_cosine: chosen.row_cosine,
    })
}

/// `g` quantized keeping `skip` f32, against f32: its lowest output and
/// real-row cosines and its margin to the bars.
fn measured(
    session: &Session,
    g: &Graph,
    precision: &Precision,
    target: Target,
    calibrated: Option<&Calibration>,
    skip: &[String],
    inputs: &[NamedTensors],
) -> Result<Measured, Error> {
    let mut q = g.clone();
    precision_passes(g, precision, target, calibrated, skip).run(&mut q)?;
    let report = accuracy_report(session, g, &q, inputs)?;
    let lowest = |f: fn(&super::OutputAccuracy) -> f64| {
        report.outputs.iter().map(f).fold(1.0, |m: f64, c| {
            if c.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.min(c)
            }
        })
    };
    Ok(Measured {
        cosine: lowest(|o| o.cosine),
        row_cosine: lowest(|o| o.min_real_row_cosine),
        margin: report
            .outputs
            .iter()
            .map(|o| o.margin(precision.min_cosine, precision.min_row_cosine))
            .fold(f64::INFINITY, f64::min),
    })
}
