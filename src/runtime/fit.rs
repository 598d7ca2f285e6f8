//! Whether given inputs fit a model, checked before tract sees them.
//!
//! tract indexes embedding tables without bounds checks of its own: a token
//! id past the vocabulary, a token type past `type_vocab_size` or a sequence
//! longer than the position table ends in a panic deep in its Gather (or a
//! shape-unification error about broadcasts). The limits are read from the
//! graph itself — the rows of the table each input indexes, the rows of the
//! position table — so they hold for bertc's files and foreign exports
//! alike, and the error names the input, where the bad value is, the value
//! and the valid range.

use super::host::{HostData, NamedTensors};
use crate::ir::{DType, Dim, Graph, Op, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputFitError {
    #[error(
        "{origin}: `{input}` at batch row {row}, position {position} is {value}: \
         valid values are 0 to {} ({what} has {rows} rows)",
        .rows.saturating_sub(1)
    )]
    OutOfRange {
        origin: String,
        input: String,
        row: usize,
        position: usize,
        value: i64,
        rows: usize,
        what: &'static str,
    },
    #[error(
        "{origin}: `{input}` has {len} positions, but the model's position table covers {max}: \
         give sequences of at most {max} tokens"
    )]
    TooLong {
        origin: String,
        input: String,
        len: usize,
        max: usize,
    },
    #[error("{origin}: `{input}` has shape {shape:?}; the model expects a rank-{rank} tensor {expected}")]
    Rank {
        origin: String,
        input: String,
        shape: Vec<usize>,
        rank: usize,
        expected: String,
    },
    #[error("{origin}: `{input}` holds {found} values; the model expects {expected}")]
    DType {
        origin: String,
        input: String,
        found: &'static str,
        expected: String,
    },
    #[error("{origin}: `{input}` has shape {shape:?}, which does not match `{other}` {other_shape:?}")]
    Mismatch {
        origin: String,
        input: String,
        shape: Vec<usize>,
        other: String,
        other_shape: Vec<usize>,
    },
    #[error(
        "{origin}: the reference for output `{output}` holds integers (stored as I32 or I64), \
         but `{output}` is {expected}: store float references (F32, F16 or BF16)"
    )]
    Reference {
        origin: String,
        output: String,
        expected: String,
    },
}

/// The rows of the constant table that model input `input` indexes through
/// a Gather (the word-embedding table for `input_ids`), if any — also
/// through Casts (onnxruntime's files gather with int32 ids).
pub fn table_rows(g: &Graph, input: &str) -> Option<usize> {
    let id = g.inputs().iter().copied().find(|&id| g.node(id).name == input)?;
    gathered_rows(g, Value { node: id, slot: 0 })
}

fn gathered_rows(g: &Graph, ids: Value) -> Option<usize> {
    g.consumers(ids).iter().find_map(|&(user, slot)| {
        let data = g.inputs_of(user).first().copied().flatten()?;
        match (&g.node(user).op, &g.node(data.node).op, slot) {
            (Op::Gather { axis: 0 }, Op::Constant(t), 1) => t.dims().first().copied(),
            (Op::Cast { .. }, _, 0) => gathered_rows(g, Value { node: user, slot: 0 }),
            _ => None,
        }
    })
}

/// What a model's token inputs may hold, read off its graph once: the
/// rows of the tables they index and the longest sequence. `run` keeps it
/// to check every batch the tokenizer makes before the runtime sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputLimits {
    /// (input, rows of the table it indexes).
    tables: Vec<(String, usize)>,
    max_sequence: Option<usize>,
}

impl InputLimits {
    pub fn of(g: &Graph) -> InputLimits {
        let tables = g
            .inputs()
            .iter()
            .filter_map(|&id| {
                let name = &g.node(id).name;
                table_rows(g, name).map(|rows| (name.clone(), rows))
            })
            .collect();
        InputLimits {
            tables,
            max_sequence: super::max_sequence(g),
        }
    }

    /// Checks every [B, S] integer input of `tensors` against the tables
    /// and the sequence limit.
    pub fn check(&self, tensors: &NamedTensors, origin: &str) -> Result<(), InputFitError> {
        for (name, t) in tensors {
            if let (HostData::I64(values), 2) = (&t.data, t.shape.len()) {
                self.check_values(name, &t.shape, values, origin)?;
            }
        }
        Ok(())
    }

