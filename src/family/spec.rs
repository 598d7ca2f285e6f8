//! The shape of one row of the family table ([`super::table`]): every way a
//! family may differ from BERT outside its math, as data. Each switch is an
//! enum its readers match exhaustively, so a new kind of difference (a new
//! variant) is met by the compiler everywhere it must be handled.
//!
//! This module depends on nothing but [`crate::head`]: the config module's
//! adapter, the builder and the cost model read it; it reads none of them.

use crate::head::Head;

/// One family: its names, config adapter, weight names, structural
/// switches and heads.
#[derive(Debug, Clone, Copy)]
pub struct FamilySpec {
    /// transformers' `model_type`, as config.json spells it and as bertc
    /// writes it back into the metadata.
    pub model_type: &'static str,
    /// The class-name stem of its architectures (`Roberta` for
    /// `RobertaModel`, `RobertaForMaskedLM`, …).
    pub class_stem: &'static str,
    /// The attribute a `*For*` class keeps the encoder under: the weight-name
    /// prefix of its checkpoints (XLM-R and CamemBERT reuse `roberta`).
    pub prefix: &'static str,
    /// How its `config.json` becomes BERT's field names.
    pub config: ConfigAdapter,
    /// BERT's name of a part outside the encoder layers → the family's
    /// (NomicBERT's `emb_ln` for `embeddings.LayerNorm`); parts not listed
    /// keep BERT's name.
    pub renames: &'static [(&'static str, &'static str)],
    /// Where its encoder layers' weights live and what their parts are called.
    pub layers: LayerNames,
    pub qkv: QkvProjection,
    pub feed_forward: FeedForward,
    /// Where each layer's norms sit.
    pub norms: NormPlacement,
    /// Whether the config may make some layers attend within a window.
    pub attention: AttentionPattern,
    /// Biases (of Linears and norms) a config field switches off.
    pub optional_biases: &'static [OptionalBias],
    pub token_types: TokenTypes,
    pub positions: Positions,
    /// Whether `sinusoidal_pos_embds` may ask for the fixed sinusoidal
    /// position table (DistilBERT's `create_sinusoidal_embeddings`).
    pub sinusoidal_positions: bool,
    pub embedding_projection: EmbeddingProjection,
    /// MPNet's relative-position bias: the name of its learned table, whose
    /// `relative_attention_num_buckets` rows are read through bucketed
    /// distances (builder/mpnet.rs), one bias shared by every layer.
    pub bucketed_relative_bias: Option<&'static str>,
    /// DeBERTa's disentangled attention (builder/disentangled.rs): each
    /// layer's scores gain content-to-position and position-to-content
    /// terms read from one shared table of relative-position embeddings.
    pub disentangled: Option<Disentangled>,
    pub pooler: Pooler,
    pub heads: Heads,
}

/// transformers' config class of the family, as a rewrite of its
/// `config.json` into BERT's field names (the `attribute_map` renames and
/// the class's own defaults), applied before the one BERT validation.
#[derive(Debug, Clone, Copy)]
pub struct ConfigAdapter {
    /// The family's field name → BERT's (DistilBERT's `dim` → `hidden_size`).
    /// Errors about a renamed field name it as the file spells it.
    pub renames: &'static [(&'static str, &'static str)],
    /// Values the family's model fixes whatever the file says
    /// (DistilBERT's layer-norm epsilon).
    pub fixed: &'static [(&'static str, ConfigValue)],
    /// BERT fields the family's model does not have, dropped from the file
    /// (DistilBERT's `type_vocab_size`).
    pub dropped: &'static [&'static str],
    /// The defaults of the family's config class for fields its file leaves
    /// out or sets to null, under BERT's names.
    pub defaults: &'static [(&'static str, ConfigValue)],
    /// Switches of the family's file that bertc builds at one value only
    /// (NomicBERT's remote-code `rotary_emb_interleaved: false`), under the
    /// file's names, with what another value would ask for: another value
    /// is refused by name; absent or null is the value given.
    pub required: &'static [(&'static str, ConfigValue, &'static str)],
    /// The names a remote-code checkpoint of the family gives its config
    /// and classes where they are not transformers' (Alibaba's GTE:
    /// `model_type: "new"`, `NewModel`, …).
    pub remote_code: Option<RemoteCodeNames>,
    /// Whether `rope_scaling` is read as the NTK scaling of GTE's remote
    /// code (`config::BertConfig::rope_ntk_factor`).
    pub ntk_rope_scaling: bool,
}

