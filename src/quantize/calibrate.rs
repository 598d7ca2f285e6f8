//! Static quantization's activation ranges: the f32 graph is run in tract
//! on calibration batches with every linear input exposed as an extra
//! output, and each input's range (max |x|) is measured per channel, and
//! how unevenly its rows (tokens) span that range.

use std::collections::HashMap;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use super::{CalibrationMethod, CALIBRATION_BATCH, CALIBRATION_BATCHES, CALIBRATION_SEQ};
use crate::error::Error;
use crate::ir::{value_name, Graph};
use crate::onnx::{export_bytes, ExportOptions};
use crate::passes::linear_inputs;
use crate::runtime::{read_safetensors, HostData, HostTensor, NamedTensors, RuntimeError, TractSession};
use crate::session::Session;

/// Calibration batches: the rows of `file` (every model input, [N, S]) in
/// batches of [`CALIBRATION_BATCH`], or the policy's generated batches of
/// realistic inputs when no file is given (see [`super::CALIBRATION_BATCHES`]).
pub fn calibration_batches(g: &Graph, file: Option<&Path>) -> Result<Vec<NamedTensors>, Error> {
    let batch = CALIBRATION_BATCH;
    let Some(path) = file else {
        let seq = crate::runtime::sequence_length(g, CALIBRATION_SEQ);
        return Ok((0..CALIBRATION_BATCHES as u64)
            .map(|seed| crate::runtime::inputs_for_seed(g, batch, seq, 1000 + seed))
            .collect());
    };
    let all = read_safetensors(path)?;
    let shown = path.display();
    let mut rows = None;
    for &id in g.inputs() {
        let name = &g.node(id).name;
        let t = all.get(name).ok_or_else(|| {
            RuntimeError::Io(format!(
                "{shown}: calibration inputs lack the model input `{name}`"
            ))
        })?;
        if t.shape.len() != 2 || !matches!(t.data, HostData::I64(_)) {
            return Err(RuntimeError::Io(format!(
                "{shown}: `{name}` must be a 2-D integer tensor [N, S], got {} {:?}",
                t.dtype_name(),
                t.shape
            ))
            .into());
        }
        match rows {
            None => rows = Some(t.shape.clone()),
            Some(ref r) if *r != t.shape => {
                return Err(RuntimeError::Io(format!(
                    "{shown}: `{name}` has shape {:?}, other inputs {r:?}",
                    t.shape
                ))
                .into())
            }
            _ => {}
        }
    }
    let Some(dims) = rows.filter(|r| r[0] > 0) else {
        return Err(RuntimeError::Io(format!("{shown}: no calibration rows")).into());
    };
    // A zero-length sequence reaches tract's optimizer as an empty axis,
    // which panics there (issue 25 N13); validate refuses it too.
    if dims[1] == 0 {
        return Err(RuntimeError::Io(format!(
            "{shown}: the calibration rows are empty ([{}, 0]): give every input as [N, S] with S at least 1",
            dims[0]
        ))
        .into());
    }
    crate::runtime::check_inputs_fit(g, &all, &shown.to_string()).map_err(RuntimeError::from)?;
    let (n, s) = (dims[0], dims[1]);
    let mut batches = Vec::new();
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(n);
        let mut b = NamedTensors::new();
        for &id in g.inputs() {
            let name = &g.node(id).name;
            let HostData::I64(v) = &all[name].data else {
                unreachable!("checked above")
            };
            b.insert(
                name.clone(),
                HostTensor::i64(vec![end - start, s], v[start * s..end * s].to_vec()),
            );
        }
        batches.push(b);
    }
    Ok(batches)
}

/// What calibration measured of every linear input the int8 passes would
/// quantize, keyed by the name of the node producing it.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    /// The range of each channel (index along the last axis).
    pub ranges: HashMap<String, Vec<f32>>,
    /// The row spread: the largest row's max |x| over the median row's, in
    /// the batch where that ratio is highest. One scale per tensor gives
    /// the median token `log2(spread)` bits fewer than its own scale would.
    pub row_spread: HashMap<String, f32>,
}

