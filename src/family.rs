//! BERT's relatives — RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT, ELECTRA,
//! ALBERT, MPNet — as one builder with switches, not one builder each.
//!
//! Each family differs from BERT in a few precise places, and this module
//! holds all of them as data:
//! - the **config adapter** ([`adapt_fields`]): a family's `config.json`
//!   (DistilBERT's `dim`, `n_layers`, …) becomes BERT's field names, with the
//!   family's own transformers defaults filled in, so the one validated
//!   [`crate::config::BertConfig`] describes every family;
//! - the **weight-name map** ([`Family::param_name`]): the builder asks for
//!   BERT's canonical names (`encoder.layer.3.attention.self.query.weight`)
//!   and gets the family's (`transformer.layer.3.attention.q_lin.weight`,
//!   or ALBERT's shared `encoder.albert_layer_groups.0.albert_layers.0.…`);
//! - the **structural switches** the builder reads: token types, how
//!   position ids are made, which pooler and heads exist.

use serde::Serialize;

use crate::config::{BertConfig, ConfigError};
use crate::head::Head;

/// A model family: one `model_type` (or several spellings of one graph).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum Family {
    #[default]
    Bert,
    Roberta,
    XlmRoberta,
    /// CamemBERT is RoBERTa under another name.
    Camembert,
    DistilBert,
    Electra,
    Albert,
    MpNet,
}

/// How position ids are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// 0..S, a slice of the `position_ids` buffer (BERT).
    Sequential,
    /// `pad_token_id + 1 + cumsum(ids ≠ pad)` over the real tokens,
    /// `pad_token_id` on padding (RoBERTa's
    /// `create_position_ids_from_input_ids`): left padding shifts nothing.
    FromPadding,
}

/// (model_type, family) for every spelling transformers uses.
const MODEL_TYPES: [(&str, Family); 8] = [
    ("bert", Family::Bert),
    ("roberta", Family::Roberta),
    ("xlm-roberta", Family::XlmRoberta),
    ("camembert", Family::Camembert),
    ("distilbert", Family::DistilBert),
    ("electra", Family::Electra),
    ("albert", Family::Albert),
    ("mpnet", Family::MpNet),
];

impl Family {
    pub const ALL: [Family; 8] = [
        Family::Bert,
        Family::Roberta,
        Family::XlmRoberta,
        Family::Camembert,
        Family::DistilBert,
        Family::Electra,
        Family::Albert,
        Family::MpNet,
    ];

    pub fn from_model_type(model_type: &str) -> Option<Family> {
        MODEL_TYPES
            .iter()
            .find(|(name, _)| *name == model_type)
            .map(|&(_, f)| f)
    }