/// A remote-code family's own `model_type` and class-name stem.
#[derive(Debug, Clone, Copy)]
pub struct RemoteCodeNames {
    pub model_type: &'static str,
    pub class_stem: &'static str,
}

impl ConfigAdapter {
    /// BERT's own config: nothing to rewrite.
    pub const NONE: ConfigAdapter = ConfigAdapter {
        renames: &[],
        fixed: &[],
        dropped: &[],
        defaults: &[],
        required: &[],
        remote_code: None,
        ntk_rope_scaling: false,
    };
}

/// A config value the table can hold in a `const` (JSON values cannot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigValue {
    Int(u64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
    /// JSON null: as a `required` value, the switch must be absent or null.
    Null,
}

/// The weight names of the encoder layers. The builder names every
/// parameter as BERT does (`encoder.layer.3.attention.self.query.weight`);
/// these give the family's name.
#[derive(Debug, Clone, Copy)]
pub struct LayerNames {
    pub path: LayerPath,
    /// BERT's name of a part of a layer → the family's (longest first where
    /// one is a prefix of another); parts not listed keep BERT's name.
    pub renames: &'static [(&'static str, &'static str)],
    /// The Linears of a layer (BERT's names) that have no bias: the
    /// checkpoint holds none and the builder adds none.
    pub unbiased: &'static [&'static str],
}

/// Where layer N's weights live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerPath {
    /// One set per layer, under `{0}.N.` (`encoder.layer` for BERT,
    /// `transformer.layer` for DistilBERT).
    Indexed(&'static str),
    /// ALBERT: `num_hidden_groups` groups of `inner_group_num` layers under
    /// `{0}.G.albert_layers.I.`, every group run by several layers
    /// (`num_hidden_groups` and `inner_group_num` are read from the config).
    SharedGroups(&'static str),
}

impl LayerPath {
    /// The path every layer's weights live under.
    pub fn root(self) -> &'static str {
        match self {
            LayerPath::Indexed(root) | LayerPath::SharedGroups(root) => root,
        }
    }
}

/// Whether and how token types enter the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypes {
    /// A `token_type_ids` input and its table (BERT, ELECTRA, ALBERT).
    Input,
    /// A table but no input (Optimum gives none): row 0 is added as a
    /// constant, transformers' zero buffer (RoBERTa).
    ConstantRow,
    /// As `ConstantRow` when `type_vocab_size` > 0; no table when it is 0
    /// (GTE: transformers builds the table only for a positive size, and
    /// gte-base-en-v1.5 has none).
    OptionalRow,
    /// No table at all (DistilBERT, MPNet).
    Absent,
    /// A `token_type_ids` input and its table when `type_vocab_size` > 0,
    /// neither when it is 0 (DeBERTa: transformers builds the table only
    /// for a positive size, and every DeBERTa-v3 checkpoint has none).
    InputWhenSized,
}

impl TokenTypes {
    /// Whether the model reads a `token_type_ids` input.
    pub fn is_input(self, type_vocab_size: usize) -> bool {
        match self {
            TokenTypes::Input => true,
            TokenTypes::InputWhenSized => type_vocab_size > 0,
            TokenTypes::ConstantRow | TokenTypes::OptionalRow | TokenTypes::Absent => false,
        }
    }

    /// Whether the embeddings hold a token-type table of
    /// `type_vocab_size` rows.
    pub fn has_table(self, type_vocab_size: usize) -> bool {
        match self {
            TokenTypes::Input | TokenTypes::ConstantRow => true,
            TokenTypes::OptionalRow | TokenTypes::InputWhenSized => type_vocab_size > 0,
            TokenTypes::Absent => false,
        }
    }
}

/// How position ids are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// 0..S, a slice of the `position_ids` buffer (BERT).
    Sequential,
    /// `pad_token_id + 1 + cumsum(ids ≠ pad)` over the real tokens,
    /// `pad_token_id` on padding (RoBERTa's
    /// `create_position_ids_from_input_ids`): left padding shifts nothing.
    /// Needs `pad_token_id`, and the position table starts past it.
    FromPadding,
    /// No position table: every layer rotates its queries and keys by
    /// their position, 0..S (RoPE; builder/rotary.rs), with the base θ the
    /// config gives (`rope_parameters.rope_theta`) over the whole head.
    Rotary(RotaryPairs),
    /// As `Sequential` when the config's `position_biased_input` (default
    /// true) says so; otherwise no table, and positions enter the attention
    /// only (DeBERTa-v3's relative positions).
    SequentialWhenBiased,
}

