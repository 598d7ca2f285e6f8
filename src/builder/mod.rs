//! Builds a BERT model (embeddings, encoder, pooler, task head) as an IR
//! graph from a config and its parameters.

mod bert;
mod disentangled;
mod glu;
mod grouped_query;
mod heads;
mod mpnet;
mod param_names;
mod params;
mod pooling;
mod positions;
mod pre_norm;
mod prediction_head;
mod primitives;
mod relative;
mod rotary;
mod sliding;

use std::collections::HashMap;

use crate::config::BertConfig;
use crate::ir::{Graph, IrError, Value};
use crate::weights::Weights;

pub use crate::family::RotaryPairs;
pub use disentangled::{deberta_bucket, table_row};
pub use grouped_query::repeated_kv_heads;
pub use mpnet::mpnet_bucket;
pub use params::{bert_model_params, model_params};
pub use pooling::{Pooling, SentencePooling};
pub use rotary::{inverse_frequencies, ntk_inverse_frequencies, rotate_reference, Rotary};

// Where callers have always found them, though they live below the
// builder (so that the family table and the weights need not import it).
pub use crate::family::UnknownArchitecture;
pub use crate::head::Head;
pub use crate::weights::sinusoidal_table;

/// Which model to build on the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    pub head: Head,
    /// Whether the model has BertPooler (`pooler.dense`).
    pub pooler: bool,
    /// Keep `last_hidden_state` as a second output beside a head's own
    /// (the sentence-embedding head's token vectors, for reranking or
    /// late interaction).
    pub keep_last_hidden_state: bool,
    /// The sentence-embedding head's pooling and normalisation (read only
    /// by that head).
    pub sentence: SentencePooling,
}

impl ModelSpec {
    /// The model transformers builds for `head`, pooler included where it
    /// builds one.
    pub fn new(head: Head) -> ModelSpec {
        ModelSpec {
            head,
            pooler: head.uses_pooler(),
            keep_last_hidden_state: false,
            sentence: SentencePooling::default(),
        }
    }

