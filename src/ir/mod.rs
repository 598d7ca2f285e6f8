//! bertc's intermediate representation: builders produce it, passes
//! transform it, the ONNX emitter serializes it.

mod dtype;
mod dump;
mod graph;
mod infer;
mod op;
pub mod op_table;
mod order;
mod shape;
mod summary;
mod tensor;
mod verify;

pub use dtype::DType;
pub use dump::{constant_summary, dump, dump_with, value_name, DumpOptions, WeightStyle};
pub use graph::{is_quantized_weight, parameter_elements, Edge, Graph, Node, NodeId, Value, ValueInfo};
pub use infer::infer;
pub use op::{BinaryOp, ContribOp, GeluApproximation, Op, UnaryOp};
pub use order::canonical_order;
pub use shape::{
    blocks_of, normalize_axis, parse_blocks, Dim, Factors, Shape, BATCH, NONZERO_COUNT, SEQUENCE,
    SLICE_LENGTH,
};
pub use summary::structure_summary;
pub use tensor::Tensor;
pub use verify::verify;

/// A graph that breaks an IR invariant, named by the node that breaks it.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    #[error("node `{node}` ({op}): {reason}")]
    Infer {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("node name `{0}` is used twice")]
    DuplicateName(String),
    #[error("node `{node}`: {reason}")]
    Invalid { node: String, reason: String },
    #[error("the graph has a cycle through node `{0}`")]
    Cycle(String),
}
