//! question-answering as transformers' pipeline answers it: the question
//! and the context are encoded as a pair, the context cut into windows of
//! `max_seq_len` tokens (default at most 384) overlapping by `doc_stride`
//! (default min(max_seq_len / 2, 128)); in each window only context tokens
//! (and [CLS], which is then zeroed) may carry the answer: start and end
//! logits are softmaxed with every other position at −10000, the spans
//! `start ≤ end < start + max_answer_len` are ranked by start·end, the
//! window's `top_k` best kept when both ends are context, and each span is
//! widened to whole words of the context. Every window's answers are then
//! ranked together (the earlier of equal scores first) and the `top_k`
//! best returned.

use serde::Serialize;

use super::options::{TaskOptions, TopK};
use super::rows::windows;
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

/// The windows and spans one call asks for.
#[derive(Debug, Clone, Copy)]
struct Plan {
    max_seq_len: usize,
    doc_stride: usize,
    max_answer_len: usize,
    top_k: usize,
    handle_impossible_answer: bool,
}

/// One window's answers, and its null score (start·end at [CLS]).
struct WindowAnswers {
    answers: Vec<Answer>,
    null_score: f64,
}

impl LoadedModel {
    /// (question, context) pairs → the best answers of each, best first
    /// (none when no window's best span lies in the context).
    pub fn answer(
        &mut self,
        pairs: &[(&str, &str)],
        options: &TaskOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<Answer>>, RunError> {
        let plan = self.plan(pairs, options)?;
        let inputs: Vec<TextInput> = pairs.iter().map(|&(q, c)| TextInput::Pair(q, c)).collect();
        let encodings = self.tokenizer.encode_unpadded(
            &inputs,
            Truncate::OnlySecond {
                max_length: plan.max_seq_len,
                stride: plan.doc_stride,
            },
        )?;
        let (rows, pair_of) = windows(encodings);
        let per_window = self.run_rows(&rows, progress, |model, row, enc, outputs| {
            let (starts, _) = outputs.get("start_logits", 2)?;
            let (ends, _) = outputs.get("end_logits", 2)?;
            Ok(model.best_spans(enc, starts, ends, pairs[pair_of[row]].1, &plan))
        })?;
        // Windows in order, each window's answers in its own order: the
        // stable sort below keeps the earlier of equal scores first.
        let mut answers: Vec<Vec<Answer>> = vec![vec![]; pairs.len()];
        let mut null_score = vec![f64::INFINITY; pairs.len()];
        for (window, &pair) in per_window.into_iter().zip(&pair_of) {
            answers[pair].extend(window.answers);
            null_score[pair] = null_score[pair].min(window.null_score);
        }
        for (list, null) in answers.iter_mut().zip(null_score) {
            if plan.handle_impossible_answer {
                list.push(Answer {
                    score: null,
                    start: 0,
                    end: 0,
                    answer: String::new(),
                });
            }
            list.sort_by(|a, b| b.score.total_cmp(&a.score));
            list.truncate(plan.top_k);
        }
        Ok(answers)
    }

    /// The pipeline's arguments checked against the model and every
    /// question: a window must leave the context more than `doc_stride`
    /// tokens (tokenizers would panic otherwise).
    fn plan(&mut self, pairs: &[(&str, &str)], options: &TaskOptions) -> Result<Plan, RunError> {
        let limit = self.tokenizer.max_length;
        let max_seq_len = match options.max_seq_len {
            Some(n) if n > limit => {
                return Err(RunError::Input(format!(
                    "--max-seq-len {n} is longer than the model reads ({limit} tokens)"
                )))
            }
            Some(n) => n,
            None => MAX_SEQ_LEN.min(limit),
        };
        let doc_stride = options.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        if doc_stride > max_seq_len {
            return Err(RunError::Input(format!(
                "--doc-stride {doc_stride} is larger than --max-seq-len {max_seq_len}"
            )));
        }
        let added = self.tokenizer.added_tokens(true);
        for (input, (question, _)) in pairs.iter().enumerate() {
            let question_tokens = self.tokenizer.count_tokens(question)?;
            let room = max_seq_len.saturating_sub(question_tokens + added);
            if room <= doc_stride {
                return Err(RunError::AtInput {
                    input,
                    message: format!(
                        "the question is {question_tokens} tokens: a window of {max_seq_len} tokens leaves \
                         {room} for the context, which must be more than the {doc_stride}-token stride \
                         (shorten the question, or raise --max-seq-len / lower --doc-stride)"
                    ),
                });
            }
        }
        let top_k = match options.top_k.unwrap_or(TopK::Best(1)) {
            TopK::Best(k) => k,
            TopK::All => {
                return Err(RunError::Input(
                    "question-answering takes a number of answers for --top-k, not `all`".into(),
                ))
            }
        };
        Ok(Plan {
            max_seq_len,
            doc_stride,
            max_answer_len: options.max_answer_len.unwrap_or(MAX_ANSWER_LEN),
            top_k,
            handle_impossible_answer: options.handle_impossible_answer,
        })
    }

    /// One window's best spans (`select_starts_ends` and `decode_spans`).
    fn best_spans(
        &self,
        enc: &tokenizers::Encoding,
        start_logits: &[f32],
        end_logits: &[f32],
        context: &str,
        plan: &Plan,
    ) -> WindowAnswers {
        let sequence = enc.get_sequence_ids();
        let cls = self.tokenizer.special.cls;
        let desired: Vec<bool> = (0..enc.len())
            .map(|i| {
                enc.get_attention_mask()[i] == 1 && (sequence[i] == Some(1) || Some(enc.get_ids()[i]) == cls)
            })
            .collect();
        let probabilities = |logits: &[f32]| -> Vec<f64> {
            let row: Vec<f32> = logits
                .iter()
                .zip(&desired)
                .map(|(&x, &d)| if d { x } else { MASKED })
                .collect();
            softmax(&row)
        };
        let (mut start, mut end) = (probabilities(start_logits), probabilities(end_logits));
        let null_score = start[0] * end[0];
        start[0] = 0.0;
        end[0] = 0.0;
        let spans = ranked_spans(&start, &end, plan.max_answer_len, plan.top_k);
        let answers = spans
            .into_iter()
            .filter(|&(s, e, _)| desired[s] && desired[e])
            .map(|(s, e, score)| self.widened(enc, s, e, score, context))
            .collect();
        WindowAnswers { answers, null_score }
    }

    /// A span widened to whole words of the context, as the pipeline's
    /// `align_to_words`; offsets when the tokenizer has no words.
    fn widened(&self, enc: &tokenizers::Encoding, s: usize, e: usize, score: f64, context: &str) -> Answer {
        let word_chars = |t: usize| {
            enc.token_to_word(t)
                .and_then(|(seq, word)| enc.word_to_chars(word, seq))
        };
        let start = word_chars(s).map_or(enc.get_offsets()[s].0, |o| o.0);
        let end = word_chars(e).map_or(enc.get_offsets()[e].1, |o| o.1);
        Answer {
            score,
            start,
            end,
            answer: context
                .chars()
                .skip(start)
                .take(end.saturating_sub(start))
                .collect(),
        }
    }
}

/// The `top_k` best (start, end, start·end) with `start ≤ end < start +
/// max_answer_len`, best first; equal scores in row-major order, as
/// numpy's `argmax` takes the first (its `argpartition` leaves ties in no
/// particular order).
fn ranked_spans(start: &[f64], end: &[f64], max_answer_len: usize, top_k: usize) -> Vec<(usize, usize, f64)> {
    // Saturating: --max-answer-len may be any number a user types.
    let band = |i: usize| {
        (i..end.len().min(i.saturating_add(max_answer_len))).map(move |j| (i, j, start[i] * end[j]))
    };
    if top_k == 1 {
        let mut best = (0, 0, f64::NEG_INFINITY);
        for (i, j, score) in (0..start.len()).flat_map(band) {
            if score > best.2 {
                best = (i, j, score);
            }
        }
        return vec![best];
    }
    let mut all: Vec<(usize, usize, f64)> = (0..start.len()).flat_map(band).collect();
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all.truncate(top_k);
    all
}
