//! Hugging Face `BertConfig`: parsing with transformers' defaults, and the
//! rules a config must satisfy before anything is built from it.
//!
//! Unknown fields are ignored on purpose: real `config.json` files carry many
//! (tokenizer ids, `transformers_version`, task-specific parameters).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::family::{
    AttentionPattern, EmbeddingProjection, Family, LayerPath, Positions, QkvProjection, SequenceClassifier,
    TokenTypes,
};

mod disentangled;
mod family_fields;
mod fields;
mod sliding;

pub use disentangled::DisentangledAttention;
pub use sliding::{LayerAttention, SlidingAttention};

use fields::{invalid, labels, Fields};

/// Why a config was refused. Every variant names the field, its value and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("config {origin} is not a valid BERT config.json: {error}")]
    Json {
        origin: String,
        error: serde_json::Error,
    },
    #[error("config field `{field}` = {value}: {rule}")]
    Invalid {
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error("config {path}: not a regular file (a config.json is read only from a regular file)")]
    NotAFile { path: String },
    #[error(
        "config {path}: {bytes} bytes, more than the {} bytes a config.json may have",
        MAX_CONFIG_BYTES
    )]
    TooLarge { path: String, bytes: u64 },
    #[error(
        "config field `{field}` = {value}: the model would hold {} parameters ({} as f32), \
         more than bertc's bound of 2^34 = {} parameters (64 GiB as f32)",
        .parameters.map_or("more than 2^64".to_string(), |p| p.to_string()),
        .parameters.map_or("more than 2^66 bytes".to_string(), |p| human_bytes(p as f64 * 4.0)),
        MAX_PARAMETERS
    )]
    TooBig {
        field: &'static str,
        value: usize,
        /// `None` when the count overflows u64.
        parameters: Option<u64>,
    },
    #[error("config field `{field}` = {value}: {what} is not supported by bertc")]
    Unsupported {
        field: &'static str,
        value: String,
        what: &'static str,
    },
}

/// The most parameters (elements) a config may describe: 2^34, 64 GiB as
/// f32 — above the largest BERT-family checkpoints (xlm-roberta-xxl has
/// 10.7e9), and a bound that keeps every element count and byte size far
/// from overflowing `usize`. Checked before anything is allocated.
pub const MAX_PARAMETERS: u64 = 1 << 34;

/// The most encoder layers: the deepest BERT-family checkpoints have 48.
/// Layers cost graph nodes (about 40 each) and check time besides their
/// parameters, so a thin but 100000-deep config is refused too.
pub const MAX_LAYERS: usize = 1024;

/// The depth of the deepest BERT-family checkpoints: a config whose layers
/// would fit the parameter bound at this depth is too big by its depth.
const DEEPEST_LAYERS: u64 = 48;

/// The most labels a classification head may have (one name string each).
pub const MAX_LABELS: usize = 1 << 20;