    /// transformers' `model_type`.
    pub fn model_type(self) -> &'static str {
        MODEL_TYPES
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(name, _)| *name)
            .expect("every family has a model_type")
    }

    /// The attribute a `*For*` class keeps the encoder under: its
    /// checkpoints' weight-name prefix (XLM-R and CamemBERT reuse RoBERTa's).
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta | Family::Camembert => "roberta",
            Family::DistilBert => "distilbert",
            Family::Electra => "electra",
            Family::Albert => "albert",
            Family::MpNet => "mpnet",
        }
    }

    /// The class-name stem of its architectures (`RobertaModel`, …).
    fn class_stem(self) -> &'static str {
        match self {
            Family::Bert => "Bert",
            Family::Roberta => "Roberta",
            Family::XlmRoberta => "XLMRoberta",
            Family::Camembert => "Camembert",
            Family::DistilBert => "DistilBert",
            Family::Electra => "Electra",
            Family::Albert => "Albert",
            Family::MpNet => "MPNet",
        }
    }

    /// The head each architecture of this family means.
    pub fn architectures(self) -> Vec<(String, Head)> {
        let stem = self.class_stem();
        [
            ("Model", Head::Base),
            ("ForSequenceClassification", Head::SequenceClassification),
            ("ForTokenClassification", Head::TokenClassification),
            ("ForQuestionAnswering", Head::QuestionAnswering),
            ("ForMaskedLM", Head::MaskedLm),
        ]
        .into_iter()
        .map(|(suffix, head)| (format!("{stem}{suffix}"), head))
        .collect()
    }

    /// The head a config's `architectures` asks for, among this family's
    /// classes (`RobertaForMaskedLM`, …); no architectures at all is the
    /// base model.
    pub fn head_for(self, architectures: &[String]) -> Result<Head, UnknownArchitecture> {
        let Some(first) = architectures.first() else {
            return Ok(Head::Base);
        };
        let known = self.architectures();
        known
            .iter()
            .find(|(name, _)| name == first)
            .map(|&(_, head)| head)
            .ok_or_else(|| UnknownArchitecture {
                found: architectures.to_vec(),
                known: known
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether the model reads `token_type_ids` (Optimum gives the input
    /// only to these). RoBERTa's one-row table is added as a constant row.
    pub fn has_token_types(self) -> bool {
        matches!(self, Family::Bert | Family::Electra | Family::Albert)
    }

    /// Whether the embeddings hold a token-type table at all.
    pub fn has_token_type_table(self) -> bool {
        !matches!(self, Family::DistilBert | Family::MpNet)
    }

    pub fn positions(self) -> Positions {
        match self {
            Family::Roberta | Family::XlmRoberta | Family::Camembert | Family::MpNet => {
                Positions::FromPadding
            }
            _ => Positions::Sequential,
        }
    }

    /// Whether transformers builds a pooler for `head`: BERT and ALBERT
    /// classify from it; RoBERTa and MPNet have one only in the bare model
    /// (their classifiers read the first token themselves); DistilBERT and
    /// ELECTRA have none.
    pub fn pooler_for(self, head: Head) -> bool {
        match self {
            Family::Bert | Family::Albert => head.uses_pooler(),
            Family::Roberta | Family::XlmRoberta | Family::Camembert | Family::MpNet => head == Head::Base,
            Family::DistilBert | Family::Electra => false,
        }
    }

    /// The pooler's Linear (ALBERT's is a bare `pooler`).
    pub fn pooler_linear(self) -> &'static str {
        match self {
            Family::Albert => "pooler",
            _ => "pooler.dense",
        }
    }

    /// Renames within one encoder layer, BERT's canonical suffix → the
    /// family's (longest first where one is a prefix of another).
    fn layer_renames(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Family::DistilBert => &[
                ("attention.self.query", "attention.q_lin"),
                ("attention.self.key", "attention.k_lin"),
                ("attention.self.value", "attention.v_lin"),
                ("attention.output.dense", "attention.out_lin"),
                ("attention.output.LayerNorm", "sa_layer_norm"),
                ("intermediate.dense", "ffn.lin1"),
                ("output.dense", "ffn.lin2"),
                ("output.LayerNorm", "output_layer_norm"),
            ],
            Family::Albert => &[
                ("attention.self.query", "attention.query"),
                ("attention.self.key", "attention.key"),
                ("attention.self.value", "attention.value"),
                ("attention.output.dense", "attention.dense"),
                ("attention.output.LayerNorm", "attention.LayerNorm"),
                ("intermediate.dense", "ffn"),
                ("output.dense", "ffn_output"),
                ("output.LayerNorm", "full_layer_layer_norm"),
            ],
            Family::MpNet => &[
                ("attention.self.query", "attention.attn.q"),
                ("attention.self.key", "attention.attn.k"),
                ("attention.self.value", "attention.attn.v"),
                ("attention.output.dense", "attention.attn.o"),
                ("attention.output.LayerNorm", "attention.LayerNorm"),
            ],
            _ => &[],
        }
    }

    /// The family's name of a parameter the builder names as BERT does.
    /// ALBERT maps every layer onto its shared group's layer, so several
    /// canonical names give one stored tensor.
    pub fn param_name(self, canonical: &str, c: &BertConfig) -> String {
        let Some(rest) = canonical.strip_prefix("encoder.layer.") else {
            return canonical.to_string();
        };
        let Some((index, suffix)) = rest.split_once('.') else {
            return canonical.to_string();
        };
        let Ok(i) = index.parse::<usize>() else {
            return canonical.to_string();
        };
        let suffix = self
            .layer_renames()
            .iter()
            .find_map(|(from, to)| {
                let tail = suffix.strip_prefix(from)?;
                (tail.is_empty() || tail.starts_with('.')).then(|| format!("{to}{tail}"))
            })
            .unwrap_or_else(|| suffix.to_string());
        match self {
            Family::DistilBert => format!("transformer.layer.{i}.{suffix}"),
            Family::Albert => {
                let (group, inner) = albert_layer(c, i);
                format!("encoder.albert_layer_groups.{group}.albert_layers.{inner}.{suffix}")
            }
            _ => format!("encoder.layer.{i}.{suffix}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "config field `architectures` = {found:?}: bertc cannot tell which head to build; \
     known architectures: {known}; choose one with --head"
)]
pub struct UnknownArchitecture {
    pub found: Vec<String>,
    pub known: String,
}

/// ALBERT's encoder runs `num_hidden_layers` times a layer group of
/// `inner_group_num` layers; run `r` uses group `r / (layers / groups)`.
/// Canonical layer `i` is inner layer `i % inner` of run `i / inner`.
fn albert_layer(c: &BertConfig, i: usize) -> (usize, usize) {
    let inner = c.inner_group_num.unwrap_or(1).max(1);
    let groups = c.num_hidden_groups.unwrap_or(1).max(1);
    let per_group = (c.num_hidden_layers / groups).max(1);
    ((i / inner) / per_group, i % inner)
}

/// The transformers defaults of a family's config class, for fields its
/// `config.json` may leave out (values as BERT's field names).
fn defaults(family: Family) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    match family {
        Family::Bert => vec![],
        Family::Roberta | Family::XlmRoberta | Family::Camembert => vec![("pad_token_id", json!(1))],
        Family::DistilBert => vec![
            ("vocab_size", json!(30522)),
            ("max_position_embeddings", json!(512)),
            ("num_hidden_layers", json!(6)),
            ("num_attention_heads", json!(12)),
            ("hidden_size", json!(768)),
            ("intermediate_size", json!(3072)),
            ("hidden_act", json!("gelu")),
            ("hidden_dropout_prob", json!(0.1)),
            ("attention_probs_dropout_prob", json!(0.1)),
            ("pad_token_id", json!(0)),
        ],
        Family::Electra => vec![
            ("embedding_size", json!(128)),
            ("hidden_size", json!(256)),
            ("num_attention_heads", json!(4)),
            ("intermediate_size", json!(1024)),
        ],
        Family::Albert => vec![
            ("vocab_size", json!(30000)),
            ("embedding_size", json!(128)),
            ("hidden_size", json!(4096)),
            ("num_hidden_groups", json!(1)),
            ("num_attention_heads", json!(64)),
            ("intermediate_size", json!(16384)),
            ("inner_group_num", json!(1)),
            ("hidden_act", json!("gelu_new")),
            ("hidden_dropout_prob", json!(0.0)),
            ("attention_probs_dropout_prob", json!(0.0)),
        ],
        Family::MpNet => vec![
            ("vocab_size", json!(30527)),
            ("max_position_embeddings", json!(514)),
            ("pad_token_id", json!(1)),
            ("relative_attention_num_buckets", json!(32)),
        ],
    }
}

/// DistilBERT's config names → BERT's.
const DISTILBERT_RENAMES: [(&str, &str); 7] = [
    ("dim", "hidden_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_heads", "num_attention_heads"),
    ("hidden_dim", "intermediate_size"),
    ("activation", "hidden_act"),
    ("dropout", "hidden_dropout_prob"),
    ("attention_dropout", "attention_probs_dropout_prob"),
];

/// An error about a renamed field, named as the family's file spells it:
/// DistilBERT's `dim = 0` is reported against `dim`, not `hidden_size`.
pub fn in_family_terms(e: ConfigError, family: Family) -> ConfigError {
    if family != Family::DistilBert {
        return e;
    }
    let original = |field: &'static str| {
        DISTILBERT_RENAMES
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

/// The config adapter: reads `model_type`, rewrites the family's field
/// names to BERT's and fills the family's defaults, in place. A
/// `model_type` bertc does not build is refused by name.
pub fn adapt_fields(fields: &mut serde_json::Map<String, serde_json::Value>) -> Result<Family, ConfigError> {
    let family = match fields.get("model_type").filter(|v| !v.is_null()) {
        None => Family::Bert,
        Some(serde_json::Value::String(t)) => {
            Family::from_model_type(t).ok_or_else(|| ConfigError::Invalid {
                field: "model_type",
                value: t.clone(),
                rule: format!(
                    "must be one of {}",
                    MODEL_TYPES.map(|(n, _)| format!("\"{n}\"")).join(", ")
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
    if family == Family::DistilBert {
        for (from, to) in DISTILBERT_RENAMES {
            if let Some(v) = fields.remove(from) {
                fields.insert(to.to_string(), v);
            }
        }
        // DistilBERT has no token types and a fixed layer-norm epsilon.
        fields.insert("layer_norm_eps".into(), serde_json::json!(1e-12));
        fields.remove("type_vocab_size");
    }
    for (field, value) in defaults(family) {
        if fields.get(field).is_none_or(|v| v.is_null()) {
            fields.insert(field.to_string(), value);
        }
    }
    Ok(family)
}

/// The rules the family fields must satisfy, each naming its field.
pub fn check_family_rules(c: &BertConfig) -> Result<(), ConfigError> {
    let invalid =
        |field: &'static str, value: String, rule: String| ConfigError::Invalid { field, value, rule };
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
    if c.family == Family::Albert {
        let groups = c.num_hidden_groups.unwrap_or(1);
        if groups == 0 || c.num_hidden_layers % groups != 0 {
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
        if inner == 0 || inner.saturating_mul(c.num_hidden_layers) > crate::config::MAX_LAYERS {
            return Err(invalid(
                "inner_group_num",
                inner.to_string(),
                format!(
                    "must be > 0, with inner_group_num × num_hidden_layers ≤ {}",
                    crate::config::MAX_LAYERS
                ),
            ));
        }
    }
    if let Some(b) = c.relative_attention_num_buckets {
        // transformers buckets into 32 whatever the table's size.
        if !(crate::builder::MPNET_BUCKETS..=1 << 16).contains(&b) {
            return Err(invalid(
                "relative_attention_num_buckets",
                b.to_string(),
                format!(
                    "must be in {}..=65536: transformers' MPNet buckets distances into {} rows of the table",
                    crate::builder::MPNET_BUCKETS,
                    crate::builder::MPNET_BUCKETS
                ),
            ));
        }
    }
    if c.family.positions() == Positions::FromPadding {
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
    Ok(())
}

/// The position-table rows a graph's position ids never reach below the
/// first real token: `pad_token_id + 1` for RoBERTa-style ids (read from
/// bertc's config metadata; a foreign graph that counts tokens with a
/// CumSum is taken to be RoBERTa's, pad 1), 0 otherwise. A sequence of S
/// tokens then needs S + offset rows.
pub fn position_offset(g: &crate::ir::Graph) -> usize {
    let config = g
        .metadata
        .get("bertc.config")
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    if let Some(c) = config {
        let family = c["model_type"].as_str().and_then(Family::from_model_type);
        return match family.map(Family::positions) {
            Some(Positions::FromPadding) => c["pad_token_id"].as_u64().map_or(0, |p| p as usize + 1),
            _ => 0,
        };
    }
    let counts = g
        .node_ids()
        .any(|id| matches!(g.node(id).op, crate::ir::Op::CumSum));
    if counts {
        2
    } else {
        0
    }
}
