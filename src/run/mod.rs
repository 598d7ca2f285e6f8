//! `bertc run`: text in, the answer of transformers' pipeline for the
//! model's task out — in tract (or onnxruntime, OpenVINO), with the
//! model's own tokenizer.
//!
//! Each task's post-processing follows its transformers pipeline (4.46)
//! step by step, so labels, spans and tokens come out the same and scores
//! within float rounding: [`classify`] (text-classification), [`entities`]
//! (token-classification, every `aggregation_strategy`, `stride`),
//! [`answer`] (question-answering across windows, `top_k`), [`fill_mask`],
//! [`embed`] (sentence-transformers' `encode`), [`zero_shot`]
//! (zero-shot-classification with an NLI model); [`options`] holds the
//! pipelines' arguments. [`model`] finds the model, its tokenizer and its
//! task.

pub mod answer;
pub mod batch;
pub mod classify;
pub mod embed;
pub mod entities;
pub mod fill_mask;
pub mod form;
pub mod lines;
pub mod model;
pub mod options;
pub mod pipeline_config;
mod rows;
pub mod zero_shot;

use std::path::PathBuf;

use serde::Serialize;

use crate::runtime::{HostData, HostTensor, NamedTensors, RuntimeError};
use crate::tokenize::{TextInput, TokenizeError};

pub use answer::Answer;
pub use batch::BatchLimits;
pub use classify::LabelScore;
pub use entities::{Entity, EntityGroup, TokenEntity};
pub use fill_mask::Fill;
pub use model::{load, LoadedModel, RunOptions};
pub use options::{Aggregation, Cut, TaskOptions, TopK};
pub use rows::{Progress, RowOutputs};
pub use zero_shot::{ZeroShotAnswer, ZeroShotError, ZeroShotOptions};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    #[error(transparent)]
    Model(#[from] crate::Error),
    /// Choosing the file of an export folder.
    #[error(transparent)]
    Form(#[from] form::FormError),
    #[error(transparent)]
    ZeroShot(#[from] ZeroShotError),
    #[error("{}: cannot read: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: field `{field}`: {message}", .path.display())]
    Field {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
    #[error(
        "{}: an ONNX file has no tokenizer of its own: give --tokenizer (tokenizer.json, spm.model, vocab.txt or their folder)",
        .0.display()
    )]
    NoTokenizer(PathBuf),
    #[error(
        "the model has no task head bertc run can answer for (outputs: {}); compile it with --head \
         (sequence-classification, token-classification, question-answering, masked-lm, sentence-embedding)",
        .outputs.join(", ")
    )]
    NoTask { outputs: Vec<String> },
    #[error("a {task} model must have the output `{output}`; this one has: {}", .outputs.join(", "))]
    MissingOutput {
        task: &'static str,
        output: String,
        outputs: Vec<String>,
    },
    #[error("the runtime returned no output `{output}` (it returned: {})", .outputs.join(", "))]
    NoOutput { output: String, outputs: Vec<String> },
    #[error("the model's output `{output}` has shape {shape:?}; expected {expected}")]
    OutputShape {
        output: String,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("{0}")]
    Input(String),
    /// One input cannot be answered; `input` counts from 0 in the call
    /// (see [`RunError::after_inputs`]).
    #[error("input {}: {message}", .input + 1)]
    AtInput { input: usize, message: String },
}

impl RunError {
    /// This error as the caller numbers inputs, for a call whose first
    /// input came after `before` others (a window of a longer stream).
    pub fn after_inputs(self, before: usize) -> RunError {
        match self {
            RunError::AtInput { input, message } => RunError::AtInput {
                input: input + before,
                message,
            },
            other => other,
        }
    }
}

impl From<RuntimeError> for RunError {
    fn from(e: RuntimeError) -> Self {
        RunError::Model(crate::Error::Runtime(e))
    }
}

impl From<crate::config::ConfigError> for RunError {
    fn from(e: crate::config::ConfigError) -> Self {
        RunError::Model(crate::Error::Config(e))
    }
}

/// The pipeline a model answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    SentenceSimilarity,
    TextClassification,
    TokenClassification,
    QuestionAnswering,
    FillMask,
    /// A text-classification (NLI) model asked with candidate labels.
    ZeroShotClassification,
}

