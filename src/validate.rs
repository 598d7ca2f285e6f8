//! `validate` as a library call: an ONNX file run in tract on a golden
//! file's inputs, every output compared with the golden's reference and
//! judged by gates that follow the model's precision. The CLI prints the
//! [`Validation`] and turns its verdict into the exit code.

use std::path::{Path, PathBuf};

use crate::atomic_write::{check_output, OutputPathError};
use crate::ir::{DType, Graph, Op};
use crate::pipeline::check::CHECK_ATOL;
use crate::quantize::DEFAULT_MIN_COSINE;
use crate::runtime::{
    check_inputs_fit, check_references_fit, compare, read_safetensors, worst_token_cosine, write_safetensors,
    InputFitError, OutputComparison, RuntimeError, TractSession,
};
use crate::session::Session;

/// fp16 weights move outputs by ~1e-3: held to a worst-row cosine instead.
pub const FP16_MIN_COSINE: f64 = 0.9999;

#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Largest accepted |actual − expected| of any element of any output.
    pub atol: Option<f64>,
    /// Smallest accepted cosine of any output row.
    pub min_cosine: Option<f64>,
    /// Also write tract's outputs to this safetensors file.
    pub save_outputs: Option<PathBuf>,
}

/// The gates a model is held to: what was asked, else its precision's
/// defaults (when neither gate was given).
#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    pub atol: Option<f64>,
    pub min_cosine: Option<f64>,
    /// "fp32", "fp16" or "int8" ([`model_precision`]).
    pub precision: &'static str,
}

impl Gates {
    /// The gates for `g` (`None`: a model bertc's IR cannot import, held
    /// to fp32's).
    pub fn of(opts: &ValidateOptions, g: Option<&Graph>) -> Gates {
        let precision = g.map_or("fp32", model_precision);
        let (atol, min_cosine) = match precision {
            "fp32" => (Some(CHECK_ATOL), None),
            "fp16" => (None, Some(FP16_MIN_COSINE)),
            _ => (None, Some(DEFAULT_MIN_COSINE)),
        };
        let given = opts.atol.is_some() || opts.min_cosine.is_some();
        Gates {
            atol: if given { opts.atol } else { atol },
            min_cosine: if given { opts.min_cosine } else { min_cosine },
            precision,
        }
    }
}

/// "fp32", "fp16" or "int8": bertc's `bertc.precision` metadata, else what
/// the graph's ops and weights say (int8 ops, f16 weights).
pub fn model_precision(g: &Graph) -> &'static str {
    match g.metadata.get("bertc.precision").map(String::as_str) {
        Some("fp16") => return "fp16",
        Some(p) if p.starts_with("int8") => return "int8",
        _ => {}
    }
    let ops = g.op_histogram();
    if [
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeLinear",
        "DequantizeLinear",
    ]
    .iter()
    .any(|k| ops.contains_key(k))
    {
        return "int8";
    }
    let f16 = g.node_ids().any(|id| match &g.node(id).op {
        Op::Constant(t) => t.dtype() == DType::F16 && t.len() > 1,
        _ => false,
    });
    if f16 {
        "fp16"
    } else {
        "fp32"
    }
}

/// Why an output fails its gates.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    Shape {
        actual: Vec<usize>,
        expected: Vec<usize>,
    },
    MaxAbsAbove(f64),
    CosineBelow(f64),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Shape { actual, expected } => write!(f, "shape {actual:?}, expected {expected:?}"),
            Problem::MaxAbsAbove(atol) => write!(f, "max-abs above {atol}"),
            Problem::CosineBelow(min) => write!(f, "worst row cosine below {min}"),
        }
    }
}

/// One model output against the golden.
#[derive(Debug, Clone)]
pub struct OutputVerdict {
    pub name: String,
    /// `None` when the golden file holds no reference for it.
    pub comparison: Option<OutputComparison>,
    /// Empty when it passes.
    pub problems: Vec<Problem>,
}

/// Every output of the model, in the order tract gives them, and the
/// golden outputs the model does not produce.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The golden file compared against.
    pub golden: PathBuf,
    pub gates: Gates,
    pub outputs: Vec<OutputVerdict>,
    pub missing: Vec<String>,
}

impl Validation {
    /// Outputs that had a reference.
    pub fn compared(&self) -> usize {
        self.outputs.iter().filter(|o| o.comparison.is_some()).count()
    }