impl Positions {
    /// Whether the embeddings add a position table (all but rotary models,
    /// and DeBERTa's unless `position_biased_input`).
    pub fn has_table(self, position_biased_input: bool) -> bool {
        match self {
            Positions::Sequential | Positions::FromPadding => true,
            Positions::SequentialWhenBiased => position_biased_input,
            Positions::Rotary(_) => false,
        }
    }
}

/// Which dimensions RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotaryPairs {
    /// Dimension i with i + d/2 (GPT-NeoX's `rotate_half`: transformers'
    /// Llama-style models, NomicBERT, GTE, ModernBERT, EuroBERT, Jina v3).
    HalfSplit,
    /// Dimension 2i with 2i + 1 (GPT-J's, `rotary_emb_interleaved`).
    Interleaved,
}

/// How a layer projects its hidden states to queries, keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvProjection {
    /// Three Linears, `attention.self.{query,key,value}` (BERT).
    Separate,
    /// One Linear of 3 × hidden outputs, rows [q | k | v], named
    /// `attention.self.qkv` in BERT's terms (NomicBERT's `attn.Wqkv`).
    Fused,
    /// Three Linears, keys and values with the config's
    /// `num_key_value_heads` heads, each read by
    /// `num_attention_heads / num_key_value_heads` query heads in turn
    /// (grouped-query attention: EuroBERT's `repeat_kv`).
    SeparateGrouped,
    /// One bias-free Linear whose rows are per head, [q_h | k_h | v_h] for
    /// each head h in turn, plus biases of Q and V only
    /// (`attention.self.q_bias`, `attention.self.v_bias`): DeBERTa v1's
    /// `in_proj`, named `attention.self.qkv` in BERT's terms.
    FusedPerHead,
}

/// The feed-forward block of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedForward {
    /// `output.dense(act(intermediate.dense(x)))` (BERT).
    Plain,
    /// A gated linear unit (builder/glu.rs):
    /// `output.dense(intermediate.dense(x) · act(intermediate.gate(x)))`,
    /// SwiGLU when the activation is silu (NomicBERT's fc11 · silu(fc12)).
    Gated,
    /// The same unit from one Linear of 2 × intermediate outputs, `[up |
    /// gate]`: `output.dense(up · act(gate))` with
    /// `[up | gate] = intermediate.dense(x)` (GTE's `up_gate_proj`).
    PackedGated,
    /// The same from one Linear, rows `[input | gate]`, the activation on
    /// the first half: `output.dense(act(input) · gate)` (ModernBERT's `Wi`).
    PackedGatedActivatedFirst,
}

/// Where a layer's norms sit around its two sublayers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormPlacement {
    /// After each residual sum, `norm(x + sublayer(x))` (BERT): the
    /// attention's norm is `attention.output.LayerNorm`, the MLP's
    /// `output.LayerNorm`.
    Post,
    /// Before each sublayer, `x + sublayer(norm(x))`, the same two norms in
    /// front of the attention and the MLP, and one norm after the last layer
    /// (ModernBERT's `attn_norm`, `mlp_norm`, `final_norm`).
    Pre {
        /// Whether layer 0 has its attention norm (ModernBERT's is an
        /// Identity: the embeddings' norm precedes it).
        first_attention_norm: bool,
        /// The norm after the last layer (BERT's name; the family's
        /// `renames` give the checkpoint's).
        final_norm: &'static str,
        /// Whether the embeddings are normed (ModernBERT's `embeddings.norm`;
        /// EuroBERT's layers read the token embeddings as they are).
        embedding_norm: bool,
        /// Which norm every one of them is.
        kind: NormKind,
    },
}

impl NormPlacement {
    /// Whether the embeddings end in a norm: every post-norm family's do.
    pub fn embedding_norm(self) -> bool {
        match self {
            NormPlacement::Post => true,
            NormPlacement::Pre { embedding_norm, .. } => embedding_norm,
        }
    }

    /// The family's norm (post-norm families all use LayerNorm).
    pub fn kind(self) -> NormKind {
        match self {
            NormPlacement::Post => NormKind::LayerNorm,
            NormPlacement::Pre { kind, .. } => kind,
        }
    }
}

/// What a norm computes over the last axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `(x − mean) / √(var + ε) · γ (+ β)`.
    LayerNorm,
    /// RMSNorm, `γ · x / √(mean(x²) + ε)`: no centring and never a bias
    /// (Llama's, EuroBERT's).
    Rms,
}

