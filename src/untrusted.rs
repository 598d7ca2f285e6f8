//! The readers of untrusted bytes, one public function per file kind bertc
//! takes from strangers: a config, an ONNX model, a checkpoint (safetensors
//! or PyTorch zip), a state_dict pickle. Each takes bytes and returns a
//! typed error for anything malformed — never a panic, never an allocation
//! the bytes did not pay for. The fuzz targets (`tests/fuzz/`) and the
//! corpus replay test (`tests/fuzz_replay.rs`) call exactly these, so what
//! the fuzzer proves is what the commands run.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use crate::config::{BertConfig, ConfigError};
use crate::ir::{value_name, Graph, Op, Value};
use crate::onnx::{export_bytes, import_bytes, ExportOptions};
use crate::passes::{attention_inputs, linear_inputs, Level, PassRun, Target, OUTLIER_ROW_SPREAD};
use crate::pipeline::{at_level, PipelineOptions};
use crate::quantize::{precision_passes, Calibration, CalibrationMethod, Form, Precision};
use crate::weights::{
    read_checkpoint_bytes, read_state_dict, CheckpointTensor, PickleError, TensorRef, WeightsError,
};

/// Largest tensor [`checkpoint`] widens to f32: the bytes pay for a
/// contiguous tensor, but a strided view (stride 0) can claim any size;
/// the real loader only widens tensors whose shape the config fixed.
pub const MAX_WIDENED_ELEMENTS: usize = 1 << 22;

/// A config.json's bytes, parsed and validated as `BertConfig::from_path`
/// does; the canonical JSON bertc stores must parse back to the same config.
pub fn config(bytes: &[u8]) -> Result<BertConfig, ConfigError> {
    let text = String::from_utf8_lossy(bytes);
    let config = BertConfig::from_json_str(&text, "(bytes)")?;
    config.parameter_bound()?;
    Ok(config)
}

/// An ONNX model's bytes, imported, then taken through every graph stage
/// of `optimize` that runs without tract ([`every_pipeline`]). Errors from
/// any stage are returned, typed.
pub fn onnx_model(bytes: &[u8]) -> Result<Graph, crate::Error> {
    let graph = import_bytes(bytes)?;
    every_pipeline(&graph)?;
    Ok(graph)
}

/// `graph` through the pipeline's own pass lists, for every level and
/// target the options accept, padded and packed (`--packed`: the
/// `pack_tokens` pass and its token indices): the fp32 passes
/// ([`PipelineOptions::pass_manager`]), then for fp32 and every precision
/// form the target takes (fp16, int8 dynamic, int8 static, with and
/// without `--quantize-attention`) the precision passes
/// ([`precision_passes`]) and the target's lowering
/// ([`PipelineOptions::lowering`]); the graph verified after every pass
/// and each result exported. Static scales, smoothing and per-token
/// choices come from a fixed synthetic calibration
/// ([`synthetic_calibration`]): the real one runs the model in tract.
/// Returns the names of the passes that ran.
pub fn every_pipeline(graph: &Graph) -> Result<BTreeSet<&'static str>, crate::Error> {
    let mut ran = BTreeSet::new();
    let mut record = |runs: Vec<PassRun>| ran.extend(runs.iter().map(|r| r.pass));
    // Targets share most fp32 pass lists (every one at -O0 and -O1): each
    // distinct list runs once, its graph and calibration kept.
    let mut optimized_by_list: HashMap<Vec<&'static str>, (Graph, Calibration)> = HashMap::new();
    let every_option = LEVELS
        .into_iter()
        .flat_map(|l| TARGETS.into_iter().map(move |t| (l, t)))
        .flat_map(|(l, t)| [false, true].map(|packed| (l, t, packed)))
        .flat_map(|(l, t, p)| FORMS.into_iter().map(move |f| (l, t, p, f)))
        .flat_map(|(l, t, p, f)| [false, true].map(|attention| (l, t, p, f, attention)));
    for (level, target, packed, form, attention) in every_option {
        let opts = PipelineOptions {
            target,
            packed,
            precision: Precision {
                attention,
                ..Precision::new(form)
            },
            ..at_level(level)
        };
        if opts.validate().is_err() {
            continue;
        }
        // The fp32 list can depend on the precision (OpenVINO's
        // --quantize-attention moves the attention's decomposition).
        let passes = opts.pass_manager()?.verify_each(true);
        let (optimized, calibration) = match optimized_by_list.entry(passes.names()) {
            Entry::Occupied(done) => done.into_mut(),
            Entry::Vacant(first) => {
                let mut optimized = graph.clone();
                record(passes.run(&mut optimized)?);
                let calibration = synthetic_calibration(&optimized);
                first.insert((optimized, calibration))
            }
        };
        let mut g = optimized.clone();
        if opts.precision.is_reduced() {
            let passes = precision_passes(&g, &opts.precision, target, Some(calibration), &[]);
            record(passes.run(&mut g)?);
        }
        record(opts.lowering()?.verify_each(true).run(&mut g)?);
        export_bytes(&g, ExportOptions::default())?;
    }
    Ok(ran)
}

