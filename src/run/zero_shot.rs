//! zero-shot-classification as transformers' pipeline answers it with a
//! natural-language-inference model: every text is the premise of one pair
//! per candidate label, the hypothesis being the template with the label
//! in it ("This example is {}." by default); each pair runs through the
//! model (the premise cut first when the pair is too long); then
//! - one label per text (the default): softmax of the pairs' entailment
//!   logits across the labels;
//! - `multi_label` (or a single candidate label): for each label alone,
//!   softmax over its (contradiction, entailment) logits, the entailment
//!   side kept;
//!
//! and the labels sorted by score, best first. The entailment id is the
//! first label of label2id starting with "entail" (any case); the
//! contradiction id is 0, or the last logit when entailment is 0 — the
//! pipeline's own rule, whatever the other labels are called.

use serde::Serialize;
use tokenizers::Encoding;

use super::{single_texts, softmax, LoadedModel, Progress, RunError, Task};
use crate::tokenize::{TextInput, Truncate};

/// transformers' default hypothesis template.
pub const DEFAULT_HYPOTHESIS_TEMPLATE: &str = "This example is {}.";

/// The pipeline's arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotOptions {
    pub candidate_labels: Vec<String>,
    pub hypothesis_template: String,
    pub multi_label: bool,
}

/// One text's answer, as the pipeline returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZeroShotAnswer {
    pub sequence: String,
    pub labels: Vec<String>,
    pub scores: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ZeroShotError {
    #[error("--candidate-labels {given:?}: no label in it (give at least one, comma-separated)")]
    NoLabels { given: String },
    #[error("--hypothesis-template {template:?}: {why}")]
    Template { template: String, why: String },
    #[error(
        "zero-shot classification needs an NLI model with an entailment label (one starting with \
         \"entail\" in label2id); this model's labels are: {labels}"
    )]
    NoEntailment { labels: String },
    #[error("zero-shot classification runs a text-classification (NLI) model; this model answers {task}")]
    NotClassifier { task: &'static str },
}

impl ZeroShotOptions {
    /// The options from the flags' values: `labels` as
    /// `--candidate-labels a,b,c` gives them ([`parse_labels`]), the
    /// template (default [`DEFAULT_HYPOTHESIS_TEMPLATE`]); no label is an
    /// error naming the value.
    pub fn from_flags(
        labels: &str,
        template: Option<&str>,
        multi_label: bool,
    ) -> Result<ZeroShotOptions, ZeroShotError> {
        let candidate_labels = parse_labels(labels);
        if candidate_labels.is_empty() {
            return Err(ZeroShotError::NoLabels {
                given: labels.to_string(),
            });
        }
        // The template is checked here too, before any model loads.
        let template = template.unwrap_or(DEFAULT_HYPOTHESIS_TEMPLATE);
        hypothesis(template, &candidate_labels[0])?;
        Ok(ZeroShotOptions {
            candidate_labels,
            hypothesis_template: template.to_string(),
            multi_label,
        })
    }
}

/// The labels of `--candidate-labels a,b,c`: split at commas, each
/// trimmed, empty ones dropped (the pipeline's `_parse_labels`).
pub fn parse_labels(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `template.format(label)` as Python formats it, for the fields a
/// hypothesis template can hold: `{}` (once) or `{0}` (any number of
/// times), `{{` and `}}` for braces. A template without a field is refused,
/// as the pipeline refuses one that formatting leaves unchanged; any other
/// field is refused as Python would.
pub fn hypothesis(template: &str, label: &str) -> Result<String, ZeroShotError> {
    let bad = |why: &str| ZeroShotError::Template {
        template: template.to_string(),
        why: why.to_string(),
    };
    let (mut out, mut auto, mut manual) = (String::new(), 0, 0);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                chars.next();
                out.push(c);
            }
            ('{', _) => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => field.push(c),
                        None => return Err(bad("a single '{' (write '{{' for a brace)")),
                    }
                }
                match field.as_str() {
                    "" => auto += 1,
                    "0" => manual += 1,
                    _ => {
                        return Err(bad(&format!(
                            "the field {{{field}}} is not the label's: write {{}} where the label goes"
                        )))
                    }
                }
                out.push_str(label);
            }
            ('}', _) => return Err(bad("a single '}' (write '}}' for a brace)")),
            _ => out.push(c),
        }
    }
    match (auto, manual) {
        (0, 0) => Err(bad("no {} where the label goes")),
        (a, m) if a > 0 && m > 0 => Err(bad("both {} and {0}: use one")),
        (a, _) if a > 1 => Err(bad("{} more than once: there is one label to put in")),
        _ => Ok(out),
    }
}

