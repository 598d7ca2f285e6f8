//! The readers of untrusted bytes, one public function per file kind bertc
//! takes from strangers: a config, an ONNX model, a checkpoint (safetensors
//! or PyTorch zip), a state_dict pickle. Each takes bytes and returns a
//! typed error for anything malformed — never a panic, never an allocation
//! the bytes did not pay for. The fuzz targets (`tests/fuzz/`) and the
//! corpus replay test (`tests/fuzz_replay.rs`) call exactly these, so what
//! the fuzzer proves is what the commands run.

use crate::config::{BertConfig, ConfigError};
use crate::ir::Graph;
use crate::onnx::{export_bytes, import_bytes, ExportOptions};
use crate::passes::{pipeline as level_pipeline, Level, PassManager, QuantizeInt8, Target, ToFp16};
use crate::weights::{
    read_checkpoint_bytes, read_state_dict, CheckpointTensor, PickleError, TensorRef, WeightsError,
};

/// Largest tensor [`checkpoint`] widens to f32: the bytes pay for a
/// contiguous tensor, but a strided view (stride 0) can claim any size;
/// the real loader only widens tensors whose shape the config fixed.
pub const MAX_WIDENED_ELEMENTS: usize = 1 << 22;

/// A config.json's bytes, parsed and validated as `BertConfig::from_path`
/// does; the canonical JSON bertc stores must parse back to the same config.
pub fn config(bytes: &[u8]) -> Result<BertConfig, ConfigError> {
    let text = String::from_utf8_lossy(bytes);
    let config = BertConfig::from_json_str(&text, "(bytes)")?;
    config.parameter_bound()?;
    Ok(config)
}

/// An ONNX model's bytes, imported, then taken through what `optimize`
/// does without tract: the -O2 passes (each verified), int8 and fp16
/// rewrites, and export. Errors from any stage are returned, typed.
pub fn onnx_model(bytes: &[u8]) -> Result<Graph, crate::Error> {
    let graph = import_bytes(bytes)?;
    let mut optimized = graph.clone();
    PassManager::from_names(level_pipeline(Level::O2, Target::Portable))?
        .verify_each(true)
        .run(&mut optimized)?;
    export_bytes(&optimized, ExportOptions::default())?;
    for pm in [
        PassManager::new().with(QuantizeInt8::dynamic()),
        PassManager::new().with(ToFp16),
    ] {
        let mut g = optimized.clone();
        pm.verify_each(true).run(&mut g)?;
        export_bytes(&g, ExportOptions::default())?;
    }
    Ok(graph)
}

/// A checkpoint's bytes (safetensors or PyTorch zip, recognised from the
/// bytes), every float tensor up to [`MAX_WIDENED_ELEMENTS`] widened to f32.
pub fn checkpoint(bytes: &[u8]) -> Result<Vec<CheckpointTensor>, WeightsError> {
    read_checkpoint_bytes(bytes, MAX_WIDENED_ELEMENTS)
}

/// A state_dict pickle's bytes (`data.pkl` of a torch zip), read without
/// executing anything.
pub fn pickle(bytes: &[u8]) -> Result<Vec<(String, TensorRef)>, PickleError> {
    read_state_dict(bytes)
}