const LEVELS: [Level; 3] = [Level::O0, Level::O1, Level::O2];

const TARGETS: [Target; 4] = [
    Target::Portable,
    Target::Tract,
    Target::Onnxruntime,
    Target::Openvino,
];

/// Every precision a compile can write.
const FORMS: [Form; 4] = [
    Form::Fp32,
    Form::Fp16,
    Form::Int8Dynamic,
    Form::Int8Static(CalibrationMethod::MinMax),
];

/// A calibration of every linear input of `g` made up without running it:
/// each channel's range 1 but the first's, 10 (an outlier, so that the
/// outlier channel and smoothing paths run), and every other input's
/// tokens spread beyond [`OUTLIER_ROW_SPREAD`] (so that both per-token and
/// per-tensor scales are chosen). The channel count is the rows of the
/// input's weight constant: sized by bytes the model paid for, never by a
/// declared shape.
pub fn synthetic_calibration(g: &Graph) -> Calibration {
    let mut calibration = Calibration::default();
    for (i, x) in linear_inputs(g, &[]).into_iter().enumerate() {
        let Some(rows) = weight_rows(g, x) else {
            continue;
        };
        let mut ranges = vec![1.0; rows];
        if let Some(first) = ranges.first_mut() {
            *first = 10.0;
        }
        let name = value_name(g, x);
        let spread = if i % 2 == 0 { 2.0 * OUTLIER_ROW_SPREAD } else { 1.0 };
        calibration.ranges.insert(name.clone(), ranges);
        calibration.row_spread.insert(name, spread);
    }
    // The static --quantize-attention form's Q, K and V: one range each
    // (it reads their maximum).
    for x in attention_inputs(g) {
        calibration.ranges.insert(value_name(g, x), vec![4.0]);
    }
    calibration
}

/// The rows of the 2-D constant that a product reading `x` multiplies it by.
fn weight_rows(g: &Graph, x: Value) -> Option<usize> {
    g.consumers(x).iter().find_map(|&(user, _)| {
        let w = g.inputs_of(user).get(1).copied().flatten()?;
        match &g.node(w.node).op {
            Op::Constant(t) if t.dims().len() == 2 => Some(t.dims()[0]),
            _ => None,
        }
    })
}

/// A checkpoint's bytes (safetensors or PyTorch zip, recognised from the
/// bytes), every float tensor up to [`MAX_WIDENED_ELEMENTS`] widened to f32.
pub fn checkpoint(bytes: &[u8]) -> Result<Vec<CheckpointTensor>, WeightsError> {
    read_checkpoint_bytes(bytes, MAX_WIDENED_ELEMENTS)
}

/// A state_dict pickle's bytes (`data.pkl` of a torch zip), read without
/// executing anything.
pub fn pickle(bytes: &[u8]) -> Result<Vec<(String, TensorRef)>, PickleError> {
    read_state_dict(bytes)
}
