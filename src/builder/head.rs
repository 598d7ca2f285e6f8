//! What a compiled model computes on top of the encoder: the task head.
//!
//! Each head is the one transformers' `BertFor*` class puts on BertModel,
//! with its weight names, and its outputs named as Optimum's ONNX export
//! names them so that serving code written for Optimum's files works
//! unchanged.

use std::fmt;

use crate::config::BertConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Head {
    /// BertModel: `last_hidden_state` and, when the model has a pooler,
    /// `pooler_output`.
    Base,
    /// BertForSequenceClassification: `logits` [batch, num_labels] from the pooler.
    SequenceClassification,
    /// BertForTokenClassification: `logits` [batch, seq, num_labels].
    TokenClassification,
    /// BertForQuestionAnswering: `start_logits`, `end_logits` [batch, seq].
    QuestionAnswering,
    /// BertForMaskedLM: `logits` [batch, seq, vocab].
    MaskedLm,
    /// sentence-transformers' mean pooling + L2 normalisation:
    /// `sentence_embedding` [batch, hidden].
    SentenceEmbedding,
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

impl Head {
    pub const ALL: [Head; 6] = [
        Head::Base,
        Head::SequenceClassification,
        Head::TokenClassification,
        Head::QuestionAnswering,
        Head::MaskedLm,
        Head::SentenceEmbedding,
    ];

    /// The head a config's `architectures` asks for; BertModel (or no
    /// architectures at all) is the base model.
    pub fn from_config(config: &BertConfig) -> Result<Head, UnknownArchitecture> {
        let Some(first) = config.architectures.first() else {
            return Ok(Head::Base);
        };
        // The config's own family's classes (`RobertaForMaskedLM`, …).
        let known = config.family.architectures();
        known
            .iter()
            .find(|(name, _)| name == first)
            .map(|&(_, head)| head)
            .ok_or_else(|| UnknownArchitecture {
                found: config.architectures.clone(),
                known: known
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Every `--head` spelling, for messages.
    pub fn names() -> Vec<&'static str> {
        Head::ALL.map(Head::name).to_vec()
    }

    /// The head `--head NAME` names.
    pub fn parse(name: &str) -> Option<Head> {
        Head::ALL.into_iter().find(|h| h.name() == name)
    }

    /// The `--head` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Head::Base => "base",
            Head::SequenceClassification => "sequence-classification",
            Head::TokenClassification => "token-classification",
            Head::QuestionAnswering => "question-answering",
            Head::MaskedLm => "masked-lm",
            Head::SentenceEmbedding => "sentence-embedding",
        }
    }

    /// Whether transformers builds this model with BertPooler
    /// (`add_pooling_layer`): the base model and sequence classification.
    pub fn uses_pooler(self) -> bool {
        matches!(self, Head::Base | Head::SequenceClassification)
    }

    /// Whether the head's outputs carry labels (`num_labels`, `id2label`).
    pub fn has_labels(self) -> bool {
        matches!(self, Head::SequenceClassification | Head::TokenClassification)
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a parameter is a task head's own (outside the `bert.` module).
pub fn is_head_param(name: &str) -> bool {
    super::family_heads::HEAD_PREFIXES
        .iter()
        .any(|p| name.starts_with(p))
}

/// Whether a checkpoint tensor belongs to some task head or the pooler:
/// a checkpoint saved from one `BertFor*` class carries these, and
/// compiling it with another head (say, the base model of a fine-tuned
/// classifier) leaves them unread rather than failing.
pub fn is_head_or_pooler_tensor(name: &str) -> bool {
    // Any family's encoder prefix (`bert.`, `roberta.`, …).
    let name = name
        .split_once('.')
        .filter(|(first, _)| crate::family::Family::ALL.iter().any(|f| f.prefix() == *first))
        .map_or(name, |(_, rest)| rest);
    is_head_param(name) || name.starts_with("pooler.")
}
