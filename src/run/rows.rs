//! Running tokenized rows through the model in length-aware batches
//! ([`super::batch`]) and handing each row its own slice of the outputs,
//! in row order whatever order the batches ran in.

use tokenizers::Encoding;

use super::batch::plan;
use super::options::Cut;
use super::{output, LoadedModel, RunError};
use crate::runtime::NamedTensors;
use crate::tokenize::{model_inputs, TextInput, Truncate};

/// How far a run is, after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows (encodings) run so far in this call.
    pub rows_done: usize,
    /// Rows of this call.
    pub rows: usize,
}

/// One row's part of a batch's outputs.
pub struct RowOutputs<'a> {
    outputs: &'a NamedTensors,
    row: usize,
}

impl<'a> RowOutputs<'a> {
    /// The f32 output `name` of this row and its shape without the batch
    /// axis; `rank` is the batch output's rank (batch axis included).
    pub fn get(&self, name: &str, rank: usize) -> Result<(&'a [f32], &'a [usize]), RunError> {
        let (values, shape) = output(self.outputs, name, rank)?;
        let per_row: usize = shape[1..].iter().product();
        let at = self.row * per_row;
        match values.get(at..at + per_row) {
            Some(v) if shape[0] > self.row => Ok((v, &shape[1..])),
            _ => Err(RunError::OutputShape {
                output: name.to_string(),
                shape: shape.to_vec(),
                expected: format!("a row {} in the batch axis", self.row),
            }),
        }
    }

    /// A per-token output `[B, S, W]` of this row (`S` at least `tokens`),
    /// with its width `W`: the row's values are `W` per position.
    pub fn per_token(&self, name: &str, tokens: usize) -> Result<(&'a [f32], usize), RunError> {
        let (values, shape) = self.get(name, 3)?;
        if shape[0] < tokens {
            return Err(RunError::OutputShape {
                output: name.to_string(),
                shape: shape.to_vec(),
                expected: format!("{tokens} positions or more (the row's tokens)"),
            });
        }
        Ok((values, shape[1]))
    }
}

impl LoadedModel {
    /// Tokenizes `inputs` (one row each, cut at the model's limit) and
    /// runs them as [`LoadedModel::run_rows`] does.
    pub(super) fn run_inputs<T>(
        &mut self,
        inputs: &[TextInput],
        progress: &mut dyn FnMut(Progress),
        each: impl FnMut(&Self, usize, &Encoding, RowOutputs) -> Result<T, RunError>,
    ) -> Result<Vec<T>, RunError> {
        let rows = self.tokenizer.encode_unpadded(inputs, Truncate::LongestFirst)?;
        for (input, (enc, text)) in rows.iter().zip(inputs).enumerate() {
            // tokenizers keeps what truncation dropped as overflow.
            if !enc.get_overflowing().is_empty() {
                self.cut.push(cut_of(input, enc, text));
            }
        }
        self.run_rows(&rows, progress, each)
    }

    /// Runs `rows` in the batches [`plan`] makes under `self.limits`, each
    /// padded to its own length, and returns what `each` makes of every
    /// row (given its index in `rows` and its encoding), in row order.
    pub(super) fn run_rows<T>(
        &mut self,
        rows: &[Encoding],
        progress: &mut dyn FnMut(Progress),
        mut each: impl FnMut(&Self, usize, &Encoding, RowOutputs) -> Result<T, RunError>,
    ) -> Result<Vec<T>, RunError> {
        let lengths: Vec<usize> = rows.iter().map(Encoding::len).collect();
        let mut answers: Vec<(usize, T)> = Vec::with_capacity(rows.len());
        for batch in plan(&lengths, self.limits, self.tokenizer.max_length) {
            let encodings: Vec<&Encoding> = batch.rows.iter().map(|&r| &rows[r]).collect();
            let inputs = model_inputs(&encodings, batch.seq, self.tokenizer.special.pad);
            // A tokenizer that does not fit the model (ids past its tables,
            // a template past its positions) is named here, not in the
            // runtime's panic text (issue 25 N7).
            self.input_limits
                .check(&inputs, "the tokenizer's output")
                .map_err(|e| crate::Error::from(crate::runtime::RuntimeError::from(e)))?;
            let outputs = self.model.run(&inputs)?;
            for (at, &r) in batch.rows.iter().enumerate() {
                let answer = each(
                    self,
                    r,
                    &rows[r],
                    RowOutputs {
                        outputs: &outputs,
                        row: at,
                    },
                )?;
                answers.push((r, answer));
            }
            progress(Progress {
                rows_done: answers.len(),
                rows: rows.len(),
            });
        }
        // Back to row order: the plan has every row exactly once.
        answers.sort_by_key(|&(r, _)| r);
        Ok(answers.into_iter().map(|(_, a)| a).collect())
    }
}

/// What the model read of an input cut at its limit.
fn cut_of(input: usize, enc: &Encoding, text: &TextInput) -> Cut {
    let chars = match text {
        TextInput::Single(t) => {
            let read = enc.get_offsets().iter().map(|o| o.1).max().unwrap_or(0);
            Some((read, t.chars().count()))
        }
        TextInput::Pair(..) => None,
    };
    Cut {
        input,
        tokens: enc.len(),
        chars,
    }
}

/// Every window of every encoding as a row of its own (an input's later
/// windows are in its overflow), with the input each row belongs to: a
/// long input's windows may then land in different batches.
pub(super) fn windows(encodings: Vec<Encoding>) -> (Vec<Encoding>, Vec<usize>) {
    let mut rows = Vec::with_capacity(encodings.len());
    let mut owner = Vec::with_capacity(encodings.len());
    for (input, mut encoding) in encodings.into_iter().enumerate() {
        let overflowing = encoding.take_overflowing();
        for window in std::iter::once(encoding).chain(overflowing) {
            rows.push(window);
            owner.push(input);
        }
    }
    (rows, owner)
}
