//! What a compiled model computes on top of the encoder: the task head.
//!
//! Each head is the one transformers' `BertFor*` class puts on BertModel,
//! with its outputs named as Optimum's ONNX export names them so that
//! serving code written for Optimum's files works unchanged. The heads'
//! layers and weight names differ per family: they are rows of the family
//! table (the family module); the builder builds them. This module depends
//! on nothing else in the crate, so the family table and the builder can
//! both name a head without depending on each other.

use std::fmt;

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

impl Head {
    pub const ALL: [Head; 6] = [
        Head::Base,
        Head::SequenceClassification,
        Head::TokenClassification,
        Head::QuestionAnswering,
        Head::MaskedLm,
        Head::SentenceEmbedding,
    ];

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
