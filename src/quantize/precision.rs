//! The precision of the written model, as one value from the command line
//! to the passes: `--precision` / `--quantize` and every option of theirs.
//! [`crate::pipeline::PipelineOptions::validate`] checks it once, with the
//! target it is written for; [`super::apply`] builds the passes from it.
//!
//! Only plain data lives here (no stage runs from this file): the option
//! validation and the error type import it without importing the stages.

use std::path::PathBuf;

use crate::passes::WeightGranularity;

/// `--min-cosine`'s default: the accuracy int8 BERTs are held to.
pub const DEFAULT_MIN_COSINE: f64 = 0.99;

/// What is written, and how int8 forms are made. fp32 writes the graph
/// as the passes left it; every other field is then at its default (the
/// validation refuses anything else: an option that would be ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    pub form: Form,
    /// One int8 weight scale per output channel, or per tensor.
    pub weights: WeightGranularity,
    /// Bits of the int8 weights of the u8 × s8 forms.
    pub weight_bits: WeightBits,
    /// The linear layers kept f32.
    pub skip: Skip,
    /// Store the word-embedding table as int8 (int8 forms only).
    pub embeddings: bool,
    /// Calibration inputs: a safetensors file with every model input as
    /// [N, S]; generated realistic inputs when `None`. Read by static int8
    /// (its scales) and by dynamic int8 for onnxruntime (where per-token
    /// scales and smoothing go); other forms calibrate nothing.
    pub calibrate: Option<PathBuf>,
    /// The worst cosine of an output against the f32 graph's that may be
    /// written (fp16 and int8).
    pub min_cosine: f64,
    /// The worst cosine of one row a pipeline reads (a real token's vector,
    /// a sequence's logits or embedding) that may be written, when held:
    /// the whole cosine is set by the largest rows, and one row can turn
    /// while it barely moves.
    pub min_row_cosine: Option<f64>,
    /// The attention's Q·Kᵀ and P·V as int8 products too (onnxruntime's
    /// dynamic form; see `passes::QuantizeAttention`).
    pub attention: bool,
}

/// The three precisions every command names the same way, int8 split by
/// how activations are scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Form {
    Fp32,
    /// f16 weights, f32 arithmetic.
    Fp16,
    /// int8 weights, activations quantized per token at run time.
    Int8Dynamic,
    /// int8 weights, activation scales calibrated with this method.
    Int8Static(CalibrationMethod),
}

/// How a static range is read off the calibration values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibrationMethod {
    /// The largest |x| seen in any batch.
    MinMax,
    /// The given percentile (e.g. 99.99) of |x| in each batch, averaged
    /// over batches: rare outliers are clipped instead of stretching the
    /// scale for every other value.
    Percentile(f64),
}

/// Bits of int8 weights: 8, or 7 for the u8 × s8 forms run on x86 without
/// VNNI ([`crate::passes::weight_bits_for_cpu`]); the passes' own type.
pub use crate::passes::WeightBits;

/// Which linear layers stay f32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The fewest that hold the `min_cosine` bar, chosen by measuring each
    /// layer ([`super::sensitivity::auto_skip`]).
    Auto,
    /// Those whose name contains one of these patterns; none by default.
    Layers(Vec<String>),
}

impl Default for Skip {
    fn default() -> Self {
        Skip::Layers(Vec::new())
    }
}

impl Skip {
    /// `--quantize-skip`'s values: `auto` alone asks for [`Skip::Auto`].
    pub fn from_patterns(patterns: Vec<String>) -> Skip {
        match patterns.as_slice() {
            [only] if only == "auto" => Skip::Auto,
            _ => Skip::Layers(patterns),
        }
    }

    /// Whether any layer is named or measured to stay f32.
    pub fn is_empty(&self) -> bool {
        matches!(self, Skip::Layers(p) if p.is_empty())
    }
}

impl Default for Precision {
    /// fp32.
    fn default() -> Self {
        Precision::new(Form::Fp32)
    }
}

impl Precision {
    /// `form` with every option at the default `compile` uses.
    pub fn new(form: Form) -> Precision {
        Precision {
            form,
            weights: WeightGranularity::PerChannel,
            weight_bits: WeightBits::Eight,
            skip: Skip::default(),
            embeddings: true,
            calibrate: None,
            min_cosine: DEFAULT_MIN_COSINE,
            min_row_cosine: None,
            attention: false,
        }
    }

    /// Whether a precision stage runs at all (anything but fp32).
    pub fn is_reduced(&self) -> bool {
        self.form != Form::Fp32
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.form, Form::Int8Dynamic | Form::Int8Static(_))
    }

    /// The name metadata and reports use: `fp32`, `fp16`, `int8-dynamic`,
    /// `int8-static`.
    pub fn name(&self) -> &'static str {
        match self.form {
            Form::Fp32 => "fp32",
            Form::Fp16 => "fp16",
            Form::Int8Dynamic => "int8-dynamic",
            Form::Int8Static(_) => "int8-static",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_bits_are_seven_or_eight_and_say_their_largest_weight() {
        assert_eq!(WeightBits::try_from(7), Ok(WeightBits::Seven));
        assert_eq!(WeightBits::try_from(8), Ok(WeightBits::Eight));
        assert_eq!(WeightBits::try_from(6), Err("6 is not in 7..=8".to_string()));
        assert_eq!(WeightBits::Seven.max(), 63.0);
        assert_eq!(WeightBits::Eight.max(), 127.0);
        assert_eq!(WeightBits::default().to_string(), "8");
    }

    #[test]
    fn auto_alone_is_the_measured_skip() {
        let patterns = |p: &[&str]| Skip::from_patterns(p.iter().map(|s| s.to_string()).collect());
        assert_eq!(patterns(&["auto"]), Skip::Auto);
        assert_eq!(
            patterns(&["auto", "pooler"]),
            Skip::Layers(vec!["auto".into(), "pooler".into()])
        );
        assert_eq!(patterns(&[]), Skip::default());
        assert!(patterns(&[]).is_empty() && !patterns(&["auto"]).is_empty());
    }
}
