//! question-answering as transformers' pipeline answers it: the question
//! and the context are encoded as a pair, the context cut into windows of
//! at most 384 tokens overlapping by `doc_stride` (min(max / 2, 128));
//! in each window only context tokens (and [CLS], which is then zeroed)
//! may carry the answer: start and end logits are softmaxed with every
//! other position at −10000, the best start·end product with
//! `start ≤ end < start + 15` wins, and its span is widened to whole
//! words of the context. The best answer over the windows is returned.

use serde::Serialize;

use super::{softmax, LoadedModel, Progress, RunError};
use crate::tokenize::{TextInput, Truncate};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub score: f64,
    pub start: usize,
    pub end: usize,
    pub answer: String,
}

/// transformers' defaults: `max_seq_len` 384, `max_answer_len` 15.
pub const MAX_SEQ_LEN: usize = 384;
pub const MAX_ANSWER_LEN: usize = 15;
/// The logit every position outside the context gets.
const MASKED: f32 = -10000.0;

impl LoadedModel {
    /// (question, context) pairs → the best answer of each.
    pub fn answer(
        &mut self,
        pairs: &[(&str, &str)],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Answer>, RunError> {
        let max_length = MAX_SEQ_LEN.min(self.tokenizer.max_length);
        let stride = (max_length / 2).min(128);
        let inputs: Vec<TextInput> = pairs.iter().map(|&(q, c)| TextInput::Pair(q, c)).collect();
        let encodings = self
            .tokenizer
            .encode_unpadded(&inputs, Truncate::OnlySecond { max_length, stride })?;
        // Every window of every pair is a row of its own (a long context's
        // windows may land in different batches); `pair_of` maps them back.
        let mut windows = Vec::with_capacity(encodings.len());
        let mut pair_of = Vec::with_capacity(encodings.len());
        for (pair, mut encoding) in encodings.into_iter().enumerate() {
            let overflowing = encoding.take_overflowing();
            for window in std::iter::once(encoding).chain(overflowing) {
                windows.push(window);
                pair_of.push(pair);
            }
        }
        let spans = self.run_rows(&windows, progress, |model, row, enc, outputs| {
            let (starts, _) = outputs.get("start_logits", 2)?;
            let (ends, _) = outputs.get("end_logits", 2)?;
            Ok(model.best_span(enc, starts, ends, pairs[pair_of[row]].1))
        })?;
        // The best window of each pair, its windows taken in order (the
        // first of equal scores wins, as in the pipeline).
        let mut best: Vec<Option<Answer>> = vec![None; pairs.len()];
        for (span, &pair) in spans.into_iter().zip(&pair_of) {
            if let Some(a) = span {
                if best[pair].as_ref().is_none_or(|b| a.score > b.score) {
                    best[pair] = Some(a);
                }
            }
        }
        best.into_iter()
            .enumerate()
            .map(|(input, b)| {
                b.ok_or_else(|| RunError::AtInput {
                    input,
                    message: "no answer span in the context of this question".into(),
                })
            })
            .collect()
    }

    /// The best span of one window, `None` when it falls outside the context.
    fn best_span(
        &self,
        enc: &tokenizers::Encoding,
        start_logits: &[f32],
        end_logits: &[f32],
        context: &str,
    ) -> Option<Answer> {
        let sequence = enc.get_sequence_ids();
        let cls = self.tokenizer.special.cls;
        let desired: Vec<bool> = (0..enc.len())
            .map(|i| {
                enc.get_attention_mask()[i] == 1 && (sequence[i] == Some(1) || Some(enc.get_ids()[i]) == cls)
            })
            .collect();
        let masked = |logits: &[f32]| -> Vec<f64> {
            let row: Vec<f32> = logits
                .iter()
                .zip(&desired)
                .map(|(&x, &d)| if d { x } else { MASKED })
                .collect();
            let mut p = softmax(&row);
            p[0] = 0.0;
            p
        };
        let (start, end) = (masked(start_logits), masked(end_logits));
        let mut best = (0, 0, -1.0f64);
        for (i, &p_start) in start.iter().enumerate() {
            for (j, &p_end) in end.iter().enumerate().skip(i).take(MAX_ANSWER_LEN) {
                let score = p_start * p_end;
                if score > best.2 {
                    best = (i, j, score);
                }
            }
        }
        let (s, e, score) = best;
        if !(desired[s] && desired[e]) {
            return None;
        }
        // Widen to whole words of the context, as the pipeline's
        // `align_to_words`; offsets when the tokenizer has no words.
        let word_chars = |t: usize| {
            enc.token_to_word(t)
                .and_then(|(seq, word)| enc.word_to_chars(word, seq))
        };
        let start_char = word_chars(s).map_or(enc.get_offsets()[s].0, |o| o.0);
        let end_char = word_chars(e).map_or(enc.get_offsets()[e].1, |o| o.1);
        Some(Answer {
            score,
            start: start_char,
            end: end_char,
            answer: context
                .chars()
                .skip(start_char)
                .take(end_char.saturating_sub(start_char))
                .collect(),
        })
    }
}
