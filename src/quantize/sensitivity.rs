//! `--quantize-skip auto`: mixed precision chosen by measurement. The
//! fewest linear layers are kept f32 so that the quantized graph holds the
//! accuracy gate's bar (`--min-cosine`, default [`super::DEFAULT_MIN_COSINE`]) on the gate's own
//! validation inputs.
//!
//! How: with every layer quantized, one accuracy run; if that holds, no
//! layer stays f32 (the common case: one extra run). Otherwise each layer
//! is quantized alone and its output cosine against f32 measured — its
//! sensitivity — and the most sensitive are kept f32 one by one until the
//! rest holds. Calibration is shared by every run; each run costs one
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
    /// Each layer quantized alone, when that was measured: (name, the
    /// lowest output cosine against f32), most sensitive first.
    pub sensitivity: Vec<(String, f64)>,
    /// The lowest output cosine of the chosen mix.
    pub cosine: f64,
}

/// Chooses the layers to keep f32 (see the module doc) for `precision`'s
/// form and bar on `target`.
pub fn auto_skip(
    session: &Session,
    g: &Graph,
    precision: &Precision,
    target: Target,
    calibrated: Option<&Calibration>,
) -> Result<AutoSkip, Error> {
    let inputs = validation_inputs(g);
    let linears = crate::passes::quantizable_linears(g);
    let measure = |skip: &[String]| lowest_cosine(session, g, precision, target, calibrated, skip, &inputs);
    let all = measure(&[])?;
    if all >= precision.min_cosine {
        return Ok(AutoSkip {
            keep_f32: Vec::new(),
            sensitivity: Vec::new(),
            cosine: all,
        });
    }
    let mut sensitivity = Vec::with_capacity(linears.len());
    for name in &linears {
        let others: Vec<String> = linears.iter().filter(|n| *n != name).cloned().collect();
        sensitivity.push((name.clone(), measure(&others)?));
    }
    sensitivity.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut keep_f32 = Vec::new();
    let mut cosine = all;
    for (name, _) in &sensitivity {
        keep_f32.push(name.clone());
        cosine = measure(&keep_f32)?;
        if cosine >= precision.min_cosine {
            break;
        }
    }
    Ok(AutoSkip {
        keep_f32,
        sensitivity,
        cosine,
    })
}

/// The lowest output cosine against f32 of `g` quantized keeping `skip` f32.
fn lowest_cosine(
    session: &Session,
    g: &Graph,
    precision: &Precision,
    target: Target,
    calibrated: Option<&Calibration>,
    skip: &[String],
    inputs: &[NamedTensors],
) -> Result<f64, Error> {
    let mut q = g.clone();
    precision_passes(g, precision, target, calibrated, skip).run(&mut q)?;
    let report = accuracy_report(session, g, &q, inputs)?;
    Ok(report.outputs.iter().map(|o| o.cosine).fold(1.0, f64::min))
}