    /// Whether the model passed: no output beyond its gates and, unless
    /// `allow_missing`, no golden output it does not produce. An error when
    /// no output had a reference: a validation that compares nothing
    /// proves nothing.
    pub fn passed(&self, allow_missing: bool) -> Result<bool, ValidateError> {
        if self.compared() == 0 {
            return Err(ValidateError::NothingCompared(self.golden.clone()));
        }
        let failed = self.outputs.iter().any(|o| !o.problems.is_empty());
        Ok(!failed && (allow_missing || self.missing.is_empty()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Output(#[from] OutputPathError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Fit(#[from] InputFitError),
    #[error("{}: the input `{name}` has shape {shape:?}: an empty batch compares nothing", .golden.display())]
    EmptyBatch {
        golden: PathBuf,
        name: String,
        shape: Vec<usize>,
    },
    #[error("running {} on the inputs of {}", .model.display(), .golden.display())]
    Run {
        model: PathBuf,
        golden: PathBuf,
        #[source]
        source: Box<RuntimeError>,
    },
    #[error("no model output has a reference in {}", .0.display())]
    NothingCompared(PathBuf),
}

/// Runs `model` on the inputs of `golden` and judges every output
/// ([`Validation::passed`] gives the verdict), tract on `session`'s threads.
pub fn validate(
    session: &Session,
    model: &Path,
    golden: &Path,
    opts: &ValidateOptions,
) -> Result<Validation, ValidateError> {
    if let Some(path) = &opts.save_outputs {
        check_output(path, &[("model", model), ("golden file", golden)])?;
    }
    let references = read_safetensors(golden)?;
    let mut tract = TractSession::from_path(session, model)?;
    for name in tract.input_names() {
        if let Some(t) = references.get(name).filter(|t| t.shape.contains(&0)) {
            return Err(ValidateError::EmptyBatch {
                golden: golden.to_path_buf(),
                name: name.clone(),
                shape: t.shape.clone(),
            });
        }
    }
    // The IR form gives the limits inputs must fit (tract would panic on
    // an id past a table) and the precision; a model bertc's IR cannot
    // import is still run, unchecked.
    let graph = crate::onnx::read_model(model).ok();
    if let Some(g) = &graph {
        let origin = golden.display().to_string();
        check_inputs_fit(g, &references, &origin)?;
        check_references_fit(g, &references, &origin)?;
    }
    let gates = Gates::of(opts, graph.as_ref());
    let outputs = tract.run(&references).map_err(|source| ValidateError::Run {
        model: model.to_path_buf(),
        golden: golden.to_path_buf(),
        source: Box::new(source),
    })?;
    if let Some(path) = &opts.save_outputs {
        write_safetensors(path, &outputs)?;
    }
    let verdicts = outputs
        .iter()
        .map(|(name, actual)| {
            let Some(expected) = references.get(name) else {
                return OutputVerdict {
                    name: name.clone(),
                    comparison: None,
                    problems: vec![],
                };
            };
            let mut c = compare(name, actual, expected);
            // Per-token outputs are judged on real tokens only.
            if let Some(worst) = references
                .get("attention_mask")
                .and_then(|mask| worst_token_cosine(actual, expected, mask))
            {
                c.worst_row_cosine = worst;
            }
            let mut problems = vec![];
            if !c.shape_matches {
                problems.push(Problem::Shape {
                    actual: actual.shape.clone(),
                    expected: expected.shape.clone(),
                });
            } else {
                if let Some(atol) = gates.atol.filter(|&atol| !c.within(atol)) {
                    problems.push(Problem::MaxAbsAbove(atol));
                }
                if let Some(min) = gates
                    .min_cosine
                    .filter(|&min| c.worst_row_cosine.is_nan() || c.worst_row_cosine < min)
                {
                    problems.push(Problem::CosineBelow(min));
                }
            }
            OutputVerdict {
                name: name.clone(),
                comparison: Some(c),
                problems,
            }
        })
        .collect();
    let missing = references
        .keys()
        .filter(|k| !outputs.contains_key(*k) && !tract.input_names().contains(k))
        .cloned()
        .collect();
    Ok(Validation {
        golden: golden.to_path_buf(),
        gates,
        outputs: verdicts,
        missing,
    })
}
