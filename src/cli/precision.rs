//! `--quantize` / `--precision` and their options, shared by `compile` and
//! `optimize`: parsed here straight into the library's one [`Precision`],
//! which [`bertc::pipeline::PipelineOptions::validate`] checks.

use std::path::PathBuf;

use bertc::passes::WeightGranularity;
use bertc::quantize::{CalibrationMethod, Form, Precision, Skip, WeightBits, DEFAULT_MIN_COSINE};
use clap::builder::TypedValueParser;

#[derive(clap::Args)]
pub struct PrecisionArgs {
    /// The precision of the written model (default fp32): fp16 stores weights
    /// as f16 (arithmetic stays f32); int8 quantizes every linear layer, with
    /// activation scales per token at run time unless `--quantize static`. Comma-separated (e.g.
    /// fp32,int8) for an export folder with one model file per precision; the int8 options then
    /// apply to the int8 forms.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub precision: Vec<PrecisionArg>,
    /// How int8 activations are scaled: per token at run time (dynamic) or
    /// calibrated (static). Implies `--precision int8`.
    #[arg(long, value_enum)]
    pub quantize: Option<QuantizeArg>,
    /// One int8 weight scale per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Keep linear layers whose name contains PATTERN in f32 (e.g. `pooler`); repeatable. `auto`: keep
    /// the fewest, chosen by a per-layer sensitivity pass, that hold the gate's bars (--min-cosine,
    /// and --min-row-cosine when given).
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    pub quantize_skip: Vec<String>,
    /// Keep the embedding tables in f32 (by default the word embeddings are stored int8).
    #[arg(long)]
    pub no_quantize_embeddings: bool,
    /// Bits of the int8 weights of the u8 x s8 forms (--target onnxruntime, --target openvino
    /// --quantize static): 8, or 7 for x86 servers without VNNI, where onnxruntime's u8 x s8
    /// kernel saturates (its issue #6004) and 7 bits cannot.
    #[arg(
        long,
        value_name = "7|8",
        default_value_t = WeightBits::Eight,
        value_parser = clap::value_parser!(u8).range(7..=8).try_map(WeightBits::try_from)
    )]
    pub weight_bits: WeightBits,
    /// Calibration inputs: a safetensors file with every model input as [N, S], for --quantize
    /// static (the scales) or dynamic with --target onnxruntime (where per-token scales and
    /// smoothing go). Without it, generated realistic inputs are used.
    #[arg(long, value_name = "INPUTS.safetensors")]
    pub calibrate: Option<PathBuf>,
    /// How static ranges are read off the calibration values.
    #[arg(long, value_enum)]
    pub calibration_method: Option<MethodArg>,
    /// The percentile of |x| for --calibration-method percentile (default 99.99).
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Refuse to write a reduced-precision model whose outputs have a lower
    /// cosine similarity to the f32 model's.
    #[arg(long, default_value_t = DEFAULT_MIN_COSINE)]
    pub min_cosine: f64,
    /// Refuse it too when one row a pipeline reads (a real token's vector, a
    /// sequence's logits or embedding) has a lower cosine than this (e.g. 0.99); not held unless given.
    #[arg(long, value_name = "X")]
    pub min_row_cosine: Option<f64>,
    /// Quantize the attention's products too (Q·K^T and P·V int8, softmax f32): for long
    /// sequences, where they are most of the run (--target onnxruntime --quantize dynamic, or
    /// --target openvino --quantize static; -O2).
    #[arg(long)]
    pub quantize_attention: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantizeArg {
    Dynamic,
    Static,
}

impl QuantizeArg {
    fn name(self) -> &'static str {
        match self {
            QuantizeArg::Dynamic => "dynamic",
            QuantizeArg::Static => "static",
        }
    }
}

/// The precisions every command names the same way (`compile`, `optimize`,
/// `sweep`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionArg {
    Fp32,
    Fp16,
    Int8,
}