/// Which keys a layer's queries see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPattern {
    /// Every layer attends over the whole sequence.
    Full,
    /// Global layers attend over the whole sequence, the others only within
    /// `local_attention / 2` positions, each with its own rotary θ
    /// (ModernBERT; the config's `layer_types` or
    /// `global_attn_every_n_layers` say which is which; builder/sliding.rs).
    GlobalAndSliding,
}

/// A bias the config switches off: when boolean `field` (default
/// `default`) is false, the Linears and norms `parts` have none. Layer
/// parts are named as in [`LayerNames::unbiased`], other parts by BERT's
/// full name (`embeddings.LayerNorm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalBias {
    pub field: &'static str,
    pub default: bool,
    pub parts: &'static [&'static str],
}

/// The Linear from `embedding_size` to the hidden size before the encoder
/// (the config's `embedding_size` is read only where there is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingProjection {
    None,
    /// Only when `embedding_size` differs from the hidden size (ELECTRA's
    /// `embeddings_project`).
    WhenResized(&'static str),
    /// Always (ALBERT's `encoder.embedding_hidden_mapping_in`).
    Always(&'static str),
    /// Only when resized, bias-free, and before the embeddings' norm, which
    /// then has the hidden width (DeBERTa's `embed_proj`; the config's
    /// `embedding_size` defaults to the hidden size).
    BeforeNormWhenResized(&'static str),
}

impl EmbeddingProjection {
    /// The Linear's name, whether or not a config needs it.
    pub fn linear(self) -> Option<&'static str> {
        match self {
            EmbeddingProjection::None => None,
            EmbeddingProjection::WhenResized(name)
            | EmbeddingProjection::Always(name)
            | EmbeddingProjection::BeforeNormWhenResized(name) => Some(name),
        }
    }
}

/// DeBERTa's disentangled attention: where its parts live. The math (and
/// what v1 and v2 share) is builder/disentangled.rs's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disentangled {
    /// The relative-position embeddings every layer reads (`encoder.rel_embeddings`).
    pub table: &'static str,
    /// The norm over the table when the config's `norm_rel_ebd` has
    /// `layer_norm` (v2's `encoder.LayerNorm`); `None`: the family has none (v1).
    pub table_norm: Option<&'static str>,
    /// The layer's Linears projecting the table for the content-to-position
    /// term (keys of positions) and the position-to-content term (queries
    /// of positions), as layer parts in BERT's terms.
    pub c2p_projection: &'static str,
    pub p2c_projection: &'static str,
    /// Whether the config's `position_buckets` and `share_att_key` are read
    /// (v2: log buckets, and the layer's own query/key projections over the
    /// table); v1 has neither.
    pub buckets_and_shared_keys: bool,
    /// v2's ConvLayer beside the first layer (`encoder.conv`), built when
    /// the config's `conv_kernel_size` > 0.
    pub conv: Option<&'static str>,
}

/// BertPooler (`tanh(dense(hidden[:, 0]))`): which models have it, and its
/// Linear's name.
#[derive(Debug, Clone, Copy)]
pub struct Pooler {
    pub when: PoolerRule,
    /// Its Linear (ALBERT's is a bare `pooler`). Families without a pooler
    /// keep BERT's name, read only if a caller's `ModelSpec` (the builder's)
    /// asks for a pooler anyway.
    pub linear: &'static str,
}

/// Which heads transformers builds the pooler for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerRule {
    /// BERT's rule (`add_pooling_layer`): the heads that read it, the bare
    /// model and sequence classification (BERT, ALBERT).
    WithPoolerHeads,
    /// Only the bare model: the classifier reads the first token itself
    /// (RoBERTa, MPNet).
    BareModelOnly,
    /// Only sequence classification, whose classifier reads it; the bare
    /// model has none (NomicBERT: `add_pooling_layer` defaults to false).
    ClassifierOnly,
    /// None at all (DistilBERT, ELECTRA).
    Never,
}

impl Pooler {
    /// Whether transformers builds a pooler for `head`.
    pub fn exists_for(self, head: Head) -> bool {
        match self.when {
            PoolerRule::WithPoolerHeads => head.uses_pooler(),
            PoolerRule::BareModelOnly => head == Head::Base,
            PoolerRule::ClassifierOnly => head == Head::SequenceClassification,
            PoolerRule::Never => false,
        }
    }
}

