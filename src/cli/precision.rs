//! `--quantize` / `--precision` and their options, shared by `compile` and
//! `optimize`: parsed here into the library's [`ReducedPrecision`].

use std::path::PathBuf;

use bertc::passes::WeightGranularity;
use bertc::pipeline::{ReducedKind, ReducedPrecision};
use bertc::quantize::{CalibrationMethod, DEFAULT_MIN_COSINE};

#[derive(clap::Args)]
pub struct PrecisionArgs {
    /// The precision of the written model (default fp32): fp16 stores weights
    /// as f16 (arithmetic stays f32); int8 quantizes every linear layer, with
    /// activation scales per token at run time unless `--quantize static`.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// How int8 activations are scaled: per token at run time (dynamic) or
    /// calibrated (static). Implies `--precision int8`.
    #[arg(long, value_enum)]
    pub quantize: Option<QuantizeArg>,
    /// One int8 weight scale per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Keep linear layers whose name contains PATTERN in f32 (e.g. `pooler`); repeatable. `auto`: keep
    /// the fewest, chosen by a per-layer sensitivity pass, that hold the 0.99 cosine bar.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    pub quantize_skip: Vec<String>,
    /// Keep the embedding tables in f32 (by default the word embeddings are stored int8).
    #[arg(long)]
    pub no_quantize_embeddings: bool,
    /// Bits of the int8 weights of the u8 x s8 forms (--target onnxruntime, --target openvino
    /// --quantize static): 8, or 7 for x86 servers without VNNI, where onnxruntime's u8 x s8
    /// kernel saturates (its issue #6004) and 7 bits cannot.
    #[arg(long, value_name = "7|8", default_value_t = 8, value_parser = clap::value_parser!(u8).range(7..=8))]
    pub weight_bits: u8,
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
    pub fn reduced(self) -> Option<ReducedPrecision> {
        match self {
            PrecisionArg::Fp32 => None,
            PrecisionArg::Fp16 => Some(ReducedPrecision::new(ReducedKind::Fp16)),
            PrecisionArg::Int8 => Some(ReducedPrecision::new(ReducedKind::Int8Dynamic {
                calibrate: None,
            })),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Minmax,
    Percentile,
}

impl PrecisionArgs {
    /// The reduced precision asked for, if any; refuses options that only
    /// mean something with another one (they would be silently ignored).
    pub fn reduced(&self) -> anyhow::Result<Option<ReducedPrecision>> {
        let is_static = self.quantize == Some(QuantizeArg::Static);
        if !is_static && self.calibration_method.is_some() {
            anyhow::bail!("--calibration-method applies only to --quantize static");
        }
        if self.percentile.is_some() && self.calibration_method != Some(MethodArg::Percentile) {
            anyhow::bail!("--percentile applies only to --calibration-method percentile");
        }
        let precision = match (self.precision, self.quantize) {
            (Some(p @ (PrecisionArg::Fp32 | PrecisionArg::Fp16)), Some(q)) => anyhow::bail!(
                "--quantize {} asks for int8, but --precision is {} (drop one of them)",
                q.name(),
                p.name()
            ),
            (Some(p), _) => p,
            (None, Some(_)) => PrecisionArg::Int8,
            (None, None) => PrecisionArg::Fp32,
        };
        if precision != PrecisionArg::Int8 {
            if self.calibrate.is_some() {
                anyhow::bail!(
                    "--calibrate applies only to int8: --quantize static, or dynamic with --target onnxruntime"
                );
            }
            for (given, flag) in [
                (self.weight_bits != 8, "--weight-bits"),
                (self.per_tensor, "--per-tensor"),
                (!self.quantize_skip.is_empty(), "--quantize-skip"),
                (self.no_quantize_embeddings, "--no-quantize-embeddings"),
            ] {
                if given {
                    anyhow::bail!(
                        "{flag} applies only to int8 (--precision int8 or --quantize), not {}",
                        precision.name()
                    );
                }
            }
        }
        let kind = match (precision, self.quantize) {
            (PrecisionArg::Int8, Some(QuantizeArg::Static)) => ReducedKind::Int8Static {
                calibrate: self.calibrate.clone(),
                method: match self.calibration_method {
                    Some(MethodArg::Percentile) => {
                        CalibrationMethod::Percentile(self.percentile.unwrap_or(99.99))
                    }
                    _ => CalibrationMethod::MinMax,
                },
            },
            (PrecisionArg::Int8, _) => ReducedKind::Int8Dynamic {
                calibrate: self.calibrate.clone(),
            },
            (PrecisionArg::Fp16, _) => ReducedKind::Fp16,
            (PrecisionArg::Fp32, _) => {
                if self.min_cosine != DEFAULT_MIN_COSINE {
                    anyhow::bail!("--min-cosine applies only to --precision fp16 or int8");
                }
                return Ok(None);
            }
        };
        Ok(Some(ReducedPrecision {
            kind,
            weights: match self.per_tensor {
                true => WeightGranularity::PerTensor,
                false => WeightGranularity::PerChannel,
            },
            skip: self.quantize_skip.clone(),
            embeddings: !self.no_quantize_embeddings,
            weight_bits: self.weight_bits,
            min_cosine: self.min_cosine,
        }))
    }
}