impl PrecisionArg {
    pub fn name(self) -> &'static str {
        match self {
            PrecisionArg::Fp32 => "fp32",
            PrecisionArg::Fp16 => "fp16",
            PrecisionArg::Int8 => "int8",
        }
    }

    /// How `compile --precision P` compiles, with its defaults and gate: int8
    /// is dynamic.
    pub fn precision(self) -> Precision {
        Precision::new(match self {
            PrecisionArg::Fp32 => Form::Fp32,
            PrecisionArg::Fp16 => Form::Fp16,
            PrecisionArg::Int8 => Form::Int8Dynamic,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Minmax,
    Percentile,
}

impl PrecisionArgs {
    /// The precisions asked for, in the order `--precision` lists them
    /// (one when it is not given). With several, `--quantize` and the int8
    /// options apply to the int8 form and `--min-cosine` / `--min-row-cosine` to the reduced
    /// ones; the fp32 form keeps the defaults, which the library's
    /// validation then takes for "not given".
    pub fn precisions(&self) -> anyhow::Result<Vec<Precision>> {
        let listed = &self.precision;
        if let Some(p) = listed
            .iter()
            .enumerate()
            .find_map(|(i, p)| listed[..i].contains(p).then_some(p))
        {
            anyhow::bail!("--precision lists {} twice", p.name());
        }
        if listed.len() <= 1 {
            return Ok(vec![self.precision_of(listed.first().copied(), self.quantize)?]);
        }
        let has_int8 = listed.contains(&PrecisionArg::Int8);
        if let (false, Some(q)) = (has_int8, self.quantize) {
            anyhow::bail!(
                "--quantize {} asks for int8, but --precision lists no int8",
                q.name()
            );
        }
        listed
            .iter()
            .map(|&p| {
                let mut precision = match (p, has_int8) {
                    (PrecisionArg::Int8, _) | (_, false) => self.precision_of(Some(p), self.quantize)?,
                    // The int8 options are the int8 form's.
                    (_, true) => Precision {
                        min_cosine: self.min_cosine,
                        min_row_cosine: self.min_row_cosine,
                        ..p.precision()
                    },
                };
                if p == PrecisionArg::Fp32 {
                    precision.min_cosine = DEFAULT_MIN_COSINE;
                    precision.min_row_cosine = None;
                }
                Ok(precision)
            })
            .collect()
    }

    /// The precision `precision` with `quantize`. Only what two flags spell
    /// together is decided here — `--precision` with `--quantize`,
    /// `--quantize static` with `--calibration-method` and `--percentile` —
    /// every other rule is the library's one validation.
    fn precision_of(
        &self,
        precision: Option<PrecisionArg>,
        quantize: Option<QuantizeArg>,
    ) -> anyhow::Result<Precision> {
        let is_static = quantize == Some(QuantizeArg::Static);
        if !is_static && self.calibration_method.is_some() {
            anyhow::bail!("--calibration-method applies only to --quantize static");
        }
        if self.percentile.is_some() && self.calibration_method != Some(MethodArg::Percentile) {
            anyhow::bail!("--percentile applies only to --calibration-method percentile");
        }
        let form = match (precision, quantize) {
            (Some(p @ (PrecisionArg::Fp32 | PrecisionArg::Fp16)), Some(q)) => anyhow::bail!(
                "--quantize {} asks for int8, but --precision is {} (drop one of them)",
                q.name(),
                p.name()
            ),
            (_, Some(QuantizeArg::Static)) => Form::Int8Static(match self.calibration_method {
                Some(MethodArg::Percentile) => {
                    CalibrationMethod::Percentile(self.percentile.unwrap_or(99.99))
                }
                Some(MethodArg::Minmax) | None => CalibrationMethod::MinMax,
            }),
            (Some(p), _) => p.precision().form,
            (None, Some(QuantizeArg::Dynamic)) => Form::Int8Dynamic,
            (None, None) => Form::Fp32,
        };
        Ok(Precision {
            form,
            weights: match self.per_tensor {
                true => WeightGranularity::PerTensor,
                false => WeightGranularity::PerChannel,
            },
            weight_bits: self.weight_bits,
            skip: Skip::from_patterns(self.quantize_skip.clone()),
            embeddings: !self.no_quantize_embeddings,
            calibrate: self.calibrate.clone(),
            min_cosine: self.min_cosine,
            min_row_cosine: self.min_row_cosine,
            attention: self.quantize_attention,
        })
    }
}
