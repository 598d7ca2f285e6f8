//! The family table: one [`FamilySpec`] row per family, the one place that
//! maps a family to its data. [`super::Family::spec`] picks the row; the
//! config adapter, the builder, the heads, the parameter listing and the
//! cost model (`inspect`) read the rows, and none of them matches on the
//! family itself.
//!
//! Rows are written out in full, so a new family cannot inherit a switch it
//! lacks by omission; only a family transformers defines as another under a
//! new name (XLM-R, CamemBERT: RoBERTa's classes) takes its row with `..`.
//!
//! # Adding a family
//!
//! 1. Add its variant to [`super::Family`] and to `Family::ALL`; the
//!    compiler then asks for its arm in `Family::spec`.
//! 2. Write its row here from transformers' sources: `configuration_X.py`
//!    gives `model_type`, the class defaults and `attribute_map` renames
//!    (`config`); `modeling_X.py` gives the class names (`class_stem`),
//!    `base_model_prefix` (`prefix`), one layer's state-dict names
//!    (`layers`), the embeddings' switches, the pooler and the heads.
//! 3. What no switch expresses is new math: add the switch to spec.rs (a
//!    field, or a variant of an existing enum — the compiler then lists every
//!    reader that must handle it), give every row its value, and write the
//!    math in a builder file of its own, as builder/mpnet.rs holds MPNet's
//!    bucketed bias. A config field only that math reads becomes an
//!    `Option` field of `BertConfig`, read where the switch says
//!    (config/mod.rs) and checked in config/family_fields.rs.
//! 4. Add seeded cases with PyTorch's outputs to the family goldens and
//!    to `CASES` in tests/families.rs; the table's own tests below check
//!    that names stay unique.

use super::spec::{
    AttentionPattern, ConfigAdapter, ConfigValue, Disentangled, EmbeddingProjection, FamilySpec, FeedForward,
    FirstTokenClassifier, HeadActivation, HeadWidth, Heads, LayerNames, LayerPath, MaskedLmHead, NormKind,
    NormPlacement, OptionalBias, Pooler, PoolerRule, Positions, PredictionHead, QkvProjection,
    RemoteCodeNames, RotaryPairs, SequenceClassifier, TokenTypes,
};
use ConfigValue::{Bool, Float, Int, Null, Str};

/// The buckets transformers' MPNet computes (`compute_position_bias`'s
/// default, whatever `relative_attention_num_buckets` says): the config's
/// rule and builder/mpnet.rs's bucketing both read it.
pub const MPNET_BUCKETS: usize = 32;

/// BERT's layer names, which most families keep.
const BERT_LAYERS: LayerNames = LayerNames {
    path: LayerPath::Indexed("encoder.layer"),
    renames: &[],
    unbiased: &[],
};

/// BertPooler under BERT's name.
const fn bert_pooler(when: PoolerRule) -> Pooler {
    Pooler {
        when,
        linear: "pooler.dense",
    }
}

pub(super) const BERT: FamilySpec = FamilySpec {
    model_type: "bert",
    class_stem: "Bert",
    prefix: "bert",
    config: ConfigAdapter::NONE,
    renames: &[],
    layers: BERT_LAYERS,
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::Input,
    positions: Positions::Sequential,
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::WithPoolerHeads),
    heads: Heads {
        sequence_classification: SequenceClassifier::Pooler,
        masked_lm: MaskedLmHead {
            transform: "cls.predictions.transform.dense",
            activation: HeadActivation::Hidden,
            layer_norm: "cls.predictions.transform.LayerNorm",
            decoder: "cls.predictions.decoder.weight",
            bias: "cls.predictions.bias",
            width: HeadWidth::Hidden,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        prefixes: &["cls."],
    },
};

/// RoBERTa's heads, which MPNet's classes copy: a first-token classifier
/// and `lm_head`.
const ROBERTA_HEADS: Heads = Heads {
    sequence_classification: SequenceClassifier::FirstToken(FirstTokenClassifier {
        dense: "classifier.dense",
        activation: HeadActivation::Tanh,
        out: "classifier.out_proj",
    }),
    masked_lm: MaskedLmHead {
        transform: "lm_head.dense",
        activation: HeadActivation::Gelu,
        layer_norm: "lm_head.layer_norm",
        decoder: "lm_head.decoder.weight",
        bias: "lm_head.bias",
        width: HeadWidth::Hidden,
    },
    prediction_head: None,
    masked_lm_unless_legacy: None,
    prefixes: &["lm_head."],
};