/// The first label of `label2id` starting with "entail", any case.
pub fn entailment_id(label2id: &[(String, usize)]) -> Result<usize, ZeroShotError> {
    label2id
        .iter()
        .find(|(name, _)| name.to_lowercase().starts_with("entail"))
        .map(|&(_, id)| id)
        .ok_or_else(|| ZeroShotError::NoEntailment {
            labels: match label2id.is_empty() {
                true => "none".into(),
                false => label2id
                    .iter()
                    .map(|(n, i)| format!("{n:?}: {i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        })
}

/// Scores of the candidate labels of one text, in label order, from each
/// pair's logits (`rows[i]` for label i).
pub fn scores(rows: &[&[f32]], entailment: usize, multi_label: bool) -> Vec<f64> {
    if multi_label || rows.len() == 1 {
        rows.iter()
            .map(|row| {
                // numpy's index -1: the last logit.
                let contradiction = if entailment == 0 { row.len() - 1 } else { 0 };
                softmax(&[row[contradiction], row[entailment]])[1]
            })
            .collect()
    } else {
        let entail: Vec<f32> = rows.iter().map(|row| row[entailment]).collect();
        softmax(&entail)
    }
}

/// What a zero-shot run needs, checked before any text is read.
#[derive(Debug, Clone)]
pub struct ZeroShotPlan {
    labels: Vec<String>,
    hypotheses: Vec<String>,
    entailment: usize,
    multi_label: bool,
}

impl ZeroShotPlan {
    pub fn new(
        options: &ZeroShotOptions,
        label2id: &[(String, usize)],
    ) -> Result<ZeroShotPlan, ZeroShotError> {
        if options.candidate_labels.is_empty() {
            return Err(ZeroShotError::NoLabels {
                given: options.candidate_labels.join(","),
            });
        }
        let hypotheses = options
            .candidate_labels
            .iter()
            .map(|l| hypothesis(&options.hypothesis_template, l))
            .collect::<Result<_, _>>()?;
        Ok(ZeroShotPlan {
            labels: options.candidate_labels.clone(),
            hypotheses,
            entailment: entailment_id(label2id)?,
            multi_label: options.multi_label,
        })
    }

    /// One text's answer from its pairs' logits, labels best first (ties
    /// in label order).
    fn answer(&self, text: &str, rows: &[&[f32]]) -> Result<ZeroShotAnswer, RunError> {
        if let Some(row) = rows.iter().find(|r| r.len() <= self.entailment) {
            return Err(RunError::OutputShape {
                output: "logits".into(),
                shape: vec![row.len()],
                expected: format!("more than {} labels (the entailment id)", self.entailment),
            });
        }
        let scores = scores(rows, self.entailment, self.multi_label);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        Ok(ZeroShotAnswer {
            sequence: text.to_string(),
            labels: order.iter().map(|&i| self.labels[i].clone()).collect(),
            scores: order.iter().map(|&i| scores[i]).collect(),
        })
    }
}

impl LoadedModel {
    /// Makes this text-classification (NLI) model answer as the
    /// zero-shot-classification pipeline with `options`; refused, naming
    /// the value, for another task, no label, a template without `{}` or
    /// a model without an entailment label.
    pub fn zero_shot(&mut self, options: &ZeroShotOptions) -> Result<(), RunError> {
        if !matches!(self.task, Task::TextClassification | Task::ZeroShotClassification) {
            return Err(ZeroShotError::NotClassifier {
                task: self.task.name(),
            }
            .into());
        }
        self.zero_shot = Some(ZeroShotPlan::new(options, &self.label2id)?);
        self.task = Task::ZeroShotClassification;
        Ok(())
    }

    /// Texts → each one's candidate labels with scores.
    pub(super) fn classify_zero_shot(
        &mut self,
        inputs: &[TextInput],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<ZeroShotAnswer>, RunError> {
        let plan = self
            .zero_shot
            .clone()
            .ok_or_else(|| RunError::Input("zero-shot classification needs candidate labels".into()))?;
        let texts = single_texts(
            inputs,
            "zero-shot classification takes single texts; the labels make the pairs",
        )?;
        let pairs: Vec<TextInput> = texts
            .iter()
            .flat_map(|&t| plan.hypotheses.iter().map(move |h| TextInput::Pair(t, h)))
            .collect();
        let rows = self.encode_premise_first(&pairs)?;
        let logits = self.run_rows(&rows, progress, |_, _, _, outputs| {
            let (row, _) = outputs.get("logits", 2)?;
            Ok(row.to_vec())
        })?;
        let per_text = plan.labels.len();
        texts
            .iter()
            .zip(logits.chunks(per_text))
            .map(|(t, rows)| {
                let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                plan.answer(t, &rows)
            })
            .collect()
    }

    /// The pairs cut premise first (the pipeline's `ONLY_FIRST`). Where the
    /// premise is too short to make room, the pipeline stops truncating
    /// (and a model with a position table then fails); here that pair is
    /// cut longest-first instead, so it still fits the model.
    fn encode_premise_first(&mut self, pairs: &[TextInput]) -> Result<Vec<Encoding>, RunError> {
        if let Ok(rows) = self.tokenizer.encode_unpadded(pairs, Truncate::OnlyFirst) {
            return Ok(rows);
        }
        let mut rows = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let one = std::slice::from_ref(pair);
            let encoded = match self.tokenizer.encode_unpadded(one, Truncate::OnlyFirst) {
                Ok(e) => e,
                Err(_) => self.tokenizer.encode_unpadded(one, Truncate::LongestFirst)?,
            };
            rows.extend(encoded);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_format_as_python_does_or_are_refused_naming_the_template() {
        assert_eq!(
            hypothesis(DEFAULT_HYPOTHESIS_TEMPLATE, "sports").unwrap(),
            "This example is sports."
        );
        assert_eq!(hypothesis("{0}, {0}!", "go").unwrap(), "go, go!");
        assert_eq!(hypothesis("{{x}} is {}", "y").unwrap(), "{x} is y");
        for (template, why) in [
            ("no field", "no {} where the label goes"),
            ("{{}} only braces", "no {} where the label goes"),
            ("{} and {}", "more than once"),
            ("{} and {0}", "both"),
            ("{label}", "the field {label}"),
            ("a } b {}", "a single '}'"),
            ("{} {", "a single '{'"),
            ("{abc", "a single '{'"),
        ] {
            let err = hypothesis(template, "x").unwrap_err().to_string();
            assert!(
                err.contains(&format!("{template:?}")) && err.contains(why),
                "{template}: {err}"
            );
        }
    }

    #[test]
    fn labels_split_at_commas_trimmed_and_empty_ones_dropped() {
        assert_eq!(parse_labels(" a, b c ,,d,"), ["a", "b c", "d"]);
        assert!(parse_labels(" , ").is_empty());
    }

    #[test]
    fn the_entailment_label_is_the_first_starting_with_entail_in_any_case() {
        let l = |pairs: &[(&str, usize)]| -> Vec<(String, usize)> {
            pairs.iter().map(|&(n, i)| (n.to_string(), i)).collect()
        };
        assert_eq!(
            entailment_id(&l(&[("CONTRADICTION", 0), ("ENTAILMENT", 2), ("entails", 1)])).unwrap(),
            2
        );
        let err = entailment_id(&l(&[("negative", 0), ("positive", 1)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"negative\": 0") && err.contains("\"positive\": 1"),
            "{err}"
        );
        assert!(entailment_id(&[]).unwrap_err().to_string().contains("none"));
    }

    /// The pipeline's arithmetic on known logits (label order: the
    /// candidate labels; each row a pair's [contradiction, neutral, entailment]).
    #[test]
    fn scores_are_the_pipelines_softmaxes() {
        let rows: [&[f32]; 3] = [&[0.5, 0.0, 2.0], &[1.0, 0.0, 1.0], &[-1.0, 3.0, 0.0]];
        let single = scores(&rows, 2, false);
        let z = 2f64.exp() + 1f64.exp() + 1.0;
        for (s, e) in single.iter().zip([2f64.exp() / z, 1f64.exp() / z, 1.0 / z]) {
            assert!((s - e).abs() < 1e-12, "{single:?}");
        }
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let multi = scores(&rows, 2, true);
        for (s, e) in multi.iter().zip([sigmoid(1.5), 0.5, sigmoid(1.0)]) {
            assert!((s - e).abs() < 1e-12, "{multi:?}");
        }
        // One label: per label, as multi-label.
        assert!((scores(&rows[..1], 2, false)[0] - sigmoid(1.5)).abs() < 1e-12);
        // Entailment at 0: contradiction is the last logit.
        assert!((scores(&[&[2.0, 0.0, 1.0]], 0, true)[0] - sigmoid(1.0)).abs() < 1e-12);
    }

    #[test]
    fn answers_sort_labels_best_first_and_check_the_logits_width() {
        let plan = ZeroShotPlan::new(
            &ZeroShotOptions {
                candidate_labels: parse_labels("a,b,c"),
                hypothesis_template: DEFAULT_HYPOTHESIS_TEMPLATE.into(),
                multi_label: false,
            },
            &[("contradiction".into(), 0), ("entailment".into(), 1)],
        )
        .unwrap();
        assert_eq!(plan.hypotheses[1], "This example is b.");
        let answer = plan
            .answer("t", &[&[0.0, 1.0], &[0.0, 3.0], &[0.0, 2.0]])
            .unwrap();
        assert_eq!(answer.labels, ["b", "c", "a"]);
        assert!(answer.scores.windows(2).all(|w| w[0] > w[1]));
        assert!((answer.scores.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(plan.answer("t", &[&[0.0]]).is_err());

        let empty = ZeroShotOptions {
            candidate_labels: vec![],
            hypothesis_template: DEFAULT_HYPOTHESIS_TEMPLATE.into(),
            multi_label: false,
        };
        assert!(matches!(
            ZeroShotPlan::new(&empty, &[]),
            Err(ZeroShotError::NoLabels { .. })
        ));
        let err = ZeroShotOptions::from_flags(" , ", None, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--candidate-labels \" , \""), "{err}");
        let options = ZeroShotOptions::from_flags("x", None, true).unwrap();
        assert_eq!(options.hypothesis_template, "This example is {}.");
    }
}
