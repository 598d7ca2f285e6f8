//! text-classification: the `top_k` best labels with their scores (the
//! pipeline's default 1; `TopK::All` is its `top_k=None`), best first —
//! softmax over the labels, or a sigmoid per label for
//! `problem_type: multi_label_classification` and single-logit models, as
//! transformers' `function_to_apply` picks it.

use serde::Serialize;

use super::options::{TaskOptions, TopK};
use super::{softmax, LoadedModel, Progress, RunError};
use crate::tokenize::TextInput;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f64,
}

impl LoadedModel {
    /// Texts or pairs (cross-encoders) → labels with scores.
    pub fn classify(
        &mut self,
        inputs: &[TextInput],
        options: &TaskOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<LabelScore>>, RunError> {
        let top_k = options.top_k.unwrap_or(TopK::Best(1));
        self.run_inputs(inputs, progress, |model, _, _, outputs| {
            let (logits, _) = outputs.get("logits", 2)?;
            let mut labels = scores(logits, &model.labels, model.multi_label);
            labels.truncate(top_k.at_most(labels.len()));
            Ok(labels)
        })
    }
}

/// One row of logits → labels sorted by score (ties keep label order,
/// as Python's stable sort does).
pub fn scores(row: &[f32], labels: &[String], multi_label: bool) -> Vec<LabelScore> {
    let probs: Vec<f64> = if multi_label || row.len() == 1 {
        row.iter().map(|&x| 1.0 / (1.0 + (-(x as f64)).exp())).collect()
    } else {
        softmax(row)
    };
    let mut out: Vec<LabelScore> = probs
        .into_iter()
        .enumerate()
        .map(|(i, score)| LabelScore {
            label: labels.get(i).cloned().unwrap_or_else(|| format!("LABEL_{i}")),
            score,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}
