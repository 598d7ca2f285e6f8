//! token-classification as transformers' pipeline answers it (4.46),
//! with every `aggregation_strategy`:
//! - `none`: each real token with its best label (softmax over labels),
//!   its position in its window as `index`;
//! - `simple`: neighbouring tokens whose labels share a tag join one
//!   group unless the later one begins a new entity (`B-`);
//! - `first`, `average`, `max`: tokens are first joined into words (a
//!   token and the subwords after it), a word taking its first token's
//!   label, its mean scores' label, or its most confident token's label;
//!   the words are then grouped as `simple` groups tokens.
//!
//! A group's score is the mean of its members' scores, its word the
//! tokens joined back by the tokenizer's decoder, its span the characters
//! from its first token's start to its last token's end; `O` is left out.
//! With `stride`, a text longer than the model is read in windows
//! overlapping by that many tokens, and entities that overlap are
//! resolved as the pipeline does: the longer wins, then the surer.

use serde::Serialize;

use super::options::{Aggregation, TaskOptions};
use super::rows::windows;
use super::{single_texts, softmax, LoadedModel, Progress, RunError};
use crate::tokenize::{TextInput, Truncate};

/// One answer of token classification: a token (`none`) or a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Entity {
    Token(TokenEntity),
    Group(EntityGroup),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenEntity {
    pub entity: String,
    pub score: f64,
    /// Position in its window, [CLS] being 0.
    pub index: usize,
    pub word: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityGroup {
    pub entity_group: String,
    pub score: f64,
    pub word: String,
    pub start: usize,
    pub end: usize,
}

impl Entity {
    /// The label (`B-PER` for a token, `PER` for a group).
    pub fn label(&self) -> &str {
        match self {
            Entity::Token(t) => &t.entity,
            Entity::Group(g) => &g.entity_group,
        }
    }
    pub fn score(&self) -> f64 {
        match self {
            Entity::Token(t) => t.score,
            Entity::Group(g) => g.score,
        }
    }
    pub fn word(&self) -> &str {
        match self {
            Entity::Token(t) => &t.word,
            Entity::Group(g) => &g.word,
        }
    }
    /// Character span in the text.
    pub fn span(&self) -> (usize, usize) {
        match self {
            Entity::Token(t) => (t.start, t.end),
            Entity::Group(g) => (g.start, g.end),
        }
    }
}

/// A real token before aggregation (`gather_pre_entities`).
struct PreEntity {
    word: String,
    scores: Vec<f64>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

/// A token or word with its label, before grouping.
struct Labelled {
    label: String,
    score: f64,
    word: String,
    start: usize,
    end: usize,
}

/// The labels transformers' pipeline leaves out.
const IGNORE: [&str; 1] = ["O"];

impl LoadedModel {
    /// Texts → entities per text.
    pub fn entities(
        &mut self,
        inputs: &[TextInput],
        options: &TaskOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<Entity>>, RunError> {
        let texts = single_texts(inputs, "token classification takes single texts, not pairs")?;
        let strategy = options.aggregation_strategy;
        // Each text's characters once: a long text's windows all read them
        // (offsets index characters), and copying them per window would
        // grow as windows × length.
        let chars: Vec<Vec<char>> = texts.iter().map(|t| t.chars().collect()).collect();
        let Some(stride) = options.stride else {
            return self.run_inputs(inputs, progress, |model, row, enc, outputs| {
                let (logits, labels) = outputs.per_token("logits", enc.len())?;
                model.window_entities(&chars[row], enc, logits, labels, strategy)
            });
        };
        let room = self
            .tokenizer
            .max_length
            .saturating_sub(self.tokenizer.added_tokens(false));
        if stride >= room {
            return Err(RunError::Input(format!(
                "--stride {stride} must be less than the {room} text tokens a window of {} holds",
                self.tokenizer.max_length
            )));
        }
        let encodings = self
            .tokenizer
            .encode_unpadded(inputs, Truncate::Windows { stride })?;
        let (rows, text_of) = windows(encodings);
        let per_window = self.run_rows(&rows, progress, |model, row, enc, outputs| {
            let (logits, labels) = outputs.per_token("logits", enc.len())?;
            model.window_entities(&chars[text_of[row]], enc, logits, labels, strategy)
        })?;
        let mut all: Vec<Vec<Entity>> = vec![vec![]; texts.len()];
        let mut windows_of = vec![0usize; texts.len()];
        for (entities, &text) in per_window.into_iter().zip(&text_of) {
            all[text].extend(entities);
            windows_of[text] += 1;
        }
        Ok(all
            .into_iter()
            .zip(windows_of)
            .map(|(e, n)| if n > 1 { resolve_overlaps(e) } else { e })
            .collect())
    }

    /// One window's entities, `O` left out.
    fn window_entities(
        &self,
        text: &[char],
        enc: &tokenizers::Encoding,
        logits: &[f32],
        labels: usize,
        strategy: Aggregation,
    ) -> Result<Vec<Entity>, RunError> {
        let pre = self.pre_entities(text, enc, logits, labels);
        let entities = match strategy {
            Aggregation::None => {
                let tokens = pre.into_iter().map(|p| {
                    let best = argmax(&p.scores);
                    Entity::Token(TokenEntity {
                        entity: self.label(best),
                        score: p.scores[best],
                        index: p.index,
                        word: p.word,
                        start: p.start,
                        end: p.end,
                    })
                });
                tokens.collect()
            }
            Aggregation::Simple => {
                let tokens = pre.into_iter().map(|p| {
                    let best = argmax(&p.scores);
                    Labelled {
                        label: self.label(best),
                        score: p.scores[best],
                        word: p.word,
                        start: p.start,
                        end: p.end,
                    }
                });
                self.group(tokens.collect())?
            }
            words => {
                let words = self.aggregate_words(pre, words)?;
                self.group(words)?
            }
        };
        Ok(entities
            .into_iter()
            .filter(|e| !IGNORE.contains(&e.label()))
            .collect())
    }

    /// `gather_pre_entities`: every real token with its label scores.
    fn pre_entities(
        &self,
        chars: &[char],
        enc: &tokenizers::Encoding,
        logits: &[f32],
        labels: usize,
    ) -> Vec<PreEntity> {
        let prefixed = self.tokenizer.has_subword_prefix();
        let mut out = vec![];
        for (i, &id) in enc.get_ids().iter().enumerate() {
            if enc.get_special_tokens_mask()[i] == 1 || enc.get_attention_mask()[i] == 0 {
                continue;
            }
            let (start, end) = enc.get_offsets()[i];
            let reference: String = chars[start.min(chars.len())..end.min(chars.len())]
                .iter()
                .collect();
            let token = enc.get_tokens()[i].clone();
            let (word, is_subword) = if Some(id) == self.tokenizer.special.unk {
                (reference, false)
            } else if prefixed {
                let subword = token.chars().count() != reference.chars().count();
                (token, subword)
            } else {
                // The pipeline's fallback: glued to the character before.
                let glued = start > 0 && !chars[start - 1..(start + 1).min(chars.len())].contains(&' ');
                (token, glued)
            };
            let at = i * labels;
            out.push(PreEntity {
                word,
                scores: softmax(&logits[at..at + labels]),
                start,
                end,
                index: i,
                is_subword,
            });
        }
        out
    }

    /// `aggregate_words`: a token and the subwords after it are one word.
    fn aggregate_words(&self, pre: Vec<PreEntity>, strategy: Aggregation) -> Result<Vec<Labelled>, RunError> {
        let mut words: Vec<Vec<PreEntity>> = vec![];
        for p in pre {
            match words.last_mut() {
                Some(word) if p.is_subword => word.push(p),
                _ => words.push(vec![p]),
            }
        }
        words
            .into_iter()
            .map(|w| self.aggregate_word(w, strategy))
            .collect()
    }

    /// `aggregate_word`: one word's label by `strategy`.
    fn aggregate_word(&self, tokens: Vec<PreEntity>, strategy: Aggregation) -> Result<Labelled, RunError> {
        let scores: Vec<f64> = match strategy {
            Aggregation::First => tokens[0].scores.clone(),
            Aggregation::Max => {
                let most = |t: &PreEntity| t.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // The first of equally confident tokens, as Python's max.
                let mut best = &tokens[0];
                for t in &tokens[1..] {
                    if most(t) > most(best) {
                        best = t;
                    }
                }
                best.scores.clone()
            }
            _ => {
                let n = tokens.len() as f64;
                (0..tokens[0].scores.len())
                    .map(|j| tokens.iter().map(|t| t.scores[j]).sum::<f64>() / n)
                    .collect()
            }
        };
        let best = argmax(&scores);
        let (start, end) = (tokens[0].start, tokens[tokens.len() - 1].end);
        let word = self
            .tokenizer
            .tokens_to_string(tokens.into_iter().map(|t| t.word).collect())?;
        Ok(Labelled {
            label: self.label(best),
            score: scores[best],
            word,
            start,
            end,
        })
    }

    fn label(&self, id: usize) -> String {
        self.labels
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{id}"))
    }

    /// transformers' `group_entities`.
    fn group(&self, tokens: Vec<Labelled>) -> Result<Vec<Entity>, RunError> {
        let mut groups = vec![];
        let mut current: Vec<Labelled> = vec![];
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
        Ok(groups)
    }

    /// transformers' `group_sub_entities`.
    fn close(&self, tokens: Vec<Labelled>) -> Result<Entity, RunError> {
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
        Ok(Entity::Group(EntityGroup {
            entity_group,
            score,
            word,
            start,
            end,
        }))
    }
}

/// The first maximum, as numpy's argmax.
fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b })
}

/// `aggregate_overlapping_entities`: sorted by start (stable), an entity
/// starting inside the one kept before replaces it when longer, or as long
/// and surer.
fn resolve_overlaps(mut entities: Vec<Entity>) -> Vec<Entity> {
    entities.sort_by_key(|e| e.span().0);
    let mut kept: Vec<Entity> = vec![];
    let Some(mut previous) = entities.first().cloned() else {
        return kept;
    };
    // From the first entity on, as the pipeline (which compares the first
    // with itself: an empty span is then kept twice there, and here).
    for entity in entities {
        let ((ps, pe), (s, e)) = (previous.span(), entity.span());
        if ps <= s && s < pe {
            let (length, previous_length) = (e - s, pe - ps);
            if length > previous_length || (length == previous_length && entity.score() > previous.score()) {
                previous = entity;
            }
        } else {
            kept.push(std::mem::replace(&mut previous, entity));
        }
    }
    kept.push(previous);
    kept
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
