//! A family's config fields: its row's [`ConfigAdapter`] applied to the
//! raw `config.json` (BERT's field names, the family's defaults), errors
//! named back as the family's file spells the field, and the rules the
//! family-only fields must satisfy.

use super::fields::Fields;
use super::{BertConfig, ConfigError, MAX_LAYERS};
use crate::family::{ConfigAdapter, ConfigValue, Family, LayerPath, Positions, MPNET_BUCKETS};

/// The farthest relative distance DeBERTa's configs may set (span or log
/// range): the graph holds a lookup entry per distance each way.
const MAX_RELATIVE_DISTANCE: usize = 1 << 16;

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
    check_required(fields, adapter)?;
    lift_rope_parameters(fields);
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

/// The adapter's `required` switches: each absent, null or at its one
/// value (numbers compared as numbers: `1` is `1.0`).
fn check_required(fields: &RawFields, adapter: &ConfigAdapter) -> Result<(), ConfigError> {
    for &(field, value, what) in adapter.required {
        let Some(given) = fields.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let expected = json(value);
        let same = match (given.as_f64(), expected.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => *given == expected,
        };
        if !same {
            return Err(ConfigError::Unsupported {
                field,
                value: given.to_string(),
                what,
            });
        }
    }
    Ok(())
}

/// transformers 5 writes RoPE's settings as one object,
/// `rope_parameters: {rope_type, rope_theta}`; 4.x wrote a flat `rope_theta`.
/// The object's fields become the flat ones (theirs win), so the family's
/// renames and defaults and the reader see one form. An object without a
/// `rope_theta` of its own (per layer type) is left as it is.
fn lift_rope_parameters(fields: &mut RawFields) {
    let Some(serde_json::Value::Object(rope)) = fields.get("rope_parameters") else {
        return;
    };
    if !rope.contains_key("rope_theta") {
        return;
    }
    let rope = rope.clone();
    for key in ["rope_theta", "rope_type"] {
        if let Some(v) = rope.get(key) {
            fields.insert(key.to_string(), v.clone());
        }
    }
}

/// GTE's remote-code `rope_scaling` (`{"type": "ntk", "factor": f}`, as
/// gte-base-en-v1.5 ships it): the factor, read as Alibaba's new-impl reads
/// it (`builder::ntk_inverse_frequencies`); absent or null is no scaling.
/// Its other forms are refused by name: another `type` (the remote code
/// raises on one), `mixed_b` (mixed NTK scaling, in no published config),
/// a factor below 1 (whose frequencies the remote code changes with the
/// sequence length).
pub(super) fn ntk_factor(f: &Fields) -> Result<Option<f64>, ConfigError> {
    let Some(scaling) = f.0.get("rope_scaling").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let refuse = |what: &'static str| ConfigError::Unsupported {
        field: "rope_scaling",
        value: scaling.to_string(),
        what,
    };
    let Some(fields) = scaling.as_object() else {
        return Err(refuse("a rope_scaling that is not an object"));
    };
    if fields.get("type").and_then(|t| t.as_str()) != Some("ntk") {
        return Err(refuse("a rotary scaling other than NTK (`type: ntk`)"));
    }
    if fields.get("mixed_b").is_some_and(|b| !b.is_null()) {
        return Err(refuse("mixed NTK rotary scaling (`mixed_b`)"));
    }
    match fields.get("factor").and_then(|v| v.as_f64()) {
        Some(factor) if factor >= 1.0 && factor.is_finite() => Ok(Some(factor)),
        _ => Err(refuse("an NTK factor that is not a finite number ≥ 1")),
    }
}

/// RoPE's base θ: the (lifted) `rope_theta`, or the family's default. Only
/// the default rope type is built (no scaling), over the whole head: a
/// `head_dim` other than hidden_size / num_attention_heads is refused.
pub(super) fn rope_theta(f: &Fields) -> Result<f64, ConfigError> {
    if let Some(kind) = f.string("rope_type")? {
        if kind != "default" {
            return Err(ConfigError::Unsupported {
                field: "rope_type",
                value: kind,
                what: "a scaled rotary embedding (rope_type other than \"default\")",
            });
        }
    }
    let theta = f.float("rope_theta")?.ok_or_else(|| ConfigError::Invalid {
        field: "rope_theta",
        value: "null".into(),
        rule: "must be set: the base of the rotary position embeddings".into(),
    })?;
    if !(theta > 1.0 && theta.is_finite()) {
        return Err(ConfigError::Invalid {
            field: "rope_theta",
            value: theta.to_string(),
            rule: "must be a finite number > 1".into(),
        });
    }
    let (hidden, heads) = (
        f.positive("hidden_size", 768)?,
        f.positive("num_attention_heads", 12)?,
    );
    if let Some(head_dim) = f.int_or_null("head_dim", None)? {
        if head_dim as usize != hidden / heads {
            return Err(ConfigError::Unsupported {
                field: "head_dim",
                value: head_dim.to_string(),
                what: "a head_dim other than hidden_size / num_attention_heads",
            });
        }
    }
    Ok(theta)
}

fn json(value: ConfigValue) -> serde_json::Value {
    match value {
        ConfigValue::Int(n) => n.into(),
        ConfigValue::Float(x) => x.into(),
        ConfigValue::Str(s) => s.into(),
        ConfigValue::Bool(b) => b.into(),
        ConfigValue::Null => serde_json::Value::Null,
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
    if let Some(kv) = c.num_key_value_heads {
        // transformers' repeat_kv gives each key/value head the same number
        // of query heads.
        if !c.num_attention_heads.is_multiple_of(kv) {
            return Err(invalid(
                "num_key_value_heads",
                kv.to_string(),
                format!("must divide num_attention_heads ({})", c.num_attention_heads),
            ));
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
    if let Some(d) = c.disentangled.as_ref().filter(|d| d.relative_attention) {
        // The graph's relative-row lookup has an entry per distance up to
        // the farther of the span and the log buckets' range, each way.
        let mpe = c.max_position_embeddings;
        let (span, range) = (d.span(mpe), d.max_relative(mpe));
        if span.max(range) > MAX_RELATIVE_DISTANCE {
            let (field, value) = match (d.position_buckets, d.max_relative_positions) {
                (b, _) if b > 0 && span > MAX_RELATIVE_DISTANCE => ("position_buckets", b.to_string()),
                (_, m) if m >= 1 => ("max_relative_positions", m.to_string()),
                _ => ("max_position_embeddings", mpe.to_string()),
            };
            return Err(invalid(
                field,
                value,
                format!(
                    "the relative distances it sets must stay within {MAX_RELATIVE_DISTANCE} \
                     (bertc's bound; DeBERTa's published configs use 512)"
                ),
            ));
        }
    }
    if let Some(d) = c.disentangled.as_ref().filter(|d| d.position_buckets > 0) {
        // The log buckets divide by ln((max − 1) / (buckets / 2)).
        let (mid, max) = (
            d.position_buckets / 2,
            d.max_relative(c.max_position_embeddings) as i64,
        );
        if mid < 1 || max - 1 <= mid {
            return Err(invalid(
                "position_buckets",
                d.position_buckets.to_string(),
                format!(
                    "must be at least 2, and half of it below the maximum relative position − 1 ({})",
                    max - 1
                ),
            ));
        }
    }
    match spec.positions {
        Positions::Sequential | Positions::SequentialWhenBiased | Positions::Rotary(_) => {}
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