/// The largest config.json read: real ones are a few KB; this refuses
/// `/dev/zero` or a multi-GB file before reading it.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The activation functions transformers' BERT accepts for `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU: x · Φ(x), computed with erf.
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`
    /// differ only in how they spell the same formula).
    #[serde(rename = "gelu_new")]
    GeluNew,
    #[serde(rename = "gelu_pytorch_tanh")]
    GeluPytorchTanh,
    #[serde(rename = "gelu_fast")]
    GeluFast,
    /// x · sigmoid(1.702 x)
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    #[serde(rename = "relu")]
    Relu,
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    #[serde(rename = "tanh")]
    Tanh,
    /// x · tanh(softplus(x))
    #[serde(rename = "mish")]
    Mish,
}

impl Activation {
    pub const SUPPORTED: &'static str =
        "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, silu, swish, tanh, mish";

    fn parse(name: &str) -> Option<Activation> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" => Activation::GeluNew,
            "gelu_pytorch_tanh" => Activation::GeluPytorchTanh,
            "gelu_fast" => Activation::GeluFast,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            "mish" => Activation::Mish,
            _ => return None,
        })
    }
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbeddingType {
    Absolute,
    RelativeKey,
    RelativeKeyQuery,
}

/// A validated BERT configuration. Field names and defaults are transformers'.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    pub position_embedding_type: PositionEmbeddingType,
    /// Dropouts are identities at inference; kept so the metadata round-trips.
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub classifier_dropout: Option<f64>,
    pub num_labels: usize,
    pub id2label: BTreeMap<usize, String>,
    pub label2id: BTreeMap<String, usize>,
    pub architectures: Vec<String>,
    pub model_type: String,
    pub tie_word_embeddings: bool,
    pub chunk_size_feed_forward: usize,
    pub torch_dtype: Option<String>,
    /// Which of BERT's relatives this is (`model_type`; see crate::family).
    #[serde(skip)]
    pub family: Family,
    /// ELECTRA / ALBERT: the width of the embeddings, projected to
    /// `hidden_size` before the encoder. `None`: the hidden size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
    /// ALBERT: layer groups sharing their weights, and layers per group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_hidden_groups: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_group_num: Option<usize>,
    /// DistilBERT: the position table is the fixed sinusoidal one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinusoidal_pos_embds: Option<bool>,
    /// MPNet: rows of the relative attention bias table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_attention_num_buckets: Option<usize>,
    /// Rotary families: RoPE's base θ (`rope_parameters.rope_theta`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// GTE's remote-code NTK scaling of the rotary frequencies
    /// (`rope_scaling: {"type": "ntk", "factor": f}`, f ≥ 1): the factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_ntk_factor: Option<f64>,
    /// The biases the family's config switches off or on (ModernBERT's
    /// `attention_bias`, `norm_bias`, …), by field: the row's
    /// `optional_biases`, each read with its default.
    #[serde(flatten)]
    pub optional_biases: BTreeMap<&'static str, bool>,
    /// ModernBERT: which layers attend within a window, and its θ there.
    #[serde(flatten)]
    pub sliding_attention: Option<SlidingAttention>,
    /// ModernBERT's prediction head: its activation (`classifier_activation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier_activation: Option<Activation>,
    /// ModernBERT's sequence classifier: what it pools (`classifier_pooling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier_pooling: Option<ClassifierPooling>,
    /// Grouped-query attention (EuroBERT): the heads of the keys and
    /// values, each shared by `num_attention_heads / num_key_value_heads`
    /// query heads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// DeBERTa: the disentangled attention, ConvLayer, pooler and MLM
    /// layout switches.
    #[serde(flatten)]
    pub disentangled: Option<DisentangledAttention>,
}

/// What a pooled sequence classifier reads (ModernBERT's `classifier_pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierPooling {
    /// Position 0, even in a left-padded row.
    Cls,
    /// The mean over the real tokens.
    Mean,
    /// EuroBERT's name for position 0.
    Bos,
    /// EuroBERT's: the classifier on every token, its logits averaged over
    /// the real ones.
    Late,
}

/// The raw JSON form: every field optional so that defaults apply, values
/// kept as JSON so that a wrong type is reported against its field.
#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

