//! token-classification with `aggregation_strategy="simple"`: each real
//! token gets its best label (softmax over labels); neighbouring tokens
//! whose labels share a tag join one group unless the later one begins a
//! new entity (`B-`); groups labelled `O` are dropped. A group's score is
//! the mean of its tokens' scores, its word the tokens joined back by the
//! tokenizer's decoder, its span the characters from its first token's
//! start to its last token's end.

use serde::Serialize;

use super::{single_texts, softmax, LoadedModel, Progress, RunError};
use crate::tokenize::TextInput;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityGroup {
    pub entity_group: String,
    pub score: f64,
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// One token's best label, before grouping.
struct TokenEntity {
    label: String,
    score: f64,
    word: String,
    start: usize,
    end: usize,
}

/// The labels transformers' pipeline leaves out.
const IGNORE: [&str; 1] = ["O"];

impl LoadedModel {
    /// Texts → entity groups per text.
    pub fn entities(
        &mut self,
        inputs: &[TextInput],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<EntityGroup>>, RunError> {
        let texts = single_texts(inputs, "token classification takes single texts, not pairs")?;
        self.run_inputs(inputs, progress, |model, row, enc, outputs| {
            let (logits, labels) = outputs.per_token("logits", enc.len())?;
            let chars: Vec<char> = texts[row].chars().collect();
            let mut tokens = vec![];
            for (i, &id) in enc.get_ids().iter().enumerate() {
                if enc.get_special_tokens_mask()[i] == 1 || enc.get_attention_mask()[i] == 0 {
                    continue;
                }
                let at = i * labels;
                let probs = softmax(&logits[at..at + labels]);
                // The first maximum, as numpy's argmax.
                let best = (0..labels).fold(0, |b, j| if probs[j] > probs[b] { j } else { b });
                let (start, end) = enc.get_offsets()[i];
                let word = if Some(id) == model.tokenizer.special.unk {
                    chars[start.min(chars.len())..end.min(chars.len())]
                        .iter()
                        .collect()
                } else {
                    enc.get_tokens()[i].clone()
                };
                tokens.push(TokenEntity {
                    label: model
                        .labels
                        .get(best)
                        .cloned()
                        .unwrap_or_else(|| format!("LABEL_{best}")),
                    score: probs[best],
                    word,
                    start,
                    end,
                });
            }
            model.group(tokens)
        })
    }

    /// transformers' `group_entities` then the `O` filter.
    fn group(&self, tokens: Vec<TokenEntity>) -> Result<Vec<EntityGroup>, RunError> {
        let mut groups = vec![];
        let mut current: Vec<TokenEntity> = vec![];
        for token in tokens {
            if let Some(last) = current.last() {
                let (bi, tag) = tag_of(&token.label);
                let (_, last_tag) = tag_of(&last.label);
                if !(tag == last_tag && bi != 'B') {
                    groups.push(self.close(std::mem::take(&mut current))?);
                }
            }
            current.push(token);
        }
        if !current.is_empty() {
            groups.push(self.close(current)?);
        }
        Ok(groups
            .into_iter()
            .filter(|g| !IGNORE.contains(&g.entity_group.as_str()))
            .collect())
    }

    /// transformers' `group_sub_entities`.
    fn close(&self, tokens: Vec<TokenEntity>) -> Result<EntityGroup, RunError> {
        let first = &tokens[0];
        let entity_group = match first.label.split_once('-') {
            Some((_, rest)) => rest.to_string(),
            None => first.label.clone(),
        };
        let score = tokens.iter().map(|t| t.score).sum::<f64>() / tokens.len() as f64;
        let (start, end) = (first.start, tokens[tokens.len() - 1].end);
        let word = self
            .tokenizer
            .tokens_to_string(tokens.into_iter().map(|t| t.word).collect())?;
        Ok(EntityGroup {
            entity_group,
            score,
            word,
            start,
            end,
        })
    }
}

/// `B-PER` → ('B', "PER"); a label without a B-/I- prefix continues ('I').
fn tag_of(label: &str) -> (char, &str) {
    if let Some(tag) = label.strip_prefix("B-") {
        ('B', tag)
    } else if let Some(tag) = label.strip_prefix("I-") {
        ('I', tag)
    } else {
        ('I', label)
    }
}
