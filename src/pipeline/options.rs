//! What a compile is asked to do, and the one validation of it: every rule
//! an option combination must keep, each error naming the flag and value.
//! The CLI parses its flags into [`PipelineOptions`] and leaves every rule
//! to [`PipelineOptions::validate`]; library callers get the same rules.

use std::path::PathBuf;

use crate::passes::{
    fused_attention_pipeline, packed_pipeline, pipeline as level_pipeline, target_passes, Level, PassError,
    PassManager, Target, DECOMPOSED_ATTENTION,
};
use crate::quantize::precision::{CalibrationMethod, Form, Precision, Skip, WeightBits, DEFAULT_MIN_COSINE};

/// Which fp32 passes run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassSelection {
    /// A level's pipeline for the target, then the target's lowering.
    Level(Level),
    /// Exactly these passes (no target lowering).
    Explicit(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    pub passes: PassSelection,
    pub target: Target,
    /// Run the equivalence check and the accuracy gate.
    pub check: bool,
    /// fp32 (the default), fp16 or an int8 form, with the gate it must pass.
    pub precision: Precision,
    /// The opset to emit; `None` for the lowest that covers the ops used.
    pub opset: Option<i64>,
    /// Write every intermediate's value_info
    /// ([`crate::onnx::ExportOptions::value_info`]).
    pub value_info: bool,
    /// Write initializers to `OUT.onnx_data` beside the model
    /// ([`crate::onnx::ExportOptions::external_data`]; automatic above
    /// protobuf's 2 GB).
    pub external_data: bool,
    /// Where the model will be written, when the caller knows: the bytes
    /// the check (or the gate) loads are then written to a temporary file
    /// beside it while that stage runs, and
    /// [`super::Compiled::write_files`] to this path renames that file into
    /// place (a failed check removes it).
    pub output: Option<PathBuf>,
    /// Run the per-token layers on the real tokens only (`pack_tokens`
    /// after the level's pipeline): the same inputs and outputs, zeros at
    /// the padding positions of per-token outputs.
    pub packed: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            passes: PassSelection::Level(Level::O2),
            target: Target::Portable,
            check: true,
            precision: Precision::default(),
            opset: None,
            value_info: false,
            external_data: false,
            output: None,
            packed: false,
        }
    }
}

/// The options of a level's pipeline, checked, portable target.
pub fn at_level(level: Level) -> PipelineOptions {
    PipelineOptions {
        passes: PassSelection::Level(level),
        ..Default::default()
    }
}

