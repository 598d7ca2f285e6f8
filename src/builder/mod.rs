//! Builds BertModel (embeddings, encoder, pooler) as an IR graph from a
//! config and its parameters.

mod bert;
mod params;
mod primitives;

use crate::config::BertConfig;
use crate::ir::{Graph, IrError, Value};
use crate::weights::Weights;

pub use params::bert_model_params;

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
    let mut b = Builder {
        g: Graph::new(),
        config,
        weights,
    };
    b.bert_model()?;
    b.g.metadata
        .insert("bertc.config".into(), config.to_canonical_json());
    Ok(b.g)
}

/// Build state: the graph so far, the config, and the parameters not yet used.
pub(crate) struct Builder<'c> {
    pub(crate) g: Graph,
    pub(crate) config: &'c BertConfig,
    weights: Weights,
}

impl Builder<'_> {
    /// Adds parameter `name` as a constant node of the same name.
    pub(crate) fn param(&mut self, name: &str) -> Result<Value, BuildError> {
        let t = self
            .weights
            .take(name)
            .ok_or_else(|| BuildError::MissingParam(name.to_string()))?;
        Ok(self.g.add_const(name, t)?)
    }
}
