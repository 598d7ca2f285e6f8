//! Which file of a model folder holds its weights.

use std::path::{Path, PathBuf};

/// The checkpoint file names a Hugging Face model folder may hold, in the
/// order transformers prefers them: safetensors over pickles, a single
/// file over a sharded index of the same format.
pub const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// The weights of the model folder `dir`: the first of [`WEIGHT_FILES`]
/// that is a file there, or None.
pub fn find_weights(dir: &Path) -> Option<PathBuf> {
    WEIGHT_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}