impl BertConfig {
    /// Reads and validates a `config.json` file.
    pub fn from_path(path: &Path) -> Result<BertConfig, ConfigError> {
        let io = |error| ConfigError::Io {
            path: path.display().to_string(),
            error,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(ConfigError::NotAFile {
                path: path.display().to_string(),
            });
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.display().to_string(),
                bytes: meta.len(),
            });
        }
        // Read at most the bound even if the file grows meanwhile.
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, MAX_CONFIG_BYTES + 1),
            &mut text,
        )
        .map_err(io)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.display().to_string(),
                bytes: text.len() as u64,
            });
        }
        BertConfig::from_json_str(&text, &path.display().to_string())
    }

    /// Parses and validates config JSON; `origin` names it in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<BertConfig, ConfigError> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|error| ConfigError::Json {
            origin: origin.to_string(),
            error,
        })?;
        let mut fields = raw.fields;
        // BERT's relatives become BERT's field names (the family table's adapter).
        let family = family_fields::adapt_fields(&mut fields)?;
        // Errors name the field as the file spells it (DistilBERT's `dim`).
        Self::from_adapted(&fields, family).map_err(|e| family_fields::in_family_terms(e, family))
    }

    /// The config from fields already in BERT's names (family_fields.rs).
    fn from_adapted(
        fields: &serde_json::Map<String, serde_json::Value>,
        family: Family,
    ) -> Result<BertConfig, ConfigError> {
        let f = Fields(fields);
        if f.bool("is_decoder")?.unwrap_or(false) {
            return Err(ConfigError::Unsupported {
                field: "is_decoder",
                value: "true".into(),
                what: "a decoder (causal) BERT",
            });
        }
        if f.bool("add_cross_attention")?.unwrap_or(false) {
            return Err(ConfigError::Unsupported {
                field: "add_cross_attention",
                value: "true".into(),
                what: "cross-attention",
            });
        }

        let hidden_act = activation(&f, "hidden_act")?;
        let pos_name = f
            .string("position_embedding_type")?
            .unwrap_or_else(|| "absolute".into());
        let position_embedding_type = match pos_name.as_str() {
            "absolute" => PositionEmbeddingType::Absolute,
            "relative_key" => PositionEmbeddingType::RelativeKey,
            "relative_key_query" => PositionEmbeddingType::RelativeKeyQuery,
            other => {
                return Err(invalid(
                    "position_embedding_type",
                    other,
                    "must be one of absolute, relative_key, relative_key_query",
                ))
            }
        };

        let (id2label, label2id, num_labels) = labels(&f)?;
        let spec = family.spec();
        let shared_groups = matches!(spec.layers.path, LayerPath::SharedGroups(_));
        let sliding = match spec.attention {
            AttentionPattern::Full => None,
            AttentionPattern::GlobalAndSliding => {
                Some(sliding::read(&f, f.positive("num_hidden_layers", 12)?)?)
            }
        };
        let mut optional_biases = BTreeMap::new();
        for b in spec.optional_biases {
            optional_biases.insert(b.field, f.bool(b.field)?.unwrap_or(b.default));
        }
        let config = BertConfig {
            vocab_size: f.positive("vocab_size", 30522)?,
            hidden_size: f.positive("hidden_size", 768)?,
            num_hidden_layers: f.positive("num_hidden_layers", 12)?,
            num_attention_heads: f.positive("num_attention_heads", 12)?,
            intermediate_size: f.positive("intermediate_size", 3072)?,
            hidden_act,
            max_position_embeddings: f.positive("max_position_embeddings", 512)?,
            // GTE's may be 0: no token-type table at all.
            type_vocab_size: match spec.token_types {
                TokenTypes::OptionalRow | TokenTypes::InputWhenSized => f.non_negative("type_vocab_size")?,
                _ => f.positive("type_vocab_size", 2)?,
            },
            initializer_range: f.float("initializer_range")?.unwrap_or(0.02),
            layer_norm_eps: f.float("layer_norm_eps")?.unwrap_or(1e-12),
            pad_token_id: f.int_or_null("pad_token_id", Some(0))?,
            position_embedding_type,
            hidden_dropout_prob: f.float("hidden_dropout_prob")?.unwrap_or(0.1),
            attention_probs_dropout_prob: f.float("attention_probs_dropout_prob")?.unwrap_or(0.1),
            classifier_dropout: f.float("classifier_dropout")?,
            num_labels,
            id2label,
            label2id,
            architectures: f.strings("architectures")?,
            model_type: family.model_type().into(),
            tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(true),
            chunk_size_feed_forward: f.non_negative("chunk_size_feed_forward")?,
            torch_dtype: match f.string("torch_dtype")? {
                Some(d) => Some(d),
                None => f.string("dtype")?,
            },
            family,
            // The fields only some families have, read where the family's
            // row has the part they size.
            embedding_size: match spec.embedding_projection {
                EmbeddingProjection::None => None,
                EmbeddingProjection::WhenResized(_) | EmbeddingProjection::Always(_) => {
                    Some(f.positive("embedding_size", 128)?)
                }
                // DeBERTa's defaults to the hidden size (no projection).
                EmbeddingProjection::BeforeNormWhenResized(_) => {
                    Some(f.positive("embedding_size", f.positive("hidden_size", 768)?)?)
                }
            },
            num_hidden_groups: shared_groups
                .then(|| f.positive("num_hidden_groups", 1))
                .transpose()?,
            inner_group_num: shared_groups
                .then(|| f.positive("inner_group_num", 1))
                .transpose()?,
            sinusoidal_pos_embds: spec
                .sinusoidal_positions
                .then(|| f.bool("sinusoidal_pos_embds").map(|b| b.unwrap_or(false)))
                .transpose()?,
            relative_attention_num_buckets: spec
                .bucketed_relative_bias
                .map(|_| f.positive("relative_attention_num_buckets", 32))
                .transpose()?,
            rope_theta: match (spec.positions, &sliding) {
                // The global layers' θ; the sliding layers' is with them.
                (Positions::Rotary(_), Some((global, _))) => Some(*global),
                (Positions::Rotary(_), None) => Some(family_fields::rope_theta(&f)?),
                (Positions::Sequential | Positions::FromPadding | Positions::SequentialWhenBiased, _) => None,
            },
            rope_ntk_factor: match spec.config.ntk_rope_scaling {
                true => family_fields::ntk_factor(&f)?,
                false => None,
            },
            optional_biases,
            sliding_attention: sliding.map(|(_, s)| s),
            classifier_activation: match spec.heads.prediction_head {
                Some(_) => Some(activation(&f, "classifier_activation")?),
                None => None,
            },
            classifier_pooling: match spec.heads.sequence_classification {
                SequenceClassifier::PooledPredictionHead => Some(classifier_pooling(
                    &f,
                    &[ClassifierPooling::Cls, ClassifierPooling::Mean],
                )?),
                SequenceClassifier::ConfigPooled(_) => Some(classifier_pooling(
                    &f,
                    &[
                        ClassifierPooling::Late,
                        ClassifierPooling::Bos,
                        ClassifierPooling::Mean,
                    ],
                )?),
                SequenceClassifier::Pooler | SequenceClassifier::FirstToken(_) => None,
            },
            num_key_value_heads: match spec.qkv {
                QkvProjection::SeparateGrouped => {
                    Some(f.positive("num_key_value_heads", f.positive("num_attention_heads", 12)?)?)
                }
                QkvProjection::Separate | QkvProjection::Fused | QkvProjection::FusedPerHead => None,
            },
            disentangled: spec
                .disentangled
                .map(|d| disentangled::read(&f, d.buckets_and_shared_keys, f.positive("hidden_size", 768)?))
                .transpose()?,
        };
        config.check_rules()?;
        Ok(config)
    }

    /// An upper bound on the parameters of the model with any head,
    /// computed with checked arithmetic, each term checked against
    /// [`MAX_PARAMETERS`] and blamed on the field that scales it.
    pub fn parameter_bound(&self) -> Result<u64, ConfigError> {
        let h = self.hidden_size as u64;
        let too_big = |field: &'static str, value: usize, parameters: Option<u64>| ConfigError::TooBig {
            field,
            value,
            parameters,
        };
        let bounded = |field: &'static str, value: usize, n: Option<u64>| match n {
            Some(n) if n <= MAX_PARAMETERS => Ok(n),
            n => Err(too_big(field, value, n)),
        };
        // Per layer: Q, K, V, output and the MLM transform (h²), the FFN
        // (2·h·i), biases and layer norms (≤ 16·h), relative distances.
        let squares = bounded(
            "hidden_size",
            self.hidden_size,
            h.checked_mul(h).and_then(|x| x.checked_mul(5)),
        )?;
        let ffn = bounded(
            "intermediate_size",
            self.intermediate_size,
            (self.intermediate_size as u64)
                .checked_mul(h)
                .and_then(|x| x.checked_mul(2)),
        )?;
        let positions = bounded(
            "max_position_embeddings",
            self.max_position_embeddings,
            (self.max_position_embeddings as u64)
                .checked_mul(2)
                .and_then(|x| x.checked_mul(h)),
        )?;
        let vocab = bounded(
            "vocab_size",
            self.vocab_size,
            (self.vocab_size as u64)
                .checked_mul(h)
                .and_then(|x| x.checked_add(self.vocab_size as u64)),
        )?;
        let types = bounded(
            "type_vocab_size",
            self.type_vocab_size,
            (self.type_vocab_size as u64).checked_mul(h),
        )?;
        let labels = bounded(
            "num_labels",
            self.num_labels,
            (self.num_labels as u64).checked_mul(h + 1),
        )?;
        // Each term is ≤ 2^34 and num_hidden_layers ≤ 2^64 / 2^36, so
        // these cannot overflow once the layer count is bounded (MAX_LAYERS
        // is checked first; saturating keeps a library call safe anyway).
        let layer = squares + ffn + positions + 16 * h;
        let depth = self.num_hidden_layers as u64;
        let layers = layer.saturating_mul(depth);
        let total = layers
            .saturating_add(vocab)
            .saturating_add(positions)
            .saturating_add(types)
            .saturating_add(labels)
            .saturating_add(squares);
        if total <= MAX_PARAMETERS {
            return Ok(total);
        }
        // Blame the field whose term is largest: an oversized
        // type_vocab_size or intermediate_size was blamed on
        // num_hidden_layers when only three fields were candidates (issue
        // 25). The depth is to blame when its layers are of an ordinary
        // size and only their number makes them too many.
        let candidates = [
            ("hidden_size", self.hidden_size, squares.saturating_mul(depth + 1)),
            (
                "intermediate_size",
                self.intermediate_size,
                ffn.saturating_mul(depth),
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                positions.saturating_mul(depth + 1),
            ),
            ("vocab_size", self.vocab_size, vocab),
            ("type_vocab_size", self.type_vocab_size, types),
            ("num_labels", self.num_labels, labels),
        ];
        let (field, value, _) = candidates
            .into_iter()
            .max_by_key(|t| t.2)
            .expect("six candidates");
        let layer_scaled = ["hidden_size", "intermediate_size", "max_position_embeddings"].contains(&field);
        let (field, value) = match layer_scaled && layer.saturating_mul(DEEPEST_LAYERS) <= MAX_PARAMETERS {
            true => ("num_hidden_layers", self.num_hidden_layers),
            false => (field, value),
        };
        let counted = (total < u64::MAX).then_some(total);
        Err(too_big(field, value, counted))
    }

    fn check_rules(&self) -> Result<(), ConfigError> {
        if self.num_hidden_layers > MAX_LAYERS {
            return Err(invalid(
                "num_hidden_layers",
                &self.num_hidden_layers.to_string(),
                &format!(
                    "must be at most {MAX_LAYERS} (the deepest BERT-family models have 48; \
                     each layer adds about 40 graph nodes)"
                ),
            ));
        }
        self.parameter_bound()?;
        self.check_pad_token()?;
        family_fields::check_family_rules(self)?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(invalid(
                "hidden_size",
                &self.hidden_size.to_string(),
                &format!(
                    "must be divisible by num_attention_heads ({})",
                    self.num_attention_heads
                ),
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(invalid(
                "layer_norm_eps",
                &self.layer_norm_eps.to_string(),
                "must be a finite number > 0",
            ));
        }
        if !(self.initializer_range >= 0.0 && self.initializer_range.is_finite()) {
            return Err(invalid(
                "initializer_range",
                &self.initializer_range.to_string(),
                "must be a finite number >= 0",
            ));
        }
        for (field, p) in [
            ("hidden_dropout_prob", Some(self.hidden_dropout_prob)),
            (
                "attention_probs_dropout_prob",
                Some(self.attention_probs_dropout_prob),
            ),
            ("classifier_dropout", self.classifier_dropout),
        ] {
            if let Some(p) = p {
                if !(0.0..=1.0).contains(&p) {
                    return Err(invalid(field, &p.to_string(), "must be in [0, 1]"));
                }
            }
        }
        Ok(())
    }

    /// `pad_token_id` names a row of the word table. Checked before the
    /// family rules that count positions from it, so a pad of 1e6 is
    /// blamed on itself, not on `max_position_embeddings` (issue 25).
    fn check_pad_token(&self) -> Result<(), ConfigError> {
        match self.pad_token_id {
            Some(pad) if pad < 0 || pad as u64 >= self.vocab_size as u64 => Err(invalid(
                "pad_token_id",
                &pad.to_string(),
                &format!("must be in [0, vocab_size = {})", self.vocab_size),
            )),
            _ => Ok(()),
        }
    }

    /// The width of the embeddings (ELECTRA's and ALBERT's `embedding_size`).
    pub fn embedding_size(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// Encoder layers as run: ALBERT runs `inner_group_num` layers per step.
    pub fn encoder_layers(&self) -> usize {
        self.num_hidden_layers * self.inner_group_num.unwrap_or(1)
    }

    /// What layer `i`'s queries see: the whole sequence unless the
    /// config makes it a sliding-window layer.
    pub fn layer_attention(&self, i: usize) -> LayerAttention {
        self.sliding_attention
            .as_ref()
            .and_then(|s| s.layer_types.get(i).copied())
            .unwrap_or(LayerAttention::FullAttention)
    }

    /// Layer `i`'s rotary θ: the sliding layers' own where they have one.
    pub fn layer_rope_theta(&self, i: usize) -> Option<f64> {
        match (self.layer_attention(i), &self.sliding_attention) {
            (LayerAttention::SlidingAttention, Some(s)) => Some(s.local_rope_theta),
            _ => self.rope_theta,
        }
    }

    /// Whether the bias of `part` (a layer part as the family table names
    /// it, or a full name outside the layers) is switched off by the
    /// config (ModernBERT's `attention_bias: false`, …).
    pub fn bias_switched_off(&self, part: &str) -> bool {
        self.family.spec().optional_biases.iter().any(|b| {
            b.parts.contains(&part) && !self.optional_biases.get(b.field).copied().unwrap_or(b.default)
        })
    }

    /// Whether the embeddings add a position table (the family's rule,
    /// with DeBERTa's `position_biased_input`).
    pub fn has_position_table(&self) -> bool {
        let biased = self.disentangled.as_ref().is_none_or(|d| d.position_biased_input);
        self.family.spec().positions.has_table(biased)
    }

    /// The masked-LM head's layout: the family's, or DeBERTa's
    /// `lm_predictions` when the config's `legacy` is false.
    pub fn masked_lm_head(&self) -> crate::family::MaskedLmHead {
        let heads = self.family.spec().heads;
        match (heads.masked_lm_unless_legacy, &self.disentangled) {
            (Some(current), Some(d)) if !d.legacy => current,
            _ => heads.masked_lm,
        }
    }

    /// Size of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The heads keys and values are split into: `num_key_value_heads`
    /// where the family groups queries, every query's own otherwise.
    pub fn key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The config as canonical JSON (fixed field order, sorted maps): what
    /// goes into the ONNX metadata, so equal configs give equal bytes.
    pub fn to_canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a BertConfig always serializes")
    }
}

