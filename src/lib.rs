//! bertc: a BERT model compiler. A Hugging Face config (plus optional
//! safetensors weights) becomes an IR graph ([`builder`]), is rewritten by
//! graph [`passes`], serialized to ONNX ([`onnx`]) and proven by running it
//! in tract ([`runtime`]) on the threads of the caller's [`Session`].

pub mod atomic_write;
pub mod bench;
pub mod builder;
pub mod config;
pub mod cost;
mod error;
pub mod export_folder;
pub mod export_manifest;
pub mod family;
pub mod head;
pub mod hub;
pub mod input_file;
pub mod ir;
pub mod locate;
pub mod model_folder;
pub mod numeric;
pub mod onnx;
#[path = "../passes/mod.rs"]
pub mod passes;
pub mod pipeline;
pub mod plot;
pub mod presets;
pub mod quantize;
pub mod run;
pub mod runtime;
pub mod sentence_transformers;
pub mod serve;
pub mod session;
#[cfg(unix)]
pub mod signals;
pub mod source;
pub mod tokenize;
pub mod untrusted;
pub mod validate;
pub mod weights;
pub use error::Error;
pub use session::Session;
