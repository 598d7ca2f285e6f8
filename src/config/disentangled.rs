//! DeBERTa's config fields (`DebertaConfig`, `DebertaV2Config`): the
//! disentangled attention's switches, the ConvLayer's, the ContextPooler's
//! activation and the masked-LM head's layout, read into one
//! [`DisentangledAttention`] that serializes in a form this reader reads
//! back (the metadata's config).

use serde::Serialize;

use super::fields::{invalid, Fields};
use super::{activation, Activation, ConfigError};

/// What DeBERTa's config says beyond BERT's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisentangledAttention {
    /// Whether the layers add the relative terms at all (`relative_attention`,
    /// false by default; every published checkpoint sets it).
    pub relative_attention: bool,
    /// The terms, in the file's order: `c2p` (content to position) and/or
    /// `p2c`. The hub's configs often spell the list `"p2c|c2p"`.
    pub pos_att_type: Vec<String>,
    /// As the file gives it: < 1 means `max_position_embeddings`.
    pub max_relative_positions: i64,
    /// Log buckets when > 0 (v2 only; -1 otherwise).
    pub position_buckets: i64,
    /// Whether the table is projected by the layer's own query and key
    /// Linears (v2 only).
    pub share_att_key: bool,
    /// `"layer_norm"` when the table is normed before use, else `"none"`.
    pub norm_rel_ebd: String,
    /// Whether the embeddings add absolute positions.
    pub position_biased_input: bool,
    /// v2's ConvLayer: its kernel (0: none) and activation.
    pub conv_kernel_size: usize,
    pub conv_act: Activation,
    /// The ContextPooler's activation.
    pub pooler_hidden_act: Activation,
    /// The masked-LM head's layout: `cls.predictions` (true) or `lm_predictions`.
    pub legacy: bool,
}

impl DisentangledAttention {
    pub fn c2p(&self) -> bool {
        self.pos_att_type.iter().any(|t| t == "c2p")
    }

    pub fn p2c(&self) -> bool {
        self.pos_att_type.iter().any(|t| t == "p2c")
    }

    /// The divisor of every score is √(head_size · this): one for the
    /// content term and one per relative term, whether or not
    /// `relative_attention` adds them (transformers counts `pos_att_type`).
    pub fn scale_factor(&self) -> usize {
        1 + usize::from(self.c2p()) + usize::from(self.p2c())
    }

    /// Whether the table is layer-normed before its projections.
    pub fn normed_table(&self) -> bool {
        self.norm_rel_ebd.split('|').any(|x| x.trim() == "layer_norm")
    }

    /// The distances the table spans each way (`max_relative_positions`, or
    /// `max_position_embeddings` when that is < 1): the log buckets' range.
    pub fn max_relative(&self, max_position_embeddings: usize) -> usize {
        match self.max_relative_positions {
            n if n >= 1 => n as usize,
            _ => max_position_embeddings,
        }
    }

    /// The attention span: the table has 2 · span rows, and relative
    /// positions are clamped to −span … span − 1 (`position_buckets`, or the
    /// maximum relative distance without buckets).
    pub fn span(&self, max_position_embeddings: usize) -> usize {
        match self.position_buckets {
            n if n > 0 => n as usize,
            _ => self.max_relative(max_position_embeddings),
        }
    }
}

/// DeBERTa's fields; `v2` says whether the v2-only ones (buckets, shared
/// keys, the ConvLayer) are read — DebertaConfig has none of them.
pub(super) fn read(f: &Fields, v2: bool, hidden_size: usize) -> Result<DisentangledAttention, ConfigError> {
    let pos_att_type = pos_att_type(f)?;
    let max_relative_positions = f.int_or_null("max_relative_positions", Some(-1))?.unwrap_or(-1);
    let position_buckets = match v2 {
        true => f.int_or_null("position_buckets", Some(-1))?.unwrap_or(-1),
        false => -1,
    };
    let norm_rel_ebd = match v2 {
        true => f
            .string("norm_rel_ebd")?
            .unwrap_or_else(|| "none".into())
            .to_lowercase(),
        false => "none".into(),
    };
    let conv_kernel_size = match v2 {
        true => f.non_negative("conv_kernel_size")?,
        false => 0,
    };
    if conv_kernel_size > 0 && conv_kernel_size.is_multiple_of(2) {
        return Err(invalid(
            "conv_kernel_size",
            &conv_kernel_size.to_string(),
            "must be odd: an even kernel's padding (k − 1) / 2 shortens the sequence",
        ));
    }
    if v2 && f.int_or_null("conv_groups", Some(1))? != Some(1) {
        return Err(ConfigError::Unsupported {
            field: "conv_groups",
            value: f.0["conv_groups"].to_string(),
            what: "a grouped ConvLayer",
        });
    }
    if !v2 && f.bool("talking_head")?.unwrap_or(false) {
        return Err(ConfigError::Unsupported {
            field: "talking_head",
            value: "true".into(),
            what: "talking-head attention",
        });
    }
    if let Some(size) = f.int_or_null("attention_head_size", None)? {
        let heads = f.positive("num_attention_heads", 12)?;
        if size as usize != hidden_size / heads {
            return Err(ConfigError::Unsupported {
                field: "attention_head_size",
                value: size.to_string(),
                what: "an attention_head_size other than hidden_size / num_attention_heads",
            });
        }
    }
    if let Some(size) = f.int_or_null("pooler_hidden_size", None)? {
        if size != hidden_size as i64 {
            return Err(ConfigError::Unsupported {
                field: "pooler_hidden_size",
                value: size.to_string(),
                what: "a ContextPooler wider or narrower than hidden_size",
            });
        }
    }
    Ok(DisentangledAttention {
        relative_attention: f.bool("relative_attention")?.unwrap_or(false),
        pos_att_type,
        max_relative_positions,
        position_buckets,
        share_att_key: v2 && f.bool("share_att_key")?.unwrap_or(false),
        norm_rel_ebd,
        position_biased_input: f.bool("position_biased_input")?.unwrap_or(true),
        conv_kernel_size,
        conv_act: match f.string("conv_act")? {
            Some(_) => activation(f, "conv_act")?,
            None => Activation::Tanh,
        },
        pooler_hidden_act: activation(f, "pooler_hidden_act")?,
        legacy: f.bool("legacy")?.unwrap_or(true),
    })
}

/// `pos_att_type`: a list, or the hub's `"p2c|c2p"`; each `c2p` or `p2c`.
fn pos_att_type(f: &Fields) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = match f.0.get("pos_att_type").filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s
            .to_lowercase()
            .split('|')
            .map(|x| x.trim().to_string())
            .collect(),
        Some(_) => f.strings("pos_att_type")?,
    };
    for n in &names {
        if n != "c2p" && n != "p2c" {
            return Err(invalid(
                "pos_att_type",
                n,
                "each must be \"c2p\" or \"p2c\" (a list, or one string joined by |)",
            ));
        }
    }
    Ok(names)
}