    fn check_values(
        &self,
        name: &str,
        shape: &[usize],
        values: &[i64],
        origin: &str,
    ) -> Result<(), InputFitError> {
        if let Some(&(_, rows)) = self.tables.iter().find(|(n, _)| n == name) {
            let what = match name {
                "input_ids" => "the word-embedding table",
                "token_type_ids" => "the token-type table",
                _ => "the table it indexes",
            };
            let seq = shape[1].max(1);
            if let Some((at, &value)) = values
                .iter()
                .enumerate()
                .find(|&(_, &v)| v < 0 || v as u64 >= rows as u64)
            {
                return Err(InputFitError::OutOfRange {
                    origin: origin.into(),
                    input: name.into(),
                    row: at / seq,
                    position: at % seq,
                    value,
                    rows,
                    what,
                });
            }
        }
        match self.max_sequence {
            Some(max) if shape[1] > max => Err(InputFitError::TooLong {
                origin: origin.into(),
                input: name.into(),
                len: shape[1],
                max,
            }),
            _ => Ok(()),
        }
    }
}

/// Checks that `tensors` fit the inputs of `g`: each model input present
/// in `tensors` has the model's rank and an integer or float type as the
/// model declares, all token inputs have one shape, every value indexing a
/// table is within it, and the sequence is no longer than the position
/// table. `origin` names where the tensors came from (a file) in errors.
/// Missing inputs are left to the runner, which names them.
pub fn check_inputs_fit(g: &Graph, tensors: &NamedTensors, origin: &str) -> Result<(), InputFitError> {
    let limits = InputLimits::of(g);
    let mut first: Option<(&str, &[usize])> = None;
    for &id in g.inputs() {
        let name = g.node(id).name.as_str();
        let Some(t) = tensors.get(name) else { continue };
        let info = g.info(Value { node: id, slot: 0 });
        let rank = info.shape.rank();
        if t.shape.len() != rank {
            return Err(InputFitError::Rank {
                origin: origin.into(),
                input: name.into(),
                shape: t.shape.clone(),
                rank,
                expected: info.shape.to_string(),
            });
        }
        for (i, (d, &n)) in info.shape.0.iter().zip(&t.shape).enumerate() {
            if matches!(d, Dim::Fixed(f) if *f != n as i64) {
                return Err(InputFitError::Rank {
                    origin: origin.into(),
                    input: name.into(),
                    shape: t.shape.clone(),
                    rank,
                    expected: format!("{} (dim {i} must be {d})", info.shape),
                });
            }
        }
        let float = matches!(info.dtype, DType::F32 | DType::F16 | DType::BF16);
        let (ints, is_float) = match &t.data {
            HostData::I64(v) => (Some(v), false),
            HostData::F32(_) => (None, true),
        };
        if is_float != float {
            return Err(InputFitError::DType {
                origin: origin.into(),
                input: name.into(),
                found: t.dtype_name(),
                expected: format!("{} {}", info.dtype, info.shape),
            });
        }
        let Some(values) = ints else { continue };
        if rank != 2 {
            continue;
        }
        // Token inputs [batch, seq] share one shape.
        match first {
            Some((other, shape)) if shape != t.shape.as_slice() => {
                return Err(InputFitError::Mismatch {
                    origin: origin.into(),
                    input: name.into(),
                    shape: t.shape.clone(),
                    other: other.into(),
                    other_shape: shape.to_vec(),
                })
            }
            Some(_) => {}
            None => first = Some((name, &t.shape)),
        }
        limits.check_values(name, &t.shape, values, origin)?;
    }
    Ok(())
}

/// Checks that every reference in `golden` named like an output of `g`
/// can be compared with it: a float output against float references (an
/// integer reference would compare as numbers and fail with NaN cosines,
/// hiding that the file is wrong).
pub fn check_references_fit(g: &Graph, golden: &NamedTensors, origin: &str) -> Result<(), InputFitError> {
    for (name, v) in g.outputs() {
        let Some(t) = golden.get(name) else { continue };
        let float = matches!(g.info(*v).dtype, DType::F32 | DType::F16 | DType::BF16);
        if float && matches!(t.data, HostData::I64(_)) {
            return Err(InputFitError::Reference {
                origin: origin.into(),
                output: name.clone(),
                expected: format!("{} {}", g.info(*v).dtype, g.info(*v).shape),
            });
        }
    }
    Ok(())
}
