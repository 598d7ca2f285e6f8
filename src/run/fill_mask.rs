//! fill-mask as transformers' pipeline answers it: at each `[MASK]`, the
//! `top_k` most probable tokens (softmax over the vocabulary), each with
//! the text decoded with it in place (special tokens skipped when the
//! input has a single mask, kept otherwise so the other masks show).

use serde::Serialize;

use super::options::{TaskOptions, TopK};
use super::{softmax, LoadedModel, Progress, RunError};
use crate::tokenize::TextInput;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fill {
    pub score: f64,
    pub token: u32,
    pub token_str: String,
    pub sequence: String,
}

impl LoadedModel {
    /// Texts → per text, per mask, the `top_k` fills.
    pub fn fill_mask(
        &mut self,
        inputs: &[TextInput],
        options: &TaskOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<Vec<Fill>>>, RunError> {
        let top_k = match options.top_k {
            None => 5,
            Some(TopK::Best(k)) => k,
            Some(TopK::All) => {
                return Err(RunError::Input(
                    "fill-mask takes a number of tokens per mask for --top-k, not `all`".into(),
                ))
            }
        };
        let mask = self.tokenizer.special.mask.ok_or_else(|| {
            RunError::Input("the tokenizer has no mask token: fill-mask needs one in the text".into())
        })?;
        if top_k == 0 {
            return Err(RunError::Input("--top-k must be at least 1".into()));
        }
        self.run_inputs(inputs, progress, |model, row, enc, outputs| {
            let (logits, vocab) = outputs.per_token("logits", enc.len())?;
            // Rows are unpadded: these are the ids the pipeline decodes
            // (it drops the padding first).
            let ids: Vec<u32> = enc.get_ids().to_vec();
            let positions: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == mask).collect();
            if positions.is_empty() {
                let name = model.tokenizer.id_to_token(mask).unwrap_or_default();
                let cut_off = enc.get_overflowing().iter().any(|o| o.get_ids().contains(&mask));
                return Err(RunError::AtInput {
                    input: row,
                    message: match cut_off {
                        true => format!(
                            "the mask token ({name}) is past the {} tokens the model reads: the text was cut before it",
                            enc.len()
                        ),
                        false => format!("no mask token ({name}) to fill"),
                    },
                });
            }
            let single = positions.len() == 1;
            positions
                .iter()
                .map(|&p| {
                    let at = p * vocab;
                    let probs = softmax(&logits[at..at + vocab]);
                    top(&probs, top_k)
                        .into_iter()
                        .map(|(token, score)| {
                            let mut filled = ids.clone();
                            filled[p] = token;
                            Ok(Fill {
                                score,
                                token,
                                token_str: model.tokenizer.decode(&[token], false)?,
                                sequence: model.tokenizer.decode(&filled, single)?,
                            })
                        })
                        .collect()
                })
                .collect()
        })
    }
}

/// The `k` largest probabilities with their ids, largest first (ties by
/// the lower id).
fn top(probs: &[f64], k: usize) -> Vec<(u32, f64)> {
    let by_probability = |a: &usize, b: &usize| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b));
    let mut order: Vec<usize> = (0..probs.len()).collect();
    let k = k.min(order.len());
    if k == 0 {
        return vec![];
    }
    order.select_nth_unstable_by(k - 1, by_probability);
    order.truncate(k);
    order.sort_by(by_probability);
    order.into_iter().map(|i| (i as u32, probs[i])).collect()
}
