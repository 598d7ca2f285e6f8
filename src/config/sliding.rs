//! ModernBERT's alternating attention as the config gives it: which layers
//! attend globally and which within a window, and the rotary θ of each
//! kind. Two forms exist: transformers 5's `layer_types` with
//! `rope_parameters` per layer type, and the 4.x form hub checkpoints ship
//! (`global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`);
//! both are read into one [`SlidingAttention`], which serializes in a form
//! this reader reads back (the flat `rope_theta` is the global θ).

use serde::Serialize;

use super::fields::{invalid, Fields};
use super::ConfigError;

/// What a layer's queries see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerAttention {
    /// The whole sequence.
    FullAttention,
    /// Keys within `local_attention / 2` positions.
    SlidingAttention,
}

/// The global and sliding-window layers of a ModernBERT config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlidingAttention {
    /// The window's width: a key j is visible from query i when
    /// |i − j| ≤ `local_attention / 2` (integer division, as transformers).
    pub local_attention: usize,
    /// The rotary θ of the sliding layers (the global θ is `rope_theta`).
    pub local_rope_theta: f64,
    /// One entry per layer.
    pub layer_types: Vec<LayerAttention>,
}

impl SlidingAttention {
    /// The half-width of the window: keys this far from a query are seen.
    pub fn reach(&self) -> usize {
        self.local_attention / 2
    }
}

/// transformers' ModernBertConfig defaults.
const GLOBAL_EVERY: usize = 3;
const GLOBAL_THETA: f64 = 160_000.0;
const LOCAL_THETA: f64 = 10_000.0;
const LOCAL_ATTENTION: usize = 128;

/// The global θ and the sliding layers of a config of `layers` layers.
pub(super) fn read(f: &Fields, layers: usize) -> Result<(f64, SlidingAttention), ConfigError> {
    let local_attention = f.positive("local_attention", LOCAL_ATTENTION)?;
    let layer_types = match f.0.get("layer_types").filter(|v| !v.is_null()) {
        Some(_) => {
            let names = f.strings("layer_types")?;
            if names.len() != layers {
                return Err(invalid(
                    "layer_types",
                    &format!("{names:?}"),
                    &format!("must list one type per layer ({layers})"),
                ));
            }
            names
                .iter()
                .map(|n| match n.as_str() {
                    "full_attention" => Ok(LayerAttention::FullAttention),
                    "sliding_attention" => Ok(LayerAttention::SlidingAttention),
                    other => Err(invalid(
                        "layer_types",
                        other,
                        "each must be \"full_attention\" or \"sliding_attention\"",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        // Layer i is global when i % global_attn_every_n_layers == 0.
        None => {
            let every = f.positive("global_attn_every_n_layers", GLOBAL_EVERY)?;
            (0..layers)
                .map(|i| match i.is_multiple_of(every) {
                    true => LayerAttention::FullAttention,
                    false => LayerAttention::SlidingAttention,
                })
                .collect()
        }
    };
    let global = theta(
        f,
        "full_attention",
        &["global_rope_theta", "rope_theta"],
        GLOBAL_THETA,
    )?;
    let local = theta(f, "sliding_attention", &["local_rope_theta"], LOCAL_THETA)?;
    let sliding = SlidingAttention {
        local_attention,
        local_rope_theta: local,
        layer_types,
    };
    Ok((global, sliding))
}

/// The θ of one layer type: `rope_parameters[kind].rope_theta` (5.x), else
/// the first of the flat `fields` given (4.x), else transformers' default.
fn theta(f: &Fields, kind: &str, flat: &[&'static str], default: f64) -> Result<f64, ConfigError> {
    let per_type =
        f.0.get("rope_parameters")
            .and_then(|r| r.get(kind))
            .filter(|v| !v.is_null());
    let value = match per_type {
        Some(params) => {
            let kind_of = params
                .get("rope_type")
                .and_then(|t| t.as_str())
                .unwrap_or("default");
            if kind_of != "default" {
                return Err(ConfigError::Unsupported {
                    field: "rope_parameters",
                    value: params.to_string(),
                    what: "a scaled rotary embedding (rope_type other than \"default\")",
                });
            }
            params.get("rope_theta").and_then(|t| t.as_f64()).ok_or_else(|| {
                invalid(
                    "rope_parameters",
                    &params.to_string(),
                    "needs a numeric rope_theta",
                )
            })?
        }
        None => {
            let mut found = None;
            for field in flat {
                if let Some(v) = f.float(field)? {
                    found = Some(v);
                    break;
                }
            }
            found.unwrap_or(default)
        }
    };
    if !(value > 1.0 && value.is_finite()) {
        return Err(invalid(
            "rope_parameters",
            &value.to_string(),
            &format!("the {kind} rope_theta must be a finite number > 1"),
        ));
    }
    Ok(value)
}