pub(super) const ROBERTA: FamilySpec = FamilySpec {
    model_type: "roberta",
    class_stem: "Roberta",
    prefix: "roberta",
    config: ConfigAdapter {
        defaults: &[("pad_token_id", Int(1))],
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: BERT_LAYERS,
    // A one-row table (type_vocab_size 1), no input.
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::ConstantRow,
    positions: Positions::FromPadding,
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::BareModelOnly),
    heads: ROBERTA_HEADS,
};

/// XLM-RoBERTa is RoBERTa under another name (transformers subclasses it).
pub(super) const XLM_ROBERTA: FamilySpec = FamilySpec {
    model_type: "xlm-roberta",
    class_stem: "XLMRoberta",
    ..ROBERTA
};

/// CamemBERT is RoBERTa under another name.
pub(super) const CAMEMBERT: FamilySpec = FamilySpec {
    model_type: "camembert",
    class_stem: "Camembert",
    ..ROBERTA
};

pub(super) const DISTILBERT: FamilySpec = FamilySpec {
    model_type: "distilbert",
    class_stem: "DistilBert",
    prefix: "distilbert",
    config: ConfigAdapter {
        renames: &[
            ("dim", "hidden_size"),
            ("n_layers", "num_hidden_layers"),
            ("n_heads", "num_attention_heads"),
            ("hidden_dim", "intermediate_size"),
            ("activation", "hidden_act"),
            ("dropout", "hidden_dropout_prob"),
            ("attention_dropout", "attention_probs_dropout_prob"),
        ],
        // A fixed layer-norm epsilon and no token types.
        fixed: &[("layer_norm_eps", Float(1e-12))],
        dropped: &["type_vocab_size"],
        defaults: &[
            ("vocab_size", Int(30522)),
            ("max_position_embeddings", Int(512)),
            ("num_hidden_layers", Int(6)),
            ("num_attention_heads", Int(12)),
            ("hidden_size", Int(768)),
            ("intermediate_size", Int(3072)),
            ("hidden_act", Str("gelu")),
            ("hidden_dropout_prob", Float(0.1)),
            ("attention_probs_dropout_prob", Float(0.1)),
            ("pad_token_id", Int(0)),
        ],
        required: &[],
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: LayerNames {
        path: LayerPath::Indexed("transformer.layer"),
        renames: &[
            ("attention.self.query", "attention.q_lin"),
            ("attention.self.key", "attention.k_lin"),
            ("attention.self.value", "attention.v_lin"),
            ("attention.output.dense", "attention.out_lin"),
            ("attention.output.LayerNorm", "sa_layer_norm"),
            ("intermediate.dense", "ffn.lin1"),
            ("output.dense", "ffn.lin2"),
            ("output.LayerNorm", "output_layer_norm"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::Absent,
    positions: Positions::Sequential,
    sinusoidal_positions: true,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::Never),
    heads: Heads {
        sequence_classification: SequenceClassifier::FirstToken(FirstTokenClassifier {
            dense: "pre_classifier",
            activation: HeadActivation::Relu,
            out: "classifier",
        }),
        masked_lm: MaskedLmHead {
            transform: "vocab_transform",
            activation: HeadActivation::Hidden,
            layer_norm: "vocab_layer_norm",
            decoder: "vocab_projector.weight",
            bias: "vocab_projector.bias",
            width: HeadWidth::Hidden,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        prefixes: &[
            "pre_classifier.",
            "vocab_transform.",
            "vocab_layer_norm.",
            "vocab_projector.",
        ],
    },
};

pub(super) const ELECTRA: FamilySpec = FamilySpec {
    model_type: "electra",
    class_stem: "Electra",
    prefix: "electra",
    config: ConfigAdapter {
        defaults: &[
            ("embedding_size", Int(128)),
            ("hidden_size", Int(256)),
            ("num_attention_heads", Int(4)),
            ("intermediate_size", Int(1024)),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: BERT_LAYERS,
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::Input,
    positions: Positions::Sequential,
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::WhenResized("embeddings_project"),
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::Never),
    heads: Heads {
        sequence_classification: SequenceClassifier::FirstToken(FirstTokenClassifier {
            dense: "classifier.dense",
            activation: HeadActivation::Gelu,
            out: "classifier.out_proj",
        }),
        masked_lm: MaskedLmHead {
            transform: "generator_predictions.dense",
            activation: HeadActivation::Gelu,
            layer_norm: "generator_predictions.LayerNorm",
            decoder: "generator_lm_head.weight",
            bias: "generator_lm_head.bias",
            width: HeadWidth::Embedding,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        // ElectraForPreTraining's `discriminator_predictions` (the
        // published discriminators' checkpoints) is built by no head.
        prefixes: &["generator_", "discriminator_predictions."],
    },
};

pub(super) const ALBERT: FamilySpec = FamilySpec {
    model_type: "albert",
    class_stem: "Albert",
    prefix: "albert",
    config: ConfigAdapter {
        defaults: &[
            ("vocab_size", Int(30000)),
            ("embedding_size", Int(128)),
            ("hidden_size", Int(4096)),
            ("num_hidden_groups", Int(1)),
            ("num_attention_heads", Int(64)),
            ("intermediate_size", Int(16384)),
            ("inner_group_num", Int(1)),
            ("hidden_act", Str("gelu_new")),
            ("hidden_dropout_prob", Float(0.0)),
            ("attention_probs_dropout_prob", Float(0.0)),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: LayerNames {
        path: LayerPath::SharedGroups("encoder.albert_layer_groups"),
        renames: &[
            ("attention.self.query", "attention.query"),
            ("attention.self.key", "attention.key"),
            ("attention.self.value", "attention.value"),
            ("attention.output.dense", "attention.dense"),
            ("attention.output.LayerNorm", "attention.LayerNorm"),
            ("intermediate.dense", "ffn"),
            ("output.dense", "ffn_output"),
            ("output.LayerNorm", "full_layer_layer_norm"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::Input,
    positions: Positions::Sequential,
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::Always("encoder.embedding_hidden_mapping_in"),
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: Pooler {
        when: PoolerRule::WithPoolerHeads,
        linear: "pooler",
    },
    heads: Heads {
        sequence_classification: SequenceClassifier::Pooler,
        masked_lm: MaskedLmHead {
            transform: "predictions.dense",
            activation: HeadActivation::Hidden,
            layer_norm: "predictions.LayerNorm",
            decoder: "predictions.decoder.weight",
            bias: "predictions.bias",
            width: HeadWidth::Embedding,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        prefixes: &["predictions."],
    },
};

pub(super) const MPNET: FamilySpec = FamilySpec {
    model_type: "mpnet",
    class_stem: "MPNet",
    prefix: "mpnet",
    config: ConfigAdapter {
        defaults: &[
            ("vocab_size", Int(30527)),
            ("max_position_embeddings", Int(514)),
            ("pad_token_id", Int(1)),
            ("relative_attention_num_buckets", Int(MPNET_BUCKETS as u64)),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: LayerNames {
        path: LayerPath::Indexed("encoder.layer"),
        renames: &[
            ("attention.self.query", "attention.attn.q"),
            ("attention.self.key", "attention.attn.k"),
            ("attention.self.value", "attention.attn.v"),
            ("attention.output.dense", "attention.attn.o"),
            ("attention.output.LayerNorm", "attention.LayerNorm"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::Absent,
    positions: Positions::FromPadding,
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: Some("encoder.relative_attention_bias"),
    disentangled: None,
    pooler: bert_pooler(PoolerRule::BareModelOnly),
    heads: ROBERTA_HEADS,
};

/// NomicBERT (transformers' `nomic_bert`): BERT's post-norm layers with
/// rotary positions instead of a position table, one bias-free `Wqkv`, a
/// bias-free SwiGLU MLP (`fc2(fc11(x) · silu(fc12(x)))`), the embeddings'
/// norm outside the embeddings (`emb_ln`), and a pooler only under the
/// sequence classifier.
pub(super) const NOMIC_BERT: FamilySpec = FamilySpec {
    model_type: "nomic_bert",
    class_stem: "NomicBert",
    prefix: "nomic_bert",
    config: ConfigAdapter {
        // The remote-code config (`configuration_hf_nomic_bert.py`, what
        // nomic-embed-text-v1.5 and the hub's other NomicBERTs ship) names
        // fields as GPT-2 does; transformers 5's own class as BERT does.
        renames: &[
            ("n_embd", "hidden_size"),
            ("n_layer", "num_hidden_layers"),
            ("n_head", "num_attention_heads"),
            ("n_inner", "intermediate_size"),
            // The length RoPE is set up for (8192), not the trained one
            // (`max_trained_positions`, 2048).
            ("n_positions", "max_position_embeddings"),
            ("rotary_emb_base", "rope_theta"),
            ("layer_norm_epsilon", "layer_norm_eps"),
        ],
        // The remote code's MLP is named by `activation_function`; SwiGLU
        // is silu gating, transformers 5's `hidden_act: silu`.
        dropped: &["activation_function"],
        // NomicBertConfig's defaults where they are not BertConfig's.
        defaults: &[
            ("max_position_embeddings", Int(2048)),
            ("rope_theta", Float(10000.0)),
            ("hidden_act", Str("silu")),
        ],
        // The remote code's switches: what nomic-embed-text ships is built;
        // the other settings are refused by name.
        required: &[
            (
                "activation_function",
                Str("swiglu"),
                "a NomicBERT MLP other than SwiGLU",
            ),
            (
                "rotary_emb_fraction",
                Float(1.0),
                "rotary embeddings over part of the head",
            ),
            ("rotary_emb_interleaved", Bool(false), "interleaved rotary pairs"),
            ("rotary_emb_scale_base", Null, "scaled (xPos) rotary embeddings"),
            ("rotary_scaling_factor", Null, "dynamic NTK rotary scaling"),
            ("qkv_proj_bias", Bool(false), "a Wqkv with a bias"),
            ("mlp_fc1_bias", Bool(false), "fc11/fc12 with biases"),
            ("mlp_fc2_bias", Bool(false), "an fc2 with a bias"),
            ("prenorm", Bool(false), "pre-norm NomicBERT layers"),
            ("parallel_block", Bool(false), "parallel attention and MLP blocks"),
            ("causal", Bool(false), "a causal (decoder) NomicBERT"),
            ("use_rms_norm", Bool(false), "RMSNorm instead of LayerNorm"),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[("embeddings.LayerNorm", "emb_ln")],
    layers: LayerNames {
        path: LayerPath::Indexed("encoder.layers"),
        renames: &[
            ("attention.self.qkv", "attn.Wqkv"),
            ("attention.output.dense", "attn.out_proj"),
            ("attention.output.LayerNorm", "norm1"),
            ("intermediate.dense", "mlp.fc11"),
            ("intermediate.gate", "mlp.fc12"),
            ("output.dense", "mlp.fc2"),
            ("output.LayerNorm", "norm2"),
        ],
        unbiased: &[
            "attention.self.qkv",
            "attention.output.dense",
            "intermediate.dense",
            "intermediate.gate",
            "output.dense",
        ],
    },
    qkv: QkvProjection::Fused,
    feed_forward: FeedForward::Gated,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::Input,
    positions: Positions::Rotary(RotaryPairs::HalfSplit),
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::ClassifierOnly),
    heads: Heads {
        sequence_classification: SequenceClassifier::Pooler,
        masked_lm: MaskedLmHead {
            transform: "cls.predictions.transform.dense",
            // NomicBertPredictionHeadTransform applies hidden_act (silu).
            activation: HeadActivation::Hidden,
            layer_norm: "cls.predictions.transform.layer_norm",
            decoder: "cls.predictions.decoder.weight",
            bias: "cls.predictions.bias",
            width: HeadWidth::Hidden,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        prefixes: &["cls."],
    },
};

/// ModernBERT (transformers' `modernbert`): pre-norm layers (layer 0's
/// `attn_norm` is an Identity) and a `final_norm`, rotary positions with
/// one θ for global and one for sliding-window layers, one `Wqkv`, a fused
/// GeGLU `Wi` ([input | gate]), biases and norm biases only where the
/// config's `attention_bias`, `mlp_bias`, `norm_bias` say, no token types.
pub(super) const MODERNBERT: FamilySpec = FamilySpec {
    model_type: "modernbert",
    class_stem: "ModernBert",
    prefix: "model",
    config: ConfigAdapter {
        renames: &[
            ("hidden_activation", "hidden_act"),
            ("norm_eps", "layer_norm_eps"),
        ],
        dropped: &["type_vocab_size"],
        // ModernBertConfig's defaults where they are not BertConfig's.
        defaults: &[
            ("vocab_size", Int(50368)),
            ("intermediate_size", Int(1152)),
            ("num_hidden_layers", Int(22)),
            ("max_position_embeddings", Int(8192)),
            ("layer_norm_eps", Float(1e-5)),
            ("pad_token_id", Int(50283)),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[
        ("embeddings.word_embeddings", "embeddings.tok_embeddings"),
        ("embeddings.LayerNorm", "embeddings.norm"),
    ],
    layers: LayerNames {
        path: LayerPath::Indexed("layers"),
        renames: &[
            ("attention.self.qkv", "attn.Wqkv"),
            ("attention.output.dense", "attn.Wo"),
            // Pre-norm: these two norms sit before the attention and the MLP.
            ("attention.output.LayerNorm", "attn_norm"),
            ("intermediate.dense", "mlp.Wi"),
            ("output.dense", "mlp.Wo"),
            ("output.LayerNorm", "mlp_norm"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::Fused,
    feed_forward: FeedForward::PackedGatedActivatedFirst,
    norms: NormPlacement::Pre {
        first_attention_norm: false,
        final_norm: "final_norm",
        embedding_norm: true,
        kind: NormKind::LayerNorm,
    },
    attention: AttentionPattern::GlobalAndSliding,
    optional_biases: &[
        OptionalBias {
            field: "attention_bias",
            default: false,
            parts: &["attention.self.qkv", "attention.output.dense"],
        },
        OptionalBias {
            field: "mlp_bias",
            default: false,
            parts: &["intermediate.dense", "output.dense"],
        },
        OptionalBias {
            field: "norm_bias",
            default: false,
            parts: &[
                "embeddings.LayerNorm",
                "attention.output.LayerNorm",
                "output.LayerNorm",
                "final_norm",
                "head.norm",
            ],
        },
        OptionalBias {
            field: "classifier_bias",
            default: false,
            parts: &["head.dense"],
        },
        OptionalBias {
            field: "decoder_bias",
            default: true,
            parts: &["decoder.bias"],
        },
    ],
    token_types: TokenTypes::Absent,
    positions: Positions::Rotary(RotaryPairs::HalfSplit),
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::Never),
    heads: Heads {
        sequence_classification: SequenceClassifier::PooledPredictionHead,
        masked_lm: MaskedLmHead {
            transform: "head.dense",
            activation: HeadActivation::Classifier,
            layer_norm: "head.norm",
            decoder: "decoder.weight",
            bias: "decoder.bias",
            width: HeadWidth::Hidden,
        },
        prediction_head: Some(PredictionHead {
            dense: "head.dense",
            activation: HeadActivation::Classifier,
            norm: "head.norm",
            qa_outputs: "classifier",
        }),
        masked_lm_unless_legacy: None,
        prefixes: &["head.", "decoder."],
    },
};

/// GTE (transformers' `gte`, the in-library form of Alibaba's remote
/// `NewModel`, gte-base-en-v1.5's architecture): NomicBERT's post-norm
/// rotary layers with biases in the fused `qkv_proj` and in `o_proj`, a
/// GeGLU MLP packed in one bias-free `up_gate_proj` ([up | gate]) before a
/// biased `down_proj`, no token-type input (row 0 of the table added when
/// there is one), a pooler only under the classifier, and RoBERTa-style
/// `lm_head` names with GELU.
pub(super) const GTE: FamilySpec = FamilySpec {
    model_type: "gte",
    class_stem: "Gte",
    prefix: "gte",
    config: ConfigAdapter {
        // The remote code's config (Alibaba-NLP/new-impl's `NewConfig`,
        // what gte-base-en-v1.5 ships) names the position embedding, which
        // is the family's rotation here.
        dropped: &["position_embedding_type"],
        // GteConfig's defaults where they are not BertConfig's.
        defaults: &[("rope_theta", Float(10000.0)), ("type_vocab_size", Int(0))],
        // The remote code's switches: what gte-base-en-v1.5 ships is built
        // (transformers' GteModel fixes them so); the others are refused.
        required: &[
            (
                "position_embedding_type",
                Str("rope"),
                "GTE with absolute position embeddings",
            ),
            ("layer_norm_type", Str("layer_norm"), "GTE with RMSNorm"),
            ("pack_qkv", Bool(true), "GTE with separate q, k, v projections"),
            ("logn_attention_scale", Bool(false), "log-n scaled attention"),
            ("logn_attention_clip1", Bool(false), "log-n scaled attention"),
        ],
        remote_code: Some(RemoteCodeNames {
            model_type: "new",
            class_stem: "New",
        }),
        // gte-base-en-v1.5's `rope_scaling: {type: ntk, factor: 2.0}`.
        ntk_rope_scaling: true,
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: LayerNames {
        path: LayerPath::Indexed("encoder.layer"),
        renames: &[
            ("attention.self.qkv", "attention.qkv_proj"),
            ("attention.output.dense", "attention.o_proj"),
            ("attention.output.LayerNorm", "attn_ln"),
            ("intermediate.dense", "mlp.up_gate_proj"),
            ("output.dense", "mlp.down_proj"),
            ("output.LayerNorm", "mlp_ln"),
        ],
        unbiased: &["intermediate.dense"],
    },
    feed_forward: FeedForward::PackedGated,
    token_types: TokenTypes::OptionalRow,
    heads: Heads {
        sequence_classification: SequenceClassifier::Pooler,
        masked_lm: MaskedLmHead {
            transform: "lm_head.dense",
            activation: HeadActivation::Gelu,
            layer_norm: "lm_head.norm",
            decoder: "lm_head.decoder.weight",
            bias: "lm_head.decoder.bias",
            width: HeadWidth::Hidden,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        prefixes: &["lm_head."],
    },
    // NomicBERT's: the fused QKV, half-split rotary positions (no table),
    // no embedding projection or relative bias, the classifier's pooler.
    ..NOMIC_BERT
};

/// Jina embeddings v3 (transformers' `jina_embeddings_v3`, the in-library
/// form of jinaai's remote `XLMRobertaLoRA`): XLM-R's post-norm layers and
/// heads with rotary positions instead of a position table, the flash-attn
/// BERT's weight names (`emb_ln`, one biased `mixer.Wqkv`, `mlp.fc1`/`fc2`,
/// `norm1`/`norm2`), the token-type table's row 0 added as a constant, and
/// a pooler only in the bare model. transformers' class has no LoRA
/// adapters (its `adapter_mask` changes nothing), so none is built.
pub(super) const JINA_EMBEDDINGS_V3: FamilySpec = FamilySpec {
    model_type: "jina_embeddings_v3",
    class_stem: "JinaEmbeddingsV3",
    prefix: "roberta",
    config: ConfigAdapter {
        // The rotation is the family's position embedding: read by the
        // row, not by BERT's `position_embedding_type`.
        dropped: &["position_embedding_type"],
        // JinaEmbeddingsV3Config's defaults where they are not BertConfig's.
        defaults: &[
            ("vocab_size", Int(250002)),
            ("hidden_size", Int(1024)),
            ("num_hidden_layers", Int(24)),
            ("num_attention_heads", Int(16)),
            ("intermediate_size", Int(4096)),
            ("max_position_embeddings", Int(8194)),
            ("type_vocab_size", Int(1)),
            ("layer_norm_eps", Float(1e-5)),
            ("pad_token_id", Int(1)),
            ("rope_theta", Float(20000.0)),
        ],
        required: &[(
            "position_embedding_type",
            Str("rotary"),
            "Jina embeddings v3 without rotary positions",
        )],
        ..ConfigAdapter::NONE
    },
    renames: &[("embeddings.LayerNorm", "emb_ln")],
    layers: LayerNames {
        path: LayerPath::Indexed("encoder.layers"),
        renames: &[
            ("attention.self.qkv", "mixer.Wqkv"),
            ("attention.output.dense", "mixer.out_proj"),
            ("attention.output.LayerNorm", "norm1"),
            ("intermediate.dense", "mlp.fc1"),
            ("output.dense", "mlp.fc2"),
            ("output.LayerNorm", "norm2"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::Fused,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::ConstantRow,
    positions: Positions::Rotary(RotaryPairs::HalfSplit),
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::BareModelOnly),
    heads: ROBERTA_HEADS,
};

/// EuroBERT (transformers' `eurobert`): a Llama-style encoder — pre-norm
/// layers with RMSNorm (`input_layernorm`, `post_attention_layernorm`, the
/// final `norm`) and no norm on the token embeddings, grouped-query
/// attention (`num_key_value_heads`), rotary positions, a SwiGLU MLP
/// (`down_proj(silu(gate_proj(x)) · up_proj(x))`), Linear biases only where
/// `attention_bias` / `mlp_bias` say; its classifier pools as
/// `classifier_pooling` says and its masked-LM head is one Linear.
pub(super) const EUROBERT: FamilySpec = FamilySpec {
    model_type: "eurobert",
    class_stem: "EuroBert",
    prefix: "model",
    config: ConfigAdapter {
        renames: &[("rms_norm_eps", "layer_norm_eps")],
        dropped: &["type_vocab_size"],
        // EuroBertConfig's defaults where they are not BertConfig's (its
        // rope_parameters default to transformers' θ 10000).
        defaults: &[
            ("vocab_size", Int(128256)),
            ("max_position_embeddings", Int(8192)),
            ("hidden_act", Str("silu")),
            ("layer_norm_eps", Float(1e-5)),
            ("pad_token_id", Int(128001)),
            ("tie_word_embeddings", Bool(false)),
            ("rope_theta", Float(10000.0)),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[("embeddings.word_embeddings", "embed_tokens")],
    layers: LayerNames {
        path: LayerPath::Indexed("layers"),
        renames: &[
            ("attention.self.query", "self_attn.q_proj"),
            ("attention.self.key", "self_attn.k_proj"),
            ("attention.self.value", "self_attn.v_proj"),
            ("attention.output.dense", "self_attn.o_proj"),
            // Pre-norm: these two norms sit before the attention and the MLP.
            ("attention.output.LayerNorm", "input_layernorm"),
            ("intermediate.dense", "mlp.up_proj"),
            ("intermediate.gate", "mlp.gate_proj"),
            ("output.dense", "mlp.down_proj"),
            ("output.LayerNorm", "post_attention_layernorm"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::SeparateGrouped,
    feed_forward: FeedForward::Gated,
    norms: NormPlacement::Pre {
        first_attention_norm: true,
        final_norm: "norm",
        embedding_norm: false,
        kind: NormKind::Rms,
    },
    attention: AttentionPattern::Full,
    optional_biases: &[
        OptionalBias {
            field: "attention_bias",
            default: false,
            parts: &[
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
            ],
        },
        OptionalBias {
            field: "mlp_bias",
            default: false,
            // EuroBertForMaskedLM's lm_head takes its bias from mlp_bias too.
            parts: &[
                "intermediate.dense",
                "intermediate.gate",
                "output.dense",
                "lm_head.bias",
            ],
        },
    ],
    token_types: TokenTypes::Absent,
    positions: Positions::Rotary(RotaryPairs::HalfSplit),
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::None,
    bucketed_relative_bias: None,
    disentangled: None,
    pooler: bert_pooler(PoolerRule::Never),
    heads: Heads {
        sequence_classification: SequenceClassifier::ConfigPooled(FirstTokenClassifier {
            dense: "dense",
            activation: HeadActivation::Gelu,
            out: "classifier",
        }),
        masked_lm: MaskedLmHead {
            transform: MaskedLmHead::NO_TRANSFORM,
            activation: HeadActivation::Gelu,
            layer_norm: MaskedLmHead::NO_TRANSFORM,
            decoder: "lm_head.weight",
            bias: "lm_head.bias",
            width: HeadWidth::Hidden,
        },
        prediction_head: None,
        masked_lm_unless_legacy: None,
        prefixes: &["dense.", "lm_head."],
    },
};

/// DeBERTa's masked-LM head in transformers' current layout
/// (`legacy: false`, microsoft's MLM checkpoints): `lm_predictions.lm_head`,
/// the decoder tied to the word embeddings.
const DEBERTA_LM_HEAD: MaskedLmHead = MaskedLmHead {
    transform: "lm_predictions.lm_head.dense",
    activation: HeadActivation::Hidden,
    layer_norm: "lm_predictions.lm_head.LayerNorm",
    decoder: "lm_predictions.lm_head.decoder.weight",
    bias: "lm_predictions.lm_head.bias",
    width: HeadWidth::Hidden,
};

/// DeBERTa's heads: the ContextPooler (dense + `pooler_hidden_act` on the
/// first token, under the classifier's own `pooler.`) before the
/// classifier; the masked-LM head in BERT's `cls.predictions` layout when
/// the config's `legacy` is true (its default), else `lm_predictions`.
const DEBERTA_HEADS: Heads = Heads {
    sequence_classification: SequenceClassifier::FirstToken(FirstTokenClassifier {
        dense: "pooler.dense",
        activation: HeadActivation::Pooler,
        out: "classifier",
    }),
    masked_lm: MaskedLmHead {
        transform: "cls.predictions.transform.dense",
        activation: HeadActivation::Hidden,
        layer_norm: "cls.predictions.transform.LayerNorm",
        decoder: "cls.predictions.decoder.weight",
        bias: "cls.predictions.bias",
        width: HeadWidth::Embedding,
    },
    prediction_head: None,
    masked_lm_unless_legacy: Some(DEBERTA_LM_HEAD),
    prefixes: &["cls.", "lm_predictions."],
};

/// DeBERTa v2 and v3 (transformers' `deberta-v2`): BERT's post-norm layers
/// with disentangled attention over log-bucketed relative positions
/// (builder/disentangled.rs), absolute positions only when
/// `position_biased_input`, token types only when `type_vocab_size` > 0,
/// `embed_proj` before the embeddings' norm when `embedding_size` differs,
/// v2's ConvLayer beside layer 0, no BertPooler.
pub(super) const DEBERTA_V2: FamilySpec = FamilySpec {
    model_type: "deberta-v2",
    class_stem: "DebertaV2",
    prefix: "deberta",
    config: ConfigAdapter {
        // DebertaV2Config's defaults where they are not BertConfig's.
        defaults: &[
            ("type_vocab_size", Int(0)),
            ("layer_norm_eps", Float(1e-7)),
            ("vocab_size", Int(128100)),
            ("hidden_size", Int(1536)),
            ("num_hidden_layers", Int(24)),
            ("num_attention_heads", Int(24)),
            ("intermediate_size", Int(6144)),
        ],
        ..ConfigAdapter::NONE
    },
    renames: &[],
    layers: LayerNames {
        path: LayerPath::Indexed("encoder.layer"),
        renames: &[
            ("attention.self.query", "attention.self.query_proj"),
            ("attention.self.key", "attention.self.key_proj"),
            ("attention.self.value", "attention.self.value_proj"),
        ],
        unbiased: &[],
    },
    qkv: QkvProjection::Separate,
    feed_forward: FeedForward::Plain,
    norms: NormPlacement::Post,
    attention: AttentionPattern::Full,
    optional_biases: &[],
    token_types: TokenTypes::InputWhenSized,
    positions: Positions::SequentialWhenBiased,
    sinusoidal_positions: false,
    embedding_projection: EmbeddingProjection::BeforeNormWhenResized("embeddings.embed_proj"),
    bucketed_relative_bias: None,
    disentangled: Some(Disentangled {
        table: "encoder.rel_embeddings",
        table_norm: Some("encoder.LayerNorm"),
        c2p_projection: "attention.self.pos_key_proj",
        p2c_projection: "attention.self.pos_query_proj",
        buckets_and_shared_keys: true,
        conv: Some("encoder.conv"),
    }),
    pooler: bert_pooler(PoolerRule::Never),
    heads: DEBERTA_HEADS,
};

/// DeBERTa v1 (transformers' `deberta`): v2 without buckets, shared keys,
/// a norm over the table or the ConvLayer, and with one bias-free
/// `in_proj` whose rows are per head [q_h | k_h | v_h] plus `q_bias` and
/// `v_bias`; its position projections are `pos_proj` (bias-free) and
/// `pos_q_proj`.
pub(super) const DEBERTA: FamilySpec = FamilySpec {
    model_type: "deberta",
    class_stem: "Deberta",
    config: ConfigAdapter {
        // DebertaConfig's defaults where they are not BertConfig's.
        defaults: &[
            ("type_vocab_size", Int(0)),
            ("layer_norm_eps", Float(1e-7)),
            ("vocab_size", Int(50265)),
        ],
        ..ConfigAdapter::NONE
    },
    layers: LayerNames {
        path: LayerPath::Indexed("encoder.layer"),
        renames: &[("attention.self.qkv", "attention.self.in_proj")],
        unbiased: &["attention.self.qkv", "attention.self.pos_proj"],
    },
    qkv: QkvProjection::FusedPerHead,
    disentangled: Some(Disentangled {
        table: "encoder.rel_embeddings",
        table_norm: None,
        c2p_projection: "attention.self.pos_proj",
        p2c_projection: "attention.self.pos_q_proj",
        buckets_and_shared_keys: false,
        conv: None,
    }),
    // v2's: the prefix, token types, positions, embed_proj, heads.
    ..DEBERTA_V2
};

#[cfg(test)]
mod tests {
    use crate::family::Family;

    /// Names that pick a family or a checkpoint's tensors must pick one.
    #[test]
    fn model_types_and_class_stems_are_unique() {
        let mut types: Vec<_> = Family::ALL.iter().map(|f| f.spec().model_type).collect();
        let mut stems: Vec<_> = Family::ALL.iter().map(|f| f.spec().class_stem).collect();
        for names in [&mut types, &mut stems] {
            names.sort();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "a name given twice: {names:?}");
        }
        assert_eq!(types.len(), Family::ALL.len());
        for f in Family::ALL {
            assert_eq!(Family::from_model_type(f.model_type()), Some(f));
        }
    }

    /// A layer rename that is a prefix of a later one would shadow it.
    #[test]
    fn longer_layer_renames_come_first() {
        for f in Family::ALL {
            let renames = f.spec().layers.renames;
            for (i, (earlier, _)) in renames.iter().enumerate() {
                for (later, _) in &renames[i + 1..] {
                    assert!(
                        !later.starts_with(&format!("{earlier}.")),
                        "{f:?}: `{earlier}` shadows `{later}`"
                    );
                }
            }
        }
    }
}