/// The options of an explicit pass list, checked.
pub fn with_passes(names: &[&str]) -> PipelineOptions {
    PipelineOptions {
        passes: PassSelection::Explicit(names.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// An option combination that cannot mean what it says.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionError {
    #[error("--calibrate applies only to int8: --quantize static, or dynamic with --target onnxruntime")]
    CalibrateNeedsInt8,
    #[error("{flag} applies only to int8 (--precision int8 or --quantize), not {precision}")]
    NeedsInt8 {
        flag: &'static str,
        precision: &'static str,
    },
    #[error("--min-cosine applies only to --precision fp16 or int8")]
    MinCosineNeedsReduced,
    #[error("--min-row-cosine applies only to --precision fp16 or int8")]
    MinRowCosineNeedsReduced,
    #[error("--min-cosine must be within 0 and 1, got {0:?}")]
    MinCosine(f64),
    #[error("--min-row-cosine must be within 0 and 1, got {0:?}")]
    MinRowCosine(f64),
    #[error("--percentile must be within (0, 100], got {0}")]
    Percentile(f64),
    #[error("--quantize-skip: an empty pattern matches every layer and would quantize nothing; name a layer (e.g. pooler)")]
    EmptySkipPattern,
    #[error(
        "--quantize-skip `{pattern}` matches none of the model's {count} linear layers (they are named like \
         {examples}){products}; nothing was written"
    )]
    SkipMatchesNothing {
        pattern: String,
        count: usize,
        examples: String,
        /// The other products the form quantizes, when it has any:
        /// ", nor its N relative-position products (named like …)".
        products: String,
    },
    #[error("--target openvino takes int8 as calibrated QuantizeLinear/DequantizeLinear pairs: use --quantize static")]
    OpenvinoNeedsStatic,
    #[error(
        "--calibrate with --quantize dynamic needs --target onnxruntime (its form picks per-token scales \
         and smoothing from calibration); the {0} form calibrates nothing — or use --quantize static"
    )]
    CalibrateNeedsOnnxruntime(&'static str),
    #[error(
        "--weight-bits 7 is for the u8 x s8 int8 forms of --target onnxruntime and --target openvino \
         --quantize static, not the {0} form (i8 x i8, which does not saturate)"
    )]
    WeightBitsNeedUnsignedForm(&'static str),
    #[error(
        "--target {target} lowers only after the -O2 pipeline; with {given} nothing would be lowered \
         (use -O2 without --passes, or --target portable)"
    )]
    TargetNeedsO2 { target: &'static str, given: String },
    #[error(
        "--quantize-attention writes the int8 attention of onnxruntime's dynamic form and OpenVINO's static \
         one: it needs --target onnxruntime --quantize dynamic or --target openvino --quantize static \
         (got --target {target}, {precision})"
    )]
    QuantizeAttentionForm {
        target: &'static str,
        precision: &'static str,
    },
    #[error(
        "--quantize-attention rewrites the attention -O2 recognizes (fuse_attention); with {given} there is \
         none to quantize (use -O2 without --passes)"
    )]
    QuantizeAttentionNeedsO2 { given: String },
    #[error(
        "--quantize-attention quantizes the fused attention, which --packed writes decomposed around its \
         gathers: use one or the other"
    )]
    QuantizeAttentionWithPacked,
    #[error("--packed adds `pack_tokens` to a level's pipeline; with --passes, name pack_tokens in the list instead")]
    PackedWithPasses,
}

impl PipelineOptions {
    /// Refuses meaningless combinations before any work is done: the one
    /// place every rule lives, in the order the CLI reports them (options
    /// that only mean something with int8 first, then values, then what
    /// the target can take).
    pub fn validate(&self) -> Result<(), OptionError> {
        let p = &self.precision;
        if !p.is_int8() {
            if p.calibrate.is_some() {
                return Err(OptionError::CalibrateNeedsInt8);
            }
            for (given, flag) in [
                (p.weight_bits != WeightBits::Eight, "--weight-bits"),
                (
                    p.weights != crate::passes::WeightGranularity::PerChannel,
                    "--per-tensor",
                ),
                (p.skip != Skip::default(), "--quantize-skip"),
                (p.attention, "--quantize-attention"),
                (!p.embeddings, "--no-quantize-embeddings"),
            ] {
                if given {
                    return Err(OptionError::NeedsInt8 {
                        flag,
                        precision: p.name(),
                    });
                }
            }
        }
        if p.form == Form::Fp32 && p.min_cosine != DEFAULT_MIN_COSINE {
            return Err(OptionError::MinCosineNeedsReduced);
        }
        if !(0.0..=1.0).contains(&p.min_cosine) {
            return Err(OptionError::MinCosine(p.min_cosine));
        }
        match p.min_row_cosine {
            Some(_) if p.form == Form::Fp32 => return Err(OptionError::MinRowCosineNeedsReduced),
            Some(r) if !(0.0..=1.0).contains(&r) => return Err(OptionError::MinRowCosine(r)),
            _ => {}
        }
        if let Form::Int8Static(CalibrationMethod::Percentile(q)) = p.form {
            if !(q > 0.0 && q <= 100.0) {
                return Err(OptionError::Percentile(q));
            }
        }
        if let Skip::Layers(patterns) = &p.skip {
            if patterns.iter().any(|s| s.trim().is_empty()) {
                return Err(OptionError::EmptySkipPattern);
            }
        }
        // onnxruntime's u8 x s8 forms (dynamic and static), and OpenVINO's
        // Q/DQ pairs, can take 7-bit weights; tract's i8 x i8 form cannot.
        let unsigned_form = match self.target {
            Target::Onnxruntime => true,
            Target::Openvino => matches!(p.form, Form::Int8Static(_)),
            Target::Portable | Target::Tract => false,
        };
        if p.weight_bits == WeightBits::Seven && !unsigned_form {
            return Err(OptionError::WeightBitsNeedUnsignedForm(self.target.name()));
        }
        if self.target == Target::Openvino && p.form == Form::Int8Dynamic {
            return Err(OptionError::OpenvinoNeedsStatic);
        }
        let attention_form = matches!(
            (self.target, p.form),
            (Target::Onnxruntime, Form::Int8Dynamic) | (Target::Openvino, Form::Int8Static(_))
        );
        if p.attention && !attention_form {
            return Err(OptionError::QuantizeAttentionForm {
                target: self.target.name(),
                precision: p.name(),
            });
        }
        if p.attention {
            if let Some(given) = self.other_than_o2() {
                return Err(OptionError::QuantizeAttentionNeedsO2 { given });
            }
            if self.packed {
                return Err(OptionError::QuantizeAttentionWithPacked);
            }
        }
        if self.target != Target::Onnxruntime && p.form == Form::Int8Dynamic && p.calibrate.is_some() {
            return Err(OptionError::CalibrateNeedsOnnxruntime(self.target.name()));
        }
        if self.packed && matches!(self.passes, PassSelection::Explicit(_)) {
            return Err(OptionError::PackedWithPasses);
        }
        if self.target == Target::Onnxruntime {
            if let Some(given) = self.other_than_o2() {
                return Err(OptionError::TargetNeedsO2 {
                    target: "onnxruntime",
                    given,
                });
            }
        }
        Ok(())
    }

