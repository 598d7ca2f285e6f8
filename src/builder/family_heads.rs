//! The task heads of BERT's relatives, as data: which layers each family's
//! `*ForSequenceClassification` and `*ForMaskedLM` put on the encoder, and
//! under which names. `heads.rs` builds them; `params.rs` lists their
//! parameters from the same descriptions, so the two cannot disagree.

use crate::config::{Activation, BertConfig};
use crate::family::Family;

/// A classifier on the first token with its own dense layer (RoBERTa's
/// `RobertaClassificationHead`, ELECTRA's, MPNet's, DistilBERT's
/// `pre_classifier`): `out(act(dense(hidden[:, 0])))`. BERT and ALBERT
/// classify from the pooler instead (`None`).
pub(crate) struct FirstTokenClassifier {
    pub dense: &'static str,
    pub activation: HeadActivation,
    pub out: &'static str,
}

/// The activation of a head layer.
#[derive(Clone, Copy)]
pub(crate) enum HeadActivation {
    Tanh,
    Relu,
    /// A fixed one, whatever `hidden_act` says.
    Fixed(Activation),
    /// The config's `hidden_act`.
    Hidden,
}

impl HeadActivation {
    pub fn resolve(self, c: &BertConfig) -> Activation {
        match self {
            HeadActivation::Tanh => Activation::Tanh,
            HeadActivation::Relu => Activation::Relu,
            HeadActivation::Fixed(a) => a,
            HeadActivation::Hidden => c.hidden_act,
        }
    }
}

pub(crate) fn first_token_classifier(family: Family) -> Option<FirstTokenClassifier> {
    let (dense, activation, out) = match family {
        Family::Bert | Family::Albert => return None,
        Family::Roberta | Family::XlmRoberta | Family::Camembert | Family::MpNet => {
            ("classifier.dense", HeadActivation::Tanh, "classifier.out_proj")
        }
        Family::Electra => (
            "classifier.dense",
            HeadActivation::Fixed(Activation::Gelu),
            "classifier.out_proj",
        ),
        Family::DistilBert => ("pre_classifier", HeadActivation::Relu, "classifier"),
    };
    Some(FirstTokenClassifier {
        dense,
        activation,
        out,
    })
}

/// The masked-LM head: `decoder(LayerNorm(act(transform(hidden)))) + bias`,
/// the decoder tied to the word embeddings unless `tie_word_embeddings`
/// is false. ALBERT's and ELECTRA's transform goes back to `embedding_size`.
pub(crate) struct MaskedLmHead {
    pub transform: &'static str,
    pub activation: HeadActivation,
    pub layer_norm: &'static str,
    /// The untied decoder weight's name.
    pub decoder: &'static str,
    pub bias: &'static str,
    /// Width of the transform's output (and the decoder's input).
    pub width: usize,
}

pub(crate) fn masked_lm_head(c: &BertConfig) -> MaskedLmHead {
    let gelu = HeadActivation::Fixed(Activation::Gelu);
    let (transform, activation, layer_norm, decoder, bias) = match c.family {
        Family::Bert => (
            "cls.predictions.transform.dense",
            HeadActivation::Hidden,
            "cls.predictions.transform.LayerNorm",
            "cls.predictions.decoder.weight",
            "cls.predictions.bias",
        ),
        Family::Roberta | Family::XlmRoberta | Family::Camembert | Family::MpNet => (
            "lm_head.dense",
            gelu,
            "lm_head.layer_norm",
            "lm_head.decoder.weight",
            "lm_head.bias",
        ),
        Family::DistilBert => (
            "vocab_transform",
            HeadActivation::Hidden,
            "vocab_layer_norm",
            "vocab_projector.weight",
            "vocab_projector.bias",
        ),
        Family::Albert => (
            "predictions.dense",
            HeadActivation::Hidden,
            "predictions.LayerNorm",
            "predictions.decoder.weight",
            "predictions.bias",
        ),
        Family::Electra => (
            "generator_predictions.dense",
            gelu,
            "generator_predictions.LayerNorm",
            "generator_lm_head.weight",
            "generator_lm_head.bias",
        ),
    };
    let width = match c.family {
        Family::Albert | Family::Electra => c.embedding_size(),
        _ => c.hidden_size,
    };
    MaskedLmHead {
        transform,
        activation,
        layer_norm,
        decoder,
        bias,
        width,
    }
}

/// The weight-name prefixes of every head's own parameters (outside the
/// encoder's `bert.`/`roberta.`/… module), in every family.
pub(crate) const HEAD_PREFIXES: [&str; 11] = [
    "classifier.",
    "qa_outputs.",
    "cls.",
    "lm_head.",
    "pre_classifier.",
    "vocab_transform.",
    "vocab_layer_norm.",
    "vocab_projector.",
    "predictions.",
    "generator_",
    // ElectraForPreTraining's (the published discriminators' checkpoints):
    // left unread by the heads bertc builds, never refused.
    "discriminator_predictions.",
];

/// Whether a parameter is a task head's own (outside the `bert.` module).
pub fn is_head_param(name: &str) -> bool {
    HEAD_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether a checkpoint tensor belongs to some task head or the pooler:
/// a checkpoint saved from one `BertFor*` class carries these, and
/// compiling it with another head (say, the base model of a fine-tuned
/// classifier) leaves them unread rather than failing.
pub fn is_head_or_pooler_tensor(name: &str) -> bool {
    // Any family's encoder prefix (`bert.`, `roberta.`, …).
    let name = name
        .split_once('.')
        .filter(|(first, _)| Family::ALL.iter().any(|f| f.prefix() == *first))
        .map_or(name, |(_, rest)| rest);
    is_head_param(name) || name.starts_with("pooler.")
}