/// An activation field (`hidden_act`'s names), GELU when absent.
fn activation(f: &Fields, field: &'static str) -> Result<Activation, ConfigError> {
    let name = f.string(field)?.unwrap_or_else(|| "gelu".into());
    Activation::parse(&name)
        .ok_or_else(|| invalid(field, &name, &format!("must be one of {}", Activation::SUPPORTED)))
}

/// `classifier_pooling`: one of the family's `allowed` poolings, the first
/// its class's default (ModernBERT's "cls" or "mean"; EuroBERT's "late",
/// "bos" or "mean").
fn classifier_pooling(f: &Fields, allowed: &[ClassifierPooling]) -> Result<ClassifierPooling, ConfigError> {
    let name = |p: &ClassifierPooling| {
        serde_json::to_value(p)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
    };
    let Some(given) = f.string("classifier_pooling")? else {
        return Ok(allowed[0]);
    };
    allowed
        .iter()
        .find(|p| name(p).as_deref() == Some(given.as_str()))
        .copied()
        .ok_or_else(|| {
            let names: Vec<String> = allowed
                .iter()
                .filter_map(name)
                .map(|n| format!("\"{n}\""))
                .collect();
            invalid(
                "classifier_pooling",
                &given,
                &format!("must be one of {}", names.join(", ")),
            )
        })
}

/// 1.2e12 → "1.1 TiB".
fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}