    /// The flag that chose passes other than -O2's pipeline (`-O0`, `-O1`,
    /// `--passes`), as an error names it; `None` at -O2.
    fn other_than_o2(&self) -> Option<String> {
        match &self.passes {
            PassSelection::Level(Level::O2) => None,
            PassSelection::Level(l) => Some(format!("-O{}", l.number())),
            PassSelection::Explicit(_) => Some("--passes".to_string()),
        }
    }

    /// The fp32 passes, checked against the graph before them.
    pub fn pass_manager(&self) -> Result<PassManager, PassError> {
        match &self.passes {
            PassSelection::Level(level) if self.packed => {
                PassManager::from_names(packed_pipeline(*level, self.target))
            }
            PassSelection::Level(level) if self.decomposes_attention_late() => {
                PassManager::from_names(fused_attention_pipeline(*level, self.target))
            }
            PassSelection::Level(level) => PassManager::from_names(level_pipeline(*level, self.target)),
            PassSelection::Explicit(names) => PassManager::from_names(names.iter().map(String::as_str)),
        }
    }

    /// OpenVINO's `--quantize-attention` quantizes the fused Attention in
    /// the precision stage, so the decomposition -O2 writes for OpenVINO
    /// moves from the passes to the lowering (also decomposing what stays
    /// f32: ModernBERT's sliding layers).
    fn decomposes_attention_late(&self) -> bool {
        self.target == Target::Openvino && self.precision.attention
    }

    /// The target's lowering to runtime-specific ops, after the checks
    /// (tract cannot run onnxruntime's contrib ops; the lowering is
    /// structural and tested against onnxruntime itself).
    pub fn lowering(&self) -> Result<PassManager, PassError> {
        match &self.passes {
            PassSelection::Level(level) if self.decomposes_attention_late() => {
                PassManager::from_names(DECOMPOSED_ATTENTION)
            }
            PassSelection::Level(level) => PassManager::from_names(target_passes(self.target, *level)),
            PassSelection::Explicit(_) => Ok(PassManager::new()),
        }
    }
}