impl Task {
    /// transformers' task name.
    pub fn name(self) -> &'static str {
        match self {
            Task::SentenceSimilarity => "sentence-similarity",
            Task::TextClassification => "text-classification",
            Task::TokenClassification => "token-classification",
            Task::QuestionAnswering => "question-answering",
            Task::FillMask => "fill-mask",
            Task::ZeroShotClassification => "zero-shot-classification",
        }
    }

    /// The outputs its post-processing reads.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Task::SentenceSimilarity => &["sentence_embedding"],
            Task::QuestionAnswering => &["start_logits", "end_logits"],
            _ => &["logits"],
        }
    }
}

/// What a run answered, one entry per input.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outputs {
    Classes(Vec<Vec<LabelScore>>),
    Entities(Vec<Vec<Entity>>),
    /// Per input: its best answers, best first.
    Answers(Vec<Vec<Answer>>),
    /// Per input: one list of fills per `[MASK]`.
    Fills(Vec<Vec<Vec<Fill>>>),
    Embeddings(Vec<Vec<f32>>),
    ZeroShot(Vec<ZeroShotAnswer>),
}

impl Outputs {
    /// How many inputs were answered.
    pub fn len(&self) -> usize {
        match self {
            Outputs::Classes(v) => v.len(),
            Outputs::Entities(v) => v.len(),
            Outputs::Answers(v) => v.len(),
            Outputs::Fills(v) => v.len(),
            Outputs::Embeddings(v) => v.len(),
            Outputs::ZeroShot(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the answers of a later window of the same task (answers of
    /// another kind are ignored: one model answers one task).
    pub fn append(&mut self, later: Outputs) {
        match (self, later) {
            (Outputs::Classes(a), Outputs::Classes(b)) => a.extend(b),
            (Outputs::Entities(a), Outputs::Entities(b)) => a.extend(b),
            (Outputs::Answers(a), Outputs::Answers(b)) => a.extend(b),
            (Outputs::Fills(a), Outputs::Fills(b)) => a.extend(b),
            (Outputs::Embeddings(a), Outputs::Embeddings(b)) => a.extend(b),
            (Outputs::ZeroShot(a), Outputs::ZeroShot(b)) => a.extend(b),
            _ => {}
        }
    }

    /// Takes the answers of the first `n` inputs off the front, leaving
    /// the rest: a server hands each request its part of a combined run.
    pub fn split_front(&mut self, n: usize) -> Outputs {
        fn front<T>(v: &mut Vec<T>, n: usize) -> Vec<T> {
            v.drain(..n.min(v.len())).collect()
        }
        match self {
            Outputs::Classes(v) => Outputs::Classes(front(v, n)),
            Outputs::Entities(v) => Outputs::Entities(front(v, n)),
            Outputs::Answers(v) => Outputs::Answers(front(v, n)),
            Outputs::Fills(v) => Outputs::Fills(front(v, n)),
            Outputs::Embeddings(v) => Outputs::Embeddings(front(v, n)),
            Outputs::ZeroShot(v) => Outputs::ZeroShot(front(v, n)),
        }
    }

    /// Every input's answer in the structure of transformers' pipeline
    /// output, as `--json` lists them under `outputs`.
    pub fn pipeline_items(&self) -> Vec<serde_json::Value> {
        self.items()
    }

    /// The `--json` document: `{"task", "outputs"}` in the structure of
    /// transformers' pipeline output, and for embeddings `{"task":
    /// "sentence-similarity", "embeddings"}` (the similarity matrix is
    /// added by the caller that asked for it: it grows as N²).
    pub fn to_json(&self, task: Task) -> serde_json::Value {
        use serde_json::json;
        match self {
            Outputs::Embeddings(e) => json!({"task": task.name(), "embeddings": e}),
            _ => json!({"task": task.name(), "outputs": self.items()}),
        }
    }

    /// Writes one JSON Lines record per input, in order, each on its own
    /// line: `{"embedding": [...]}` for embeddings (each f32 in its
    /// shortest exact form), else `{"output": ...}` holding what `--json`
    /// has for that input in `outputs`.
    pub fn write_json_lines(&self, out: &mut impl std::io::Write) -> serde_json::Result<()> {
        #[derive(Serialize)]
        struct Embedding<'a> {
            embedding: &'a [f32],
        }
        for i in 0..self.len() {
            match self {
                Outputs::Embeddings(e) => serde_json::to_writer(&mut *out, &Embedding { embedding: &e[i] })?,
                _ => serde_json::to_writer(&mut *out, &serde_json::json!({"output": self.item(i)}))?,
            }
            out.write_all(b"\n").map_err(serde_json::Error::io)?;
        }
        Ok(())
    }

    /// Every input's answer in the structure of transformers' pipeline
    /// output (an input with one mask gets the flat list of fills, as the
    /// fill-mask pipeline returns it; a question with one answer gets the
    /// answer, with several or none the list, as question-answering does).
    fn items(&self) -> Vec<serde_json::Value> {
        (0..self.len()).filter_map(|i| self.item(i)).collect()
    }

    fn item(&self, i: usize) -> Option<serde_json::Value> {
        use serde_json::json;
        match self {
            Outputs::Classes(v) => v.get(i).map(|x| json!(x)),
            Outputs::Entities(v) => v.get(i).map(|x| json!(x)),
            Outputs::Answers(v) => v.get(i).map(|answers| match answers.as_slice() {
                [one] => json!(one),
                many => json!(many),
            }),
            Outputs::Fills(v) => v.get(i).map(|masks| match masks.as_slice() {
                [one] => json!(one),
                many => json!(many),
            }),
            Outputs::Embeddings(v) => v.get(i).map(|x| json!(x)),
            Outputs::ZeroShot(v) => v.get(i).map(|x| json!(x)),
        }
    }
}

/// What a call answered, and which inputs the model read only in part.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub outputs: Outputs,
    /// Inputs cut at the model's limit (transformers truncates them the
    /// same way, silently), in input order.
    pub cut: Vec<Cut>,
}

impl LoadedModel {
    /// The task's answer for texts (or, for classification, pairs), run
    /// in length-aware batches under `self.limits`; `progress` hears of
    /// every batch.
    pub fn run_texts(
        &mut self,
        inputs: &[TextInput],
        options: &TaskOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Answered, RunError> {
        self.cut.clear();
        let outputs = self.answer_task(inputs, options, progress);
        let mut cut = std::mem::take(&mut self.cut);
        cut.sort_by_key(|c| c.input);
        Ok(Answered {
            outputs: outputs?,
            cut,
        })
    }

    fn answer_task(
        &mut self,
        inputs: &[TextInput],
        options: &TaskOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Outputs, RunError> {
        if inputs.is_empty() {
            return Err(RunError::Input("no input text".into()));
        }
        Ok(match self.task {
            Task::SentenceSimilarity => Outputs::Embeddings(self.embed(inputs, progress)?),
            Task::TextClassification => Outputs::Classes(self.classify(inputs, options, progress)?),
            Task::TokenClassification => Outputs::Entities(self.entities(inputs, options, progress)?),
            Task::FillMask => Outputs::Fills(self.fill_mask(inputs, options, progress)?),
            Task::ZeroShotClassification => Outputs::ZeroShot(self.classify_zero_shot(inputs, progress)?),
            Task::QuestionAnswering => {
                let pairs = inputs
                    .iter()
                    .map(|i| match *i {
                        TextInput::Pair(q, c) => Ok((q, c)),
                        TextInput::Single(_) => Err(RunError::Input(
                            "a question-answering model takes a question and a context (--question Q --context C)"
                                .into(),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Outputs::Answers(self.answer(&pairs, options, progress)?)
            }
        })
    }
}

/// The texts of inputs that must all be single; a pair is refused with
/// `why`.
fn single_texts<'a>(inputs: &[TextInput<'a>], why: &str) -> Result<Vec<&'a str>, RunError> {
    inputs
        .iter()
        .map(|i| match *i {
            TextInput::Single(t) => Ok(t),
            TextInput::Pair(..) => Err(RunError::Input(why.to_string())),
        })
        .collect()
}

/// An output as f32 with its expected rank checked.
fn output<'a>(
    outputs: &'a NamedTensors,
    name: &str,
    rank: usize,
) -> Result<(&'a [f32], &'a [usize]), RunError> {
    let t: &HostTensor = outputs.get(name).ok_or_else(|| RunError::NoOutput {
        output: name.to_string(),
        outputs: outputs.keys().cloned().collect(),
    })?;
    match &t.data {
        HostData::F32(v) if t.shape.len() == rank => Ok((v, &t.shape)),
        _ => Err(RunError::OutputShape {
            output: name.to_string(),
            shape: t.shape.clone(),
            expected: format!("f32 of rank {rank}"),
        }),
    }
}

/// Softmax of one row, as numpy computes it in the pipelines (shifted by
/// the maximum), in f64.
pub fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}
