//! onnxruntime's `BiasGelu` (exact) and `FastGelu` (tanh approximation):
//! `Gelu(x + bias)`, the bias optional for FastGelu. Written as the Add and
//! the standard `Gelu` the passes already fuse from PyTorch's exports.

use crate::ir::{BinaryOp, GeluApproximation, Op, Value};

use super::ort_forms::Writer;

pub(super) fn standard(w: &mut Writer, approximate: GeluApproximation) -> Result<Vec<Option<Value>>, String> {
    let x = w.required(0, "input")?;
    let biased = match w.input(1) {
        Some(bias) => w.op("bias", Op::Binary(BinaryOp::Add), &[x, bias])?,
        None => x,
    };
    Ok(vec![Some(w.op("gelu", Op::Gelu { approximate }, &[biased])?)])
}
