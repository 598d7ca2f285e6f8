//! BERT's relatives — RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT, ELECTRA,
//! ALBERT, MPNet — as one builder with switches, not one builder each.
//!
//! Each family differs from BERT in a few precise places, and one row of
//! the family table ([`FamilySpec`]; the rows, and the recipe for adding a
//! family, are in table.rs) holds all of them as data:
//! - its **names**: `model_type`, the class names of its architectures, the
//!   weight-name prefix of its checkpoints;
//! - its **config adapter** ([`ConfigAdapter`]): how its `config.json`
//!   (DistilBERT's `dim`, `n_layers`, …) becomes BERT's field names with the
//!   family's own transformers defaults, so that the one validated
//!   `BertConfig` describes every family (the config module applies it);
//! - its **weight-name map** ([`LayerNames`]): the builder asks for BERT's
//!   canonical names (`encoder.layer.3.attention.self.query.weight`) and
//!   gets the family's (`transformer.layer.3.attention.q_lin.weight`, or
//!   ALBERT's shared `encoder.albert_layer_groups.0.albert_layers.0.…`);
//! - the **structural switches** the builder reads: token types, how
//!   position ids are made, the embedding projection, the pooler;
//! - its **heads**: the layers and names of its classifier and masked-LM head.
//!
//! Dependencies run one way: this module reads only [`crate::head`] (and
//! the IR, for [`position_offset`]); the config adapter, the builder and the
//! cost model read it.

mod names;
mod spec;
mod table;

use serde::Serialize;

use crate::head::Head;

pub use names::{
    is_embedding_weight, is_final_norm_weight, is_head_or_pooler_tensor, is_head_param, is_pooler_weight,
    layer_weight_rest,
};
pub use spec::{
    AttentionPattern, ConfigAdapter, ConfigValue, Disentangled, EmbeddingProjection, FamilySpec, FeedForward,
    FirstTokenClassifier, HeadActivation, HeadWidth, Heads, LayerNames, LayerPath, MaskedLmHead, NormKind,
    NormPlacement, OptionalBias, Pooler, PoolerRule, Positions, PredictionHead, QkvProjection,
    RemoteCodeNames, RotaryPairs, SequenceClassifier, TokenTypes,
};
pub use table::MPNET_BUCKETS;

/// A model family: one `model_type`, one row of the family table.
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
    NomicBert,
    Gte,
    ModernBert,
    JinaEmbeddingsV3,
    EuroBert,
    DebertaV2,
    Deberta,
}

impl Family {
    /// Every family, in the order messages list them.
    pub const ALL: [Family; 15] = [
        Family::Bert,
        Family::Roberta,
        Family::XlmRoberta,
        Family::Camembert,
        Family::DistilBert,
        Family::Electra,
        Family::Albert,
        Family::MpNet,
        Family::NomicBert,
        Family::Gte,
        Family::ModernBert,
        Family::JinaEmbeddingsV3,
        Family::EuroBert,
        Family::DebertaV2,
        Family::Deberta,
    ];

    /// The family's row of the table: everything bertc knows of it outside
    /// its math. The one `match` on the family.
    pub fn spec(self) -> &'static FamilySpec {
        match self {
            Family::Bert => &table::BERT,
            Family::Roberta => &table::ROBERTA,
            Family::XlmRoberta => &table::XLM_ROBERTA,
            Family::Camembert => &table::CAMEMBERT,
            Family::DistilBert => &table::DISTILBERT,
            Family::Electra => &table::ELECTRA,
            Family::Albert => &table::ALBERT,
            Family::MpNet => &table::MPNET,
            Family::NomicBert => &table::NOMIC_BERT,
            Family::Gte => &table::GTE,
            Family::ModernBert => &table::MODERNBERT,
            Family::JinaEmbeddingsV3 => &table::JINA_EMBEDDINGS_V3,
            Family::EuroBert => &table::EUROBERT,
            Family::DebertaV2 => &table::DEBERTA_V2,
            Family::Deberta => &table::DEBERTA,
        }
    }

    /// The family of a `model_type`: transformers' name, or the remote
    /// code's where the family has one (GTE's `new`).
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| {
            let spec = f.spec();
            let remote = spec
                .config
                .remote_code
                .is_some_and(|r| r.model_type == model_type);
            spec.model_type == model_type || remote
        })
    }

    /// transformers' `model_type`.
    pub fn model_type(self) -> &'static str {
        self.spec().model_type
    }

    /// The attribute a `*For*` class keeps the encoder under: its
    /// checkpoints' weight-name prefix (XLM-R and CamemBERT reuse RoBERTa's).
    pub fn prefix(self) -> &'static str {
        self.spec().prefix
    }

    /// The head each architecture of this family means.
    /// (transformers' classes first, then the remote code's, if any).
    pub fn architectures(self) -> Vec<(String, Head)> {
        let spec = self.spec();
        let remote = spec.config.remote_code.map(|r| r.class_stem);
        let stems = std::iter::once(spec.class_stem).chain(remote);
        stems
            .flat_map(|stem| {
                [
                    ("Model", Head::Base),
                    ("ForSequenceClassification", Head::SequenceClassification),
                    ("ForTokenClassification", Head::TokenClassification),
                    ("ForQuestionAnswering", Head::QuestionAnswering),
                    ("ForMaskedLM", Head::MaskedLm),
                ]
                .map(|(suffix, head)| (format!("{stem}{suffix}"), head))
            })
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

    /// Whether transformers builds a pooler for `head`: BERT and ALBERT
    /// classify from it; RoBERTa and MPNet have one only in the bare model
    /// (their classifiers read the first token themselves); DistilBERT and
    /// ELECTRA have none.
    pub fn pooler_for(self, head: Head) -> bool {
        self.spec().pooler.exists_for(head)
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
        return match family.map(|f| f.spec().positions) {
            Some(Positions::FromPadding) => c["pad_token_id"].as_u64().map_or(0, |p| p as usize + 1),
            Some(Positions::Sequential | Positions::SequentialWhenBiased | Positions::Rotary(_)) | None => 0,
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
