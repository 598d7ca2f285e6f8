//! The task heads on top of the encoder, as transformers' `*For*` classes
//! and sentence-transformers compute them, with Optimum's output names; the
//! layers and names of each family's heads are its row of the family table.

use crate::config::{Activation, BertConfig, ClassifierPooling};
use crate::family::{FirstTokenClassifier, HeadActivation, HeadWidth, SequenceClassifier};
use crate::ir::{BinaryOp, Op, Tensor, Value};

use super::pooling::{Pooling, SentencePooling};
use super::{BuildError, Builder, Head, ModelSpec};

impl Builder<'_> {
    /// Adds the head's nodes and sets the graph outputs.
    pub(super) fn head(
        &mut self,
        spec: &ModelSpec,
        hidden: Value,
        pooled: Option<Value>,
        attention_mask: Value,
    ) -> Result<(), BuildError> {
        let keep_hidden = spec.keep_last_hidden_state || spec.head == Head::Base;
        if keep_hidden {
            self.g.set_output("last_hidden_state", hidden);
        }
        match spec.head {
            Head::Base => {
                if let Some(pooled) = pooled {
                    self.g.set_output("pooler_output", pooled);
                }
            }
            Head::SequenceClassification => {
                let logits = match self.config.family.spec().heads.sequence_classification {
                    SequenceClassifier::FirstToken(c) => self.first_token_classifier(hidden, &c)?,
                    SequenceClassifier::Pooler => {
                        let pooled = pooled.ok_or_else(|| {
                            BuildError::Unsupported(
                                "sequence classification reads the pooler, which this model lacks".into(),
                            )
                        })?;
                        self.linear(pooled, "classifier")?
                    }
                    SequenceClassifier::PooledPredictionHead => {
                        self.pooled_prediction_head(hidden, attention_mask)?
                    }
                    SequenceClassifier::ConfigPooled(c) => {
                        self.config_pooled_classifier(hidden, attention_mask, &c)?
                    }
                };
                self.g.set_output("logits", logits);
            }
            Head::TokenClassification => {
                let x = self.prediction_head(hidden)?;
                let logits = self.linear(x, "classifier")?;
                self.g.set_output("logits", logits);
            }
            Head::QuestionAnswering => {
                let x = self.prediction_head(hidden)?;
                let both = self.linear(x, self.qa_outputs_name())?;
                for (i, name) in ["start_logits", "end_logits"].into_iter().enumerate() {
                    let idx = self
                        .g
                        .add_const(&format!("qa_outputs.{name}_index"), Tensor::scalar_i64(i as i64))?;
                    let v = self.g.add(
                        &format!("qa_outputs.{name}"),
                        Op::Gather { axis: 2 },
                        &[both, idx],
                    )?;
                    self.g.set_output(name, v);
                }
            }
            Head::MaskedLm => {
                let logits = self.masked_lm(hidden)?;
                self.g.set_output("logits", logits);
            }
            Head::SentenceEmbedding => {
                let e = self.sentence_embedding(hidden, attention_mask, spec.sentence)?;
                self.g.set_output("sentence_embedding", e);
            }
        }
        Ok(())
    }

    /// `out(act(dense(hidden[:, 0])))`: the classifier of the families
    /// that read the first token themselves instead of a pooler.
    fn first_token_classifier(
        &mut self,
        hidden: Value,
        c: &FirstTokenClassifier,
    ) -> Result<Value, BuildError> {
        let zero = self
            .g
            .add_const("classifier.first_token_index", Tensor::scalar_i64(0))?;
        let first = self
            .g
            .add("classifier.first_token", Op::Gather { axis: 1 }, &[hidden, zero])?;
        self.dense_classifier(first, c)
    }

    /// `out(act(dense(x)))`, on whatever `x` holds (one vector per row or
    /// per token).
    fn dense_classifier(&mut self, x: Value, c: &FirstTokenClassifier) -> Result<Value, BuildError> {
        let x = self.linear(x, c.dense)?;
        let act = head_activation(c.activation, self.config);
        let x = self.activation(x, act, &format!("{}.act", c.dense))?;
        self.linear(x, c.out)
    }

    /// EuroBERT's sequence classifier: [`Self::dense_classifier`] on the
    /// first token (`bos`) or the mean over real tokens (`mean`), or on
    /// every token with its logits averaged over the real ones (`late`).
    /// The means are sentence-transformers' masked mean (transformers'
    /// `(x · mask).sum(1) / mask.sum(1)`; its 1e-9 floor only matters for a
    /// row without any real token).
    fn config_pooled_classifier(
        &mut self,
        hidden: Value,
        attention_mask: Value,
        c: &FirstTokenClassifier,
    ) -> Result<Value, BuildError> {
        let mean = SentencePooling {
            mode: Pooling::Mean,
            normalize: false,
        };
        match self.config.classifier_pooling.unwrap_or(ClassifierPooling::Late) {
            ClassifierPooling::Cls | ClassifierPooling::Bos => self.first_token_classifier(hidden, c),
            ClassifierPooling::Mean => {
                let pooled = self.sentence_embedding(hidden, attention_mask, mean)?;
                self.dense_classifier(pooled, c)
            }
            ClassifierPooling::Late => {
                let per_token = self.dense_classifier(hidden, c)?;
                self.sentence_embedding(per_token, attention_mask, mean)
            }
        }
    }

    /// The masked-LM head (BertOnlyMLMHead, RoBERTa's `lm_head`,
    /// DistilBERT's `vocab_*`, ALBERT's `predictions`): transform →
    /// activation → layer norm → decoder + bias. With tied embeddings the
    /// decoder reads the word-embedding table through a Transpose, so the
    /// file holds the table once.
    fn masked_lm(&mut self, hidden: Value) -> Result<Value, BuildError> {
        let h = self.config.masked_lm_head();
        let t = match h.has_transform() {
            true => {
                let t = self.linear(hidden, h.transform)?;
                let act = head_activation(h.activation, self.config);
                let act_name = h.transform.strip_suffix(".dense").unwrap_or(h.transform);
                let t = self.activation(t, act, &format!("{act_name}.act"))?;
                self.layer_norm(t, h.layer_norm)?
            }
            // EuroBERT's lm_head reads the encoder's output.
            false => hidden,
        };
        let d = h.decoder.strip_suffix(".weight").unwrap_or(h.decoder);
        let decoder = match self.config.tie_word_embeddings {
            true => {
                // The table under the family's name (ModernBERT's tok_embeddings).
                let name = super::param_names::param_name(self.config, "embeddings.word_embeddings.weight");
                let table = self
                    .g
                    .find(&name)
                    .ok_or_else(|| BuildError::MissingParam(name.clone()))?;
                let table = Value { node: table, slot: 0 };
                self.g.add(
                    &format!("{d}.tied_weight"),
                    Op::Transpose { perm: vec![1, 0] },
                    &[table],
                )?
            }
            false => self.param(h.decoder)?,
        };
        let y = self.g.add(&format!("{d}.matmul"), Op::MatMul, &[t, decoder])?;
        // ModernBERT's decoder_bias may switch it off.
        if self.config.bias_switched_off(h.bias) {
            return Ok(y);
        }
        let bias = self.param(h.bias)?;
        self.binary(&format!("{d}.add"), BinaryOp::Add, y, bias)
    }
}

/// The activation a head layer applies, in this config.
pub(super) fn head_activation(a: HeadActivation, c: &BertConfig) -> Activation {
    match a {
        HeadActivation::Tanh => Activation::Tanh,
        HeadActivation::Relu => Activation::Relu,
        HeadActivation::Gelu => Activation::Gelu,
        HeadActivation::Hidden => c.hidden_act,
        HeadActivation::Classifier => c.classifier_activation.unwrap_or(Activation::Gelu),
        HeadActivation::Pooler => c
            .disentangled
            .as_ref()
            .map_or(Activation::Gelu, |d| d.pooler_hidden_act),
    }
}

/// A head layer's width in this config.
pub(super) fn head_width(w: HeadWidth, c: &BertConfig) -> usize {
    match w {
        HeadWidth::Hidden => c.hidden_size,
        HeadWidth::Embedding => c.embedding_size(),
    }
}