/// Calibrates every linear input the int8 passes would quantize (see
/// [`Calibration`]), and the values of `extra` (the attention's Q, K and V
/// for `--quantize-attention`'s static form). Shows a progress bar on
/// stderr.
pub fn calibrate(
    session: &Session,
    g: &Graph,
    skip: &[String],
    extra: &[crate::ir::Value],
    batches: &[NamedTensors],
    method: CalibrationMethod,
) -> Result<Calibration, Error> {
    let mut xs = linear_inputs(g, skip);
    let more: Vec<crate::ir::Value> = extra.iter().copied().filter(|x| !xs.contains(x)).collect();
    xs.extend(more);
    let mut probe = g.clone();
    let probe_name = |name: &str| format!("calibrate:{name}");
    let names: Vec<String> = xs.iter().map(|&x| value_name(g, x)).collect();
    for (x, name) in xs.iter().zip(&names) {
        probe.set_output(&probe_name(name), *x);
    }
    let mut probed = TractSession::from_bytes(session, &export_bytes(&probe, ExportOptions::default())?)?;
    let bar = ProgressBar::new(batches.len() as u64).with_style(
        ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} batches ({elapsed})")
            .expect("valid template"),
    );
    let mut per_batch: HashMap<&str, Vec<Vec<f32>>> = HashMap::new();
    let mut row_spread: HashMap<String, f32> = HashMap::new();
    for inputs in batches {
        let outputs = probed.run(inputs)?;
        for name in &names {
            let t = &outputs[&probe_name(name)];
            let width = *t.shape.last().unwrap_or(&1);
            let values = t.to_f32();
            let spread = row_spread_of(&values, width);
            let worst = row_spread.entry(name.clone()).or_insert(spread);
            *worst = worst.max(spread);
            per_batch
                .entry(name)
                .or_default()
                .push(channel_ranges(values, width, method));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ranges = per_batch
        .into_iter()
        .map(|(name, ranges)| {
            let combined = (0..ranges[0].len())
                .map(|k| {
                    let of_k = ranges.iter().map(|r| r[k]);
                    match method {
                        CalibrationMethod::MinMax => of_k.fold(0f32, f32::max),
                        CalibrationMethod::Percentile(_) => of_k.sum::<f32>() / ranges.len() as f32,
                    }
                })
                .collect();
            (name.to_string(), combined)
        })
        .collect();
    Ok(Calibration { ranges, row_spread })
}

/// The largest row max |x| over the median row's (1 for a tensor whose
/// rows are all zero, or that has none).
fn row_spread_of(values: &[f32], width: usize) -> f32 {
    if width == 0 {
        return 1.0;
    }
    let mut rows: Vec<f32> = values
        .chunks_exact(width)
        .map(|row| row.iter().fold(0f32, |m, v| m.max(v.abs())))
        .collect();
    if rows.is_empty() {
        return 1.0;
    }
    let mid = rows.len() / 2;
    let median = *rows.select_nth_unstable_by(mid, f32::total_cmp).1;
    let max = rows.iter().copied().fold(0f32, f32::max);
    match median > 0.0 {
        true => max / median,
        false if max > 0.0 => f32::INFINITY,
        false => 1.0,
    }
}

/// The range of each channel (index along the last axis) of one batch's values.
fn channel_ranges(values: Vec<f32>, width: usize, method: CalibrationMethod) -> Vec<f32> {
    (0..width)
        .map(|k| {
            let mut channel: Vec<f32> = values.iter().skip(k).step_by(width).map(|v| v.abs()).collect();
            match method {
                CalibrationMethod::MinMax => channel.iter().copied().fold(0f32, f32::max),
                CalibrationMethod::Percentile(_) if channel.is_empty() => 0.0,
                CalibrationMethod::Percentile(p) => {
                    let last = channel.len() - 1;
                    let k = (((p / 100.0) * last as f64).round() as usize).min(last);
                    *channel.select_nth_unstable_by(k, f32::total_cmp).1
                }
            }
        })
        .collect()
}