    /// The model transformers builds for `head` in the config's family:
    /// RoBERTa's classifier reads the first token itself, DistilBERT and
    /// ELECTRA have no pooler at all (the family table's pooler rule).
    pub fn for_config(head: Head, config: &BertConfig) -> ModelSpec {
        ModelSpec {
            pooler: config.family.pooler_for(head),
            ..ModelSpec::new(head)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error("parameter `{0}` was not provided")]
    MissingParam(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Builds the BertModel graph with inputs `input_ids`, `attention_mask`,
/// `token_type_ids` and outputs `last_hidden_state`, `pooler_output`.
pub fn build_bert_model(config: &BertConfig, weights: Weights) -> Result<Graph, BuildError> {
    build_model(config, &ModelSpec::for_config(Head::Base, config), weights)
}

/// Builds the model `spec` describes, with inputs `input_ids`,
/// `attention_mask`, `token_type_ids` and the head's outputs. The config
/// and, for labelled heads, `num_labels` and `id2label` go into the
/// metadata.
pub fn build_model(config: &BertConfig, spec: &ModelSpec, weights: Weights) -> Result<Graph, BuildError> {
    let mut b = Builder::new(config, weights);
    b.model(spec)?;
    let meta = &mut b.g.metadata;
    meta.insert("bertc.config".into(), config.to_canonical_json());
    meta.insert("bertc.head".into(), spec.head.name().into());
    if spec.head == Head::SentenceEmbedding {
        meta.insert("bertc.pooling".into(), spec.sentence.mode.name().into());
        meta.insert("bertc.normalize".into(), spec.sentence.normalize.to_string());
    }
    if spec.head.has_labels() {
        meta.insert("num_labels".into(), config.num_labels.to_string());
        let labels: serde_json::Map<String, serde_json::Value> = config
            .id2label
            .iter()
            .map(|(i, l)| (i.to_string(), serde_json::Value::String(l.clone())))
            .collect();
        meta.insert("id2label".into(), serde_json::Value::Object(labels).to_string());
    }
    Ok(b.g)
}

/// The activation `act` alone, in the primitive form the encoder uses:
/// input `x` (f32 [n]), output `y`. How each activation's numbers are
/// checked against its formula, and its fusion tested, in isolation.
pub fn build_activation(act: crate::config::Activation) -> Result<Graph, BuildError> {
    let config = BertConfig::from_json_str("{}", "defaults").expect("the defaults are a valid config");
    let mut b = Builder::new(&config, Weights::default());
    let shape = crate::ir::Shape(vec![crate::ir::Dim::sym("n")]);
    let x = b.g.add_input("x", crate::ir::DType::F32, shape)?;
    let y = b.activation(x, act, "act")?;
    b.g.set_output("y", y);
    Ok(b.g)
}

/// RoPE `r` alone, as the encoder applies it to queries and keys: input
/// `x` (f32 [B, S, heads, head_size]), output `y`. How the rotation's
/// numbers are checked against [`rotate_reference`], for every pairing and
/// partial widths, apart from any family.
pub fn build_rotation(r: Rotary, heads: usize, head_size: usize) -> Result<Graph, BuildError> {
    let mut config = BertConfig::from_json_str("{}", "defaults").expect("the defaults are a valid config");
    config.num_attention_heads = heads;
    config.hidden_size = heads * head_size;
    let mut b = Builder::new(&config, Weights::default());
    use crate::ir::{DType, Dim, Shape, BATCH, SEQUENCE};
    let dims = [
        Dim::sym(BATCH),
        Dim::sym(SEQUENCE),
        Dim::Fixed(heads as i64),
        Dim::Fixed(head_size as i64),
    ];
    let x = b.g.add_input("x", DType::F32, Shape(dims.to_vec()))?;
    let y = b.rotate_with(x, r, "rotary")?;
    b.g.set_output("y", y);
    Ok(b.g)
}

/// Build state: the graph so far, the config, and the parameters not yet used.
pub(crate) struct Builder<'c> {
    pub(crate) g: Graph,
    pub(crate) config: &'c BertConfig,
    weights: Weights,
    /// The relative-distance index [S, S], shared by every layer.
    distance_index: Option<Value>,
    /// True for the queries a sliding window leaves no key ([B, S, 1];
    /// builder/sliding.rs), shared by the sliding layers.
    sliding_blind_rows: Option<Value>,
    /// DeBERTa's padding rows, gather indices and relative table, shared
    /// by every layer (builder/disentangled.rs).
    disentangled: Option<disentangled::Shared>,
    /// Parameters already in the graph, by the family's name: ALBERT's
    /// layers share them, and a shared weight is stored once.
    shared: HashMap<String, Value>,
}

impl<'c> Builder<'c> {
    /// An empty graph for `config`, drawing parameters from `weights`.
    fn new(config: &'c BertConfig, weights: Weights) -> Builder<'c> {
        Builder {
            g: Graph::new(),
            config,
            weights,
            distance_index: None,
            sliding_blind_rows: None,
            disentangled: None,
            shared: HashMap::new(),
        }
    }

    /// Adds parameter `name` (BERT's canonical name) as a constant node
    /// named as the family names it (param_names.rs), or returns the node
    /// already made for that family name.
    pub(crate) fn param(&mut self, name: &str) -> Result<Value, BuildError> {
        self.param_mapped(name, Some)
    }

    /// Parameter `name` stored in another layout: `relayout` maps the
    /// checkpoint's tensor to the one the graph reads (DeBERTa's per-head
    /// `in_proj` columns, the ConvLayer's kernel as a MatMul weight), or
    /// refuses it (`None`: not the f32 tensor of the size it expects).
    pub(crate) fn param_mapped(
        &mut self,
        name: &str,
        relayout: impl FnOnce(crate::ir::Tensor) -> Option<crate::ir::Tensor>,
    ) -> Result<Value, BuildError> {
        let name = param_names::param_name(self.config, name);
        if let Some(&v) = self.shared.get(&name) {
            return Ok(v);
        }
        let t = self
            .weights
            .take(&name)
            .ok_or_else(|| BuildError::MissingParam(name.clone()))?;
        let t = relayout(t).ok_or_else(|| {
            BuildError::Unsupported(format!("parameter `{name}`: not the f32 tensor expected"))
        })?;
        let v = self.g.add_const(&name, t)?;
        self.shared.insert(name, v);
        Ok(v)
    }
}
