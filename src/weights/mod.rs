//! Model parameters: what a model needs ([`ParamSpec`]) and where the values
//! come from — a checkpoint ([`from_checkpoint`]: safetensors,
//! `pytorch_model.bin`, or a sharded index of either, found in a model
//! folder by [`find_weights`]) or a seeded random initialisation like
//! transformers' ([`seeded`]).
//!
//! All tensors are materialised up front, in parallel, into a [`Weights`]
//! map that the builder takes from: loading a checkpoint converts and
//! transposes on both cores, and a seeded init draws every tensor from its
//! own generator so the bytes do not depend on thread scheduling.

mod checkpoint;
mod find;
mod pickle;
mod seeded;
mod source;
mod stored;
mod torch_bin;
mod zip;

use std::collections::HashMap;

use crate::ir::Tensor;

pub use checkpoint::{checkpoint_names, from_checkpoint, from_checkpoint_with, from_safetensors};
pub use find::{find_weights, WEIGHT_FILES};
pub use pickle::{read_state_dict, PickleError, StorageRef, TensorRef};
pub use seeded::{placeholder, seeded, sinusoidal_table};
pub use source::{file_kind, read_checkpoint_bytes, Checkpoint, CheckpointTensor, FileKind};
pub use stored::DType;

/// How transformers initialises a parameter (`_init_weights`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// normal(0, initializer_range): Linear and Embedding weights.
    Normal {
        std: f64,
    },
    /// An Embedding whose `padding_idx` row is zeroed after the normal draw.
    NormalPadded {
        std: f64,
        padding_row: usize,
    },
    Zeros,
    Ones,
    /// DistilBERT's fixed sinusoidal position table (`sinusoidal_pos_embds`).
    Sinusoidal,
}

/// One parameter the model needs, named as transformers names it
/// (without the `bert.` prefix for the encoder's own parameters).
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: String,
    /// The shape as PyTorch stores it (Linear weights are [out, in]).
    pub shape: Vec<usize>,
    pub init: Init,
    /// Store transposed (2-D only): Linear weights become [in, out] for MatMul.
    pub transpose: bool,
    /// Whether a checkpoint may carry it under the encoder's prefix
    /// (`bert.` in BertFor* models, `roberta.` in RobertaFor*, …).
    pub under_bert_prefix: bool,
    /// That prefix, without its dot: the family's (crate::family).
    pub prefix: &'static str,
}

/// Parameters ready for the builder, by spec name, in the builder's layout.
#[derive(Debug, Default)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    /// Checkpoint tensors of another head or the pooler that this model
    /// does not read (sorted), for the compile report.
    pub ignored: Vec<String>,
}

impl Weights {
    /// Takes a parameter out of the map (each is used exactly once).
    pub fn take(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }
}

/// A checkpoint that does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("weights {path} are not a valid safetensors file: {reason}")]
    Format { path: String, reason: String },
    #[error("weights {path} do not fit the config:\n{}", .problems.join("\n"))]
    Mismatch { path: String, problems: Vec<String> },
    #[error("weights {path} are not a readable PyTorch checkpoint: {reason}")]
    Torch { path: String, reason: String },
    /// The pickle names a global outside the state_dict allow-list.
    #[error(
        "weights {path}: refused global {global}: bertc reads only torch state_dict pickles; \
         nothing was executed"
    )]
    RefusedGlobal { path: String, global: String },
    #[error(
        "weights {path} are in PyTorch's legacy (pre-1.6) format, which bertc does not read: \
         re-save with a recent PyTorch (torch.save with _use_new_zipfile_serialization=True, \
         the default since 1.6) or as safetensors"
    )]
    LegacyTorch { path: String },
    #[error(
        "weights {path}: expected a checkpoint (model.safetensors, pytorch_model.bin or a \
         sharded *.index.json), found {found}"
    )]
    WrongKind { path: String, found: &'static str },
    #[error(
        "weights {path} hold non-finite values (--allow-nonfinite compiles them anyway):\n{}",
        .problems.join("\n")
    )]
    NonFinite { path: String, problems: Vec<String> },
    #[error("weights index {path}: {reason}")]
    Index { path: String, reason: String },
    /// Memory for one parameter could not be had: refused by name, not
    /// the allocator's abort.
    #[error(
        "parameter `{name}` {shape:?} needs {bytes} bytes ({:.1} GB as f32), more memory than this \
         machine gives: shrink the field that sizes it",
        *.bytes as f64 / 1e9
    )]
    Allocation {
        name: String,
        shape: Vec<usize>,
        bytes: usize,
    },
}

/// Copies a row-major [rows, cols] matrix into [cols, rows] order.
fn transpose_f32(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    // Blocked so both sides stay in cache for large matrices.
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
        }
    }
    out
}

/// The final tensor for a spec from values in PyTorch layout.
fn finish(spec: &ParamSpec, values: Vec<f32>) -> Tensor {
    match (spec.transpose, spec.shape.as_slice()) {
        (true, &[rows, cols]) => Tensor::from_f32(vec![cols, rows], &transpose_f32(&values, rows, cols)),
        _ => Tensor::from_f32(spec.shape.clone(), &values),
    }
}
