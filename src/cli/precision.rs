//! `--quantize` / `--precision` and their accuracy report, shared by
//! `compile` and `optimize`.

use std::path::PathBuf;

use bertc::ir::Graph;
use bertc::passes::WeightGranularity;
use bertc::quantize::{
    accuracy_report, apply, calibration_batches, CalibrationMethod, Precision, PrecisionOptions,
    DEFAULT_MIN_COSINE,
};

#[derive(clap::Args)]
pub struct PrecisionArgs {
    /// Quantize linear layers to int8: activation scales per token at run
    /// time (dynamic) or calibrated per tensor (static).
    #[arg(long, value_enum)]
    pub quantize: Option<QuantizeArg>,
    /// Store weights as f16 (arithmetic stays f32).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32, conflicts_with = "quantize")]
    pub precision: PrecisionArg,
    /// One int8 weight scale per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Keep linear layers whose name contains PATTERN in f32 (e.g. `pooler`); repeatable.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    pub quantize_skip: Vec<String>,
    /// Keep the embedding tables in f32 (by default the word embeddings are stored int8).
    #[arg(long)]
    pub no_quantize_embeddings: bool,
    /// Calibration inputs for --quantize static: a safetensors file with every model input as [N, S].
    /// Without it, generated realistic inputs are used.
    #[arg(long, value_name = "INPUTS.safetensors")]
    pub calibrate: Option<PathBuf>,
    /// How static ranges are read off the calibration values.
    #[arg(long, value_enum, default_value_t = MethodArg::Minmax)]
    pub calibration_method: MethodArg,
    /// The percentile of |x| for --calibration-method percentile.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Refuse to write a reduced-precision model whose outputs have a lower
    /// cosine similarity to the f32 model's.
    #[arg(long, default_value_t = DEFAULT_MIN_COSINE)]
    pub min_cosine: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum QuantizeArg {
    Dynamic,
    Static,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Fp16,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    Minmax,
    Percentile,
}

impl PrecisionArgs {
    pub fn requested(&self) -> bool {
        self.quantize.is_some() || self.precision == PrecisionArg::Fp16
    }

    /// Rewrites `g` to the requested precision and prints the accuracy
    /// report against the f32 graph; fails below --min-cosine unless
    /// `gate` is off (--no-check). Returns the pass runs.
    pub fn apply(
        &self,
        g: &mut Graph,
        gate: bool,
        target: bertc::passes::Target,
    ) -> anyhow::Result<Vec<bertc::passes::PassRun>> {
        if !self.requested() {
            return Ok(vec![]);
        }
        if !(0.0..=1.0).contains(&self.min_cosine) {
            anyhow::bail!("--min-cosine must be within 0 and 1, got {}", self.min_cosine);
        }
        if !(0.0 < self.percentile && self.percentile <= 100.0) {
            anyhow::bail!("--percentile must be within (0, 100], got {}", self.percentile);
        }
        // Generated inputs stay within the model's position tables.
        let longest = bertc::check::max_sequence(g);
        let cap = |seq: usize| longest.map_or(seq, |m| seq.min(m));
        let precision = match (self.quantize, self.precision) {
            (Some(QuantizeArg::Dynamic), _) => Precision::Int8Dynamic,
            (Some(QuantizeArg::Static), _) => Precision::Int8Static {
                batches: calibration_batches(g, self.calibrate.as_deref(), 4, cap(128), 8)?,
                method: match self.calibration_method {
                    MethodArg::Minmax => CalibrationMethod::MinMax,
                    MethodArg::Percentile => CalibrationMethod::Percentile(self.percentile),
                },
            },
            (None, _) => Precision::Fp16,
        };
        let opts = PrecisionOptions {
            precision,
            weights: match self.per_tensor {
                true => WeightGranularity::PerTensor,
                false => WeightGranularity::PerChannel,
            },
            skip: self.quantize_skip.clone(),
            embeddings: !self.no_quantize_embeddings,
            target,
        };
        let reference = g.clone();
        let runs = apply(g, &opts)?;
        // Validation inputs distinct from the generated calibration batches.
        let validation: Vec<_> = (0..2)
            .map(|seed| bertc::check::inputs_for_seed(&reference, 4, cap(64), seed))
            .collect();
        let report = accuracy_report(&reference, g, &validation)?;
        for o in &report.outputs {
            println!(
                "  accuracy    {:<20} cosine {:.5} (worst row {:.5})  max-abs {:.2e} vs f32 (min cosine {})",
                o.name, o.cosine, o.min_row_cosine, o.max_abs, self.min_cosine
            );
        }
        if gate {
            report.require(self.min_cosine)?;
        }
        Ok(runs)
    }
}
