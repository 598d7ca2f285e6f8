//! The task heads on top of the encoder, as transformers' `BertFor*`
//! classes and sentence-transformers compute them, with Optimum's output
//! names.

use crate::ir::{BinaryOp, Op, Tensor, Value};

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
                let pooled = pooled.ok_or_else(|| {
                    BuildError::Unsupported(
                        "sequence classification reads the pooler, which this model lacks".into(),
                    )
                })?;
                let logits = self.linear(pooled, "classifier")?;
                self.g.set_output("logits", logits);
            }
            Head::TokenClassification => {
                let logits = self.linear(hidden, "classifier")?;
                self.g.set_output("logits", logits);
            }
            Head::QuestionAnswering => {
                let both = self.linear(hidden, "qa_outputs")?;
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

    /// BertOnlyMLMHead: dense → activation → layer norm → decoder + bias.
    /// With tied embeddings the decoder reads the word-embedding table
    /// through a Transpose, so the file holds the table once.
    fn masked_lm(&mut self, hidden: Value) -> Result<Value, BuildError> {
        let p = "cls.predictions";
        let t = self.linear(hidden, &format!("{p}.transform.dense"))?;
        let t = self.activation(t, self.config.hidden_act, &format!("{p}.transform.act"))?;
        let t = self.layer_norm(t, &format!("{p}.transform.LayerNorm"))?;
        let decoder = match self.config.tie_word_embeddings {
            true => {
                let table = self
                    .g
                    .find("embeddings.word_embeddings.weight")
                    .ok_or_else(|| BuildError::MissingParam("embeddings.word_embeddings.weight".into()))?;
                let table = Value { node: table, slot: 0 };
                self.g.add(
                    &format!("{p}.decoder.tied_weight"),
                    Op::Transpose { perm: vec![1, 0] },
                    &[table],
                )?
            }
            false => self.param(&format!("{p}.decoder.weight"))?,
        };
        let y = self
            .g
            .add(&format!("{p}.decoder.matmul"), Op::MatMul, &[t, decoder])?;
        let bias = self.param(&format!("{p}.bias"))?;
        self.binary(&format!("{p}.decoder.add"), BinaryOp::Add, y, bias)
    }
}
