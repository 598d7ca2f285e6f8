//! A family's config fields: its row's [`ConfigAdapter`] applied to the
//! raw `config.json` (BERT's field names, the family's defaults), errors
//! named back as the family's file spells the field, and the rules the
//! family-only fields must satisfy.

use crate::family::{ConfigAdapter, ConfigValue, Family, LayerPath, Positions, MPNET_BUCKETS};

use super::{BertConfig, ConfigError, MAX_LAYERS};

type RawFields = serde_json::Map<String, serde_json::Value>;

/// The config adapter: reads `model_type`, rewrites the family's field
/// names to BERT's and fills the family's defaults, in place. A
/// `model_type` bertc does not build is refused by name.
pub(super) fn adapt_fields(fields: &mut RawFields) -> Result<Family, ConfigError> {
    let family = match fields.get("model_type").filter(|v| !v.is_null()) {
        None => Family::Bert,
        Some(serde_json::Value::String(t)) => {
            Family::from_model_type(t).ok_or_else(|| ConfigError::Invalid {
                field: "model_type",
                value: t.clone(),
                rule: format!(
                    "must be one of {}",
                    Family::ALL.map(|f| format!("\"{}\"", f.model_type())).join(", ")
                ),
            })?
        }
        Some(other) => {
            return Err(ConfigError::Invalid {
                field: "model_type",
                value: other.to_string(),
                rule: "must be a string".into(),
            })
        }
    };
    let adapter: &ConfigAdapter = &family.spec().config;
    for (from, to) in adapter.renames {
        if let Some(v) = fields.remove(*from) {
            fields.insert(to.to_string(), v);
        }
    }
    for (field, value) in adapter.fixed {
        fields.insert(field.to_string(), json(*value));
    }
    for field in adapter.dropped {
        fields.remove(*field);
    }
    for (field, value) in adapter.defaults {
        if fields.get(*field).is_none_or(|v| v.is_null()) {
            fields.insert(field.to_string(), json(*value));
        }
    }
    Ok(family)
}

fn json(value: ConfigValue) -> serde_json::Value {
    match value {
        ConfigValue::Int(n) => n.into(),
        ConfigValue::Float(x) => x.into(),
        ConfigValue::Str(s) => s.into(),
    }
}

/// An error about a renamed field, named as the family's file spells it:
/// DistilBERT's `dim = 0` is reported against `dim`, not `hidden_size`.
pub(super) fn in_family_terms(e: ConfigError, family: Family) -> ConfigError {
    let renames = family.spec().config.renames;
    let original = |field: &'static str| {
        renames
            .iter()
            .find(|(_, to)| *to == field)
            .map_or(field, |(from, _)| *from)
    };
    match e {
        ConfigError::Invalid { field, value, rule } => ConfigError::Invalid {
            field: original(field),
            value,
            rule,
        },
        ConfigError::TooBig {
            field,
            value,
            parameters,
        } => ConfigError::TooBig {
            field: original(field),
            value,
            parameters,
        },
        other => other,
    }
}

/// The rules the family fields must satisfy, each naming its field.
pub(super) fn check_family_rules(c: &BertConfig) -> Result<(), ConfigError> {
    let invalid =
        |field: &'static str, value: String, rule: String| ConfigError::Invalid { field, value, rule };
    let spec = c.family.spec();
    if let Some(e) = c.embedding_size {
        // Wider embeddings than the encoder exist in no checkpoint, and the
        // parameter bound counts the tables at the hidden size.
        if e > c.hidden_size {
            return Err(invalid(
                "embedding_size",
                e.to_string(),
                format!("must be at most hidden_size ({})", c.hidden_size),
            ));
        }
    }
    match spec.layers.path {
        LayerPath::Indexed(_) => {}
        LayerPath::SharedGroups(_) => {
            let groups = c.num_hidden_groups.unwrap_or(1);
            if groups == 0 || !c.num_hidden_layers.is_multiple_of(groups) {
                return Err(invalid(
                    "num_hidden_groups",
                    groups.to_string(),
                    format!(
                        "must be > 0 and divide num_hidden_layers ({})",
                        c.num_hidden_layers
                    ),
                ));
            }
            let inner = c.inner_group_num.unwrap_or(1);
            if inner == 0 || inner.saturating_mul(c.num_hidden_layers) > MAX_LAYERS {
                return Err(invalid(
                    "inner_group_num",
                    inner.to_string(),
                    format!("must be > 0, with inner_group_num × num_hidden_layers ≤ {MAX_LAYERS}"),
                ));
            }
        }
    }
    if let Some(b) = c.relative_attention_num_buckets {
        // transformers buckets into 32 whatever the table's size.
        if !(MPNET_BUCKETS..=1 << 16).contains(&b) {
            return Err(invalid(
                "relative_attention_num_buckets",
                b.to_string(),
                format!(
                    "must be in {MPNET_BUCKETS}..=65536: transformers' MPNet buckets distances into \
                     {MPNET_BUCKETS} rows of the table"
                ),
            ));
        }
    }
    match spec.positions {
        Positions::Sequential => {}
        Positions::FromPadding => {
            let pad = c.pad_token_id.ok_or_else(|| {
                invalid(
                    "pad_token_id",
                    "null".into(),
                    "must be set: position ids count from pad_token_id + 1".into(),
                )
            })?;
            if pad as usize + 2 > c.max_position_embeddings {
                return Err(invalid(
                    "max_position_embeddings",
                    c.max_position_embeddings.to_string(),
                    format!(
                        "must exceed pad_token_id + 1 = {}: positions start there",
                        pad + 1
                    ),
                ));
            }
        }
    }
    Ok(())
}