/// The family's task heads as data: which layers its `*For*` classes put on
/// the encoder and under which names. The builder builds them and the
/// parameter listing lists them from these same descriptions, so the two
/// cannot disagree. Token classification (`classifier`) and question
/// answering (`qa_outputs`) are the same in every family.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub sequence_classification: SequenceClassifier,
    pub masked_lm: MaskedLmHead,
    /// The masked-LM head's layout when the config's `legacy` is false
    /// (DeBERTa-v2's `lm_predictions.lm_head.*`, what microsoft's MLM
    /// checkpoints use); `None`: `masked_lm` whatever the config says.
    pub masked_lm_unless_legacy: Option<MaskedLmHead>,
    /// A layer the family's token classifier, question answering and pooled
    /// sequence classifier run first (ModernBERT's `head`); `None`: they
    /// read the encoder's output.
    pub prediction_head: Option<PredictionHead>,
    /// The weight-name prefixes of the family's own head parameters beyond
    /// the shared `classifier.` and `qa_outputs.`, including heads bertc
    /// does not build (ELECTRA's `discriminator_predictions.`): such
    /// checkpoint tensors are left unread, never refused.
    pub prefixes: &'static [&'static str],
}

/// What `*ForSequenceClassification` classifies from.
#[derive(Debug, Clone, Copy)]
pub enum SequenceClassifier {
    /// A `classifier` Linear on the pooler (BERT, ALBERT).
    Pooler,
    /// Its own dense layer on the first token.
    FirstToken(FirstTokenClassifier),
    /// The hidden states pooled as the config's `classifier_pooling` says
    /// (`cls`: position 0, even in a left-padded row; `mean`: the mean over
    /// real tokens), then the family's prediction head, then `classifier`
    /// (ModernBERT).
    PooledPredictionHead,
    /// `out(act(dense(·)))` on the pooling the config's `classifier_pooling`
    /// names: `bos`, position 0; `mean`, the mean of the hidden states over
    /// real tokens; `late` (EuroBERT's default), the layers on every token,
    /// then the mean of the logits over real tokens.
    ConfigPooled(FirstTokenClassifier),
}

/// `norm(act(dense(x)))` before the task's Linear (ModernBERT's
/// `ModernBertPredictionHead`), and the name of question answering's Linear
/// after it.
#[derive(Debug, Clone, Copy)]
pub struct PredictionHead {
    pub dense: &'static str,
    pub activation: HeadActivation,
    pub norm: &'static str,
    /// Question answering's Linear (ModernBERT reuses `classifier`).
    pub qa_outputs: &'static str,
}

/// A classifier on the first token with its own dense layer (RoBERTa's
/// `RobertaClassificationHead`, ELECTRA's, MPNet's, DistilBERT's
/// `pre_classifier`): `out(act(dense(hidden[:, 0])))`.
#[derive(Debug, Clone, Copy)]
pub struct FirstTokenClassifier {
    pub dense: &'static str,
    pub activation: HeadActivation,
    pub out: &'static str,
}

/// The masked-LM head: `decoder(LayerNorm(act(transform(hidden)))) + bias`,
/// the decoder tied to the word embeddings unless `tie_word_embeddings`
/// is false.
#[derive(Debug, Clone, Copy)]
pub struct MaskedLmHead {
    /// The transform's Linear; empty ([`MaskedLmHead::NO_TRANSFORM`]) where
    /// the decoder reads the encoder's output directly (EuroBERT's bare
    /// `lm_head`): then `activation` and `layer_norm` are not read.
    pub transform: &'static str,
    pub activation: HeadActivation,
    pub layer_norm: &'static str,
    /// The untied decoder weight's name.
    pub decoder: &'static str,
    pub bias: &'static str,
    /// Width of the transform's output (and the decoder's input).
    pub width: HeadWidth,
}

impl MaskedLmHead {
    /// The `transform` of a head that has none.
    pub const NO_TRANSFORM: &'static str = "";

    /// Whether a transform (dense → activation → norm) precedes the decoder.
    pub fn has_transform(&self) -> bool {
        self.transform != Self::NO_TRANSFORM
    }
}

/// The activation of a head layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadActivation {
    Tanh,
    Relu,
    /// Exact GELU, whatever `hidden_act` says.
    Gelu,
    /// The config's `hidden_act`.
    Hidden,
    /// The config's `classifier_activation` (ModernBERT; GELU when absent).
    Classifier,
    /// The config's `pooler_hidden_act` (DeBERTa's ContextPooler; GELU when absent).
    Pooler,
}

/// A head layer's width, as the config gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadWidth {
    /// `hidden_size`.
    Hidden,
    /// `embedding_size`: back to the embeddings' width (ALBERT, ELECTRA).
    Embedding,
}
