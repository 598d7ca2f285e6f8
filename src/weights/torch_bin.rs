//! PyTorch's zip checkpoint (`pytorch_model.bin` from torch >= 1.6):
//! `<archive>/data.pkl` (the state_dict pickle, read by [`super::pickle`]
//! without executing it) and one entry `<archive>/data/<key>` per storage.
//!
//! Every tensor is checked against its storage before anything is
//! allocated: the storage entry must hold the elements the pickle declares,
//! and the view (offset, shape, strides) must stay inside the storage.

use super::pickle::{read_state_dict, PickleError, TensorRef};
use super::stored::{contiguous_strides, StoredTensor};
use super::zip::read_index;

/// Largest data.pkl read: a state_dict pickle takes ~100 bytes per tensor.
const MAX_PICKLE_BYTES: usize = 256 << 20;

#[derive(Debug)]
pub enum TorchError {
    RefusedGlobal(String),
    Malformed(String),
}

impl From<PickleError> for TorchError {
    fn from(e: PickleError) -> Self {
        match e {
            PickleError::RefusedGlobal(g) => TorchError::RefusedGlobal(g),
            PickleError::Malformed(m) => TorchError::Malformed(m),
        }
    }
}

fn malformed<T>(msg: impl Into<String>) -> Result<T, TorchError> {
    Err(TorchError::Malformed(msg.into()))
}

/// The tensors of a torch zip checkpoint held in `bytes` (file index 0).
pub fn read(bytes: &[u8]) -> Result<Vec<(String, StoredTensor)>, TorchError> {
    let index = read_index(bytes).map_err(|e| TorchError::Malformed(format!("zip archive: {e}")))?;
    // Entries live under one folder named after the archive
    // (`pytorch_model/`, `archive/`): the one holding data.pkl.
    // Two such folders are refused by name: picking one (by name length,
    // then hash order) gave different weights from run to run (issue 25, N3).
    let mut pickles: Vec<&String> = index
        .entries
        .keys()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .collect();
    pickles.sort();
    let pkl = match pickles.as_slice() {
        [] => return malformed("the archive has no data.pkl: not a torch.save checkpoint"),
        [one] => (*one).clone(),
        several => {
            return malformed(format!(
                "the archive holds {} state_dict pickles ({}); torch.save writes one, so which holds the \
                 weights is ambiguous",
                several.len(),
                several.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(order) = index.entries.get(&format!("{prefix}byteorder")) {
        if &bytes[order.clone()] != b"little" {
            return malformed(format!(
                "byteorder is {:?}; only little-endian checkpoints are read",
                String::from_utf8_lossy(&bytes[order.clone()])
            ));
        }
    }
    let code = index.entries[&pkl].clone();
    if code.len() > MAX_PICKLE_BYTES {
        return malformed(format!(
            "data.pkl is {} bytes, too large for a state_dict",
            code.len()
        ));
    }
    let tensors = read_state_dict(&bytes[code])?;
    tensors
        .into_iter()
        .map(|(name, t)| {
            let entry = format!("{prefix}data/{}", t.storage.key);
            let Some(range) = index.entries.get(&entry) else {
                return malformed(format!(
                    "tensor `{name}`: its storage `{}` has no entry {entry} in the archive",
                    t.storage.key
                ));
            };
            let stored = check_view(&name, &t, range.start, range.len())?;
            Ok((name, stored))
        })
        .collect()
}

/// Checks a view against its storage entry (`len` bytes at `start`).
fn check_view(name: &str, t: &TensorRef, start: usize, len: usize) -> Result<StoredTensor, TorchError> {
    let s = &t.storage;
    let size = s.dtype.size() as u64;
    let describe = || format!("offset {}, size {:?}, stride {:?}", t.offset, t.shape, t.stride);
    if s.numel.checked_mul(size).is_none_or(|need| need > len as u64) {
        return malformed(format!(
            "tensor `{name}`: storage `{}` declares {} elements of {} bytes but its entry holds {len} bytes",
            s.key, s.numel, size
        ));
    }
    let Some(numel) = t.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)) else {
        return malformed(format!("tensor `{name}`: size {:?} overflows", t.shape));
    };
    if numel > s.numel {
        // Only broadcast (stride-0) views have more elements than their
        // storage; a state_dict never saves one.
        return malformed(format!(
            "tensor `{name}` has {numel} elements, more than its storage `{}` holds ({}) ({})",
            s.key,
            s.numel,
            describe()
        ));
    }
    if numel > 0 {
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (&d, &st)| {
                acc.checked_add((d - 1).checked_mul(st)?)
            });
        if last.is_none_or(|last| last >= s.numel) {
            return malformed(format!(
                "tensor `{name}` reaches past the end of its storage `{}` of {} elements ({})",
                s.key,
                s.numel,
                describe()
            ));
        }
    }
    // Everything is now bounded by the entry's length, which fits in
    // memory — except the stride of a size-1 dimension, which is never
    // used to move: give it the contiguous value so it stays small.
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let contiguous = contiguous_strides(&shape);
    let strides = t
        .stride
        .iter()
        .zip(&shape)
        .zip(contiguous)
        .map(|((&st, &d), c)| if d == 1 { c } else { st as usize })
        .collect();
    Ok(StoredTensor {
        file: 0,
        dtype: s.dtype.clone(),
        shape,
        start,
        offset: t.offset as usize,
        strides,
    })
}
