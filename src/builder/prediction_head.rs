//! ModernBERT's task heads: every one runs the prediction head
//! `norm(act(dense(x)))` (`ModernBertPredictionHead`) before its Linear, and
//! the sequence classifier first pools the hidden states as the config's
//! `classifier_pooling` says. The family table names the parts
//! ([`PredictionHead`]); families without a prediction head read the
//! encoder's output directly and get no node from here.

use crate::config::ClassifierPooling;
use crate::family::PredictionHead;
use crate::ir::Value;

use super::heads::head_activation;
use super::pooling::{Pooling, SentencePooling};
use super::{BuildError, Builder};

impl Builder<'_> {
    /// `x` through the family's prediction head, or `x` itself.
    pub(super) fn prediction_head(&mut self, x: Value) -> Result<Value, BuildError> {
        let Some(h) = self.config.family.spec().heads.prediction_head else {
            return Ok(x);
        };
        self.prediction_head_layers(x, &h)
    }

    fn prediction_head_layers(&mut self, x: Value, h: &PredictionHead) -> Result<Value, BuildError> {
        let y = self.linear(x, h.dense)?;
        let act = head_activation(h.activation, self.config);
        let name = h.dense.strip_suffix(".dense").unwrap_or(h.dense);
        let y = self.activation(y, act, &format!("{name}.act"))?;
        self.layer_norm(y, h.norm)
    }

    /// The pooled sequence classifier: pool, prediction head, `classifier`.
    /// The mean is sentence-transformers' masked mean (the same sum over
    /// real tokens divided by their count; its 1e-9 floor only matters for
    /// a row without any real token).
    pub(super) fn pooled_prediction_head(
        &mut self,
        hidden: Value,
        attention_mask: Value,
    ) -> Result<Value, BuildError> {
        let mode = match self.config.classifier_pooling.unwrap_or(ClassifierPooling::Cls) {
            ClassifierPooling::Cls | ClassifierPooling::Bos => Pooling::Cls,
            ClassifierPooling::Mean => Pooling::Mean,
            ClassifierPooling::Late => {
                return Err(BuildError::Unsupported(
                    "classifier_pooling \"late\" on a prediction head (the config reader allows \
                     only cls or mean here)"
                        .into(),
                ))
            }
        };
        let pooling = SentencePooling {
            mode,
            normalize: false,
        };
        let pooled = self.sentence_embedding(hidden, attention_mask, pooling)?;
        let x = self.prediction_head(pooled)?;
        self.linear(x, "classifier")
    }

    /// Question answering's Linear: `qa_outputs`, or the one the family's
    /// prediction head names.
    pub(super) fn qa_outputs_name(&self) -> &'static str {
        match self.config.family.spec().heads.prediction_head {
            Some(h) => h.qa_outputs,
            None => "qa_outputs",
        }
    }
}
