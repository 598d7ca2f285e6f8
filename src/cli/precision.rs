//! `--quantize` / `--precision` and their options, shared by `compile` and
//! `optimize`: parsed here into the library's [`ReducedPrecision`].

use std::path::PathBuf;

use bertc::passes::WeightGranularity;
use bertc::pipeline::{ReducedKind, ReducedPrecision};
use bertc::quantize::{CalibrationMethod, DEFAULT_MIN_COSINE};

#[derive(clap::Args)]
pub struct PrecisionArgs {
    /// Quantize linear layers to int8: activation scales per token at run
    /// time (dynamic) or calibrated (static).
    #[arg(long, value_enum)]
    pub quantize: Option<QuantizeArg>,
    /// Store weights as f16 (arithmetic stays f32); int8 is `--quantize`.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32, conflicts_with = "quantize")]
    pub precision: PrecisionArg,
    /// One int8 weight scale per tensor instead of per output channel.
    #[arg(long, requires = "quantize")]
    pub per_tensor: bool,
    /// Keep linear layers whose name contains PATTERN in f32 (e.g. `pooler`); repeatable. `auto`: keep the fewest, chosen by a per-layer sensitivity pass, that hold the 0.99 cosine bar.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',', requires = "quantize")]
    pub quantize_skip: Vec<String>,
    /// Keep the embedding tables in f32 (by default the word embeddings are stored int8).
    #[arg(long, requires = "quantize")]
    pub no_quantize_embeddings: bool,
    /// Calibration inputs for --quantize static: a safetensors file with every model input as [N, S].
    /// Without it, generated realistic inputs are used.
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Fp16,
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
        if !is_static {
            if self.calibrate.is_some() {
                anyhow::bail!(
                    "--calibrate applies only to --quantize static (dynamic int8 needs no calibration)"
                );
            }
            if self.calibration_method.is_some() {
                anyhow::bail!("--calibration-method applies only to --quantize static");
            }
        }
        if self.percentile.is_some() && self.calibration_method != Some(MethodArg::Percentile) {
            anyhow::bail!("--percentile applies only to --calibration-method percentile");
        }
        let kind = match (self.quantize, self.precision) {
            (Some(QuantizeArg::Dynamic), _) => ReducedKind::Int8Dynamic,
            (Some(QuantizeArg::Static), _) => ReducedKind::Int8Static {
                calibrate: self.calibrate.clone(),
                method: match self.calibration_method {
                    Some(MethodArg::Percentile) => {
                        CalibrationMethod::Percentile(self.percentile.unwrap_or(99.99))
                    }
                    _ => CalibrationMethod::MinMax,
                },
            },
            (None, PrecisionArg::Fp16) => ReducedKind::Fp16,
            (None, PrecisionArg::Fp32) => {
                if self.min_cosine != DEFAULT_MIN_COSINE {
                    anyhow::bail!("--min-cosine applies only with --quantize or --precision fp16");
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
            min_cosine: self.min_cosine,
        }))
    }
}
