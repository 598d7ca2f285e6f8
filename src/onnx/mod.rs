//! ONNX serialization: the only module that knows protobuf types.

mod cumsum_i64;
mod export;
mod external;
mod f16_gemm;
mod import;
mod metadata;
mod ort_attention;
mod ort_bias_gelu;
mod ort_embed_layer_norm;
mod ort_forms;
mod ort_quantized;
mod ort_quantized_contrib;
mod ort_skip_layer_norm;
pub mod proto;
mod split;
mod split_op;
mod tensors;

pub use export::{
    encoded_len, export_bytes, export_into, resolve_opset, single_file, write_model, write_model_files,
    written_with_external_data, ExportOptions, Sink, WrittenModel, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET,
};
pub use external::{data_path, ALIGNMENT, ALIGN_ABOVE, INLINE_BELOW, PROTOBUF_LIMIT};
pub use import::{
    import_bytes, import_shared_bytes, read_model, read_model_and_bytes, IMPORT_IR_VERSIONS, IMPORT_OPSETS,
};
pub use metadata::{external_data_files, read_metadata};
pub use ort_forms::standard_forms;
pub use ort_quantized::{dequantize, Dequantized, QuantizedBy};
pub use split::{split_bytes, split_graph, Initializer, SplitModel};

use crate::ir::DType;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("opset {0} is not supported: bertc emits opsets {MIN_OPSET} to {MAX_OPSET}")]
    Opset(i64),
    #[error(
        "node `{node}`: {op} needs opset >= {needs}, but --opset is {opset}; drop --opset (bertc picks the \
         lowest that fits), raise it to {needs}, or keep the op unfused (-O1, or --passes without the fusion)"
    )]
    OpsetTooLow {
        node: String,
        op: &'static str,
        needs: i64,
        opset: i64,
    },
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    #[error("node `{node}` ({op_type}, opset {opset}): {reason}")]
    Import {
        node: String,
        op_type: String,
        opset: i64,
        reason: String,
    },
    /// An onnxruntime contrib op whose standard form bertc cannot write.
    #[error("node `{node}` (com.microsoft {op}): {reason}")]
    Contrib {
        node: String,
        op: &'static str,
        reason: String,
    },
    /// A quantized form from onnxruntime's quantizer that bertc cannot read
    /// as the f32 model it stands for.
    #[error("node `{node}` ({op}): {reason}")]
    Quantized {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("cannot access {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    InFile { path: String, error: Box<OnnxError> },
    #[error("the model's {what} is {value}; bertc reads {} to {}", .range.start(), .range.end())]
    Version {
        what: &'static str,
        value: i64,
        range: std::ops::RangeInclusive<i64>,
    },
}

/// ONNX `TensorProto.DataType` code of an IR dtype.
pub(crate) fn onnx_dtype(d: DType) -> i32 {
    use proto::data_type as t;
    match d {
        DType::F32 => t::FLOAT,
        DType::F16 => t::FLOAT16,
        DType::BF16 => t::BFLOAT16,
        DType::I64 => t::INT64,
        DType::I32 => t::INT32,
        DType::I8 => t::INT8,
        DType::U8 => t::UINT8,
        DType::Bool => t::BOOL,
    }
}

/// The IR version that goes with an opset (onnx/docs/Versioning.md).
pub(crate) fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19..=20 => 9,
        21..=22 => 10,
        _ => 11,
    }
}
