//! onnxruntime's `SkipLayerNormalization`: `LayerNorm(input + bias + skip)`
//! over the last axis, written in the order PyTorch's exports have it (the
//! dense layer's bias, then the residual) so `fuse_skip_layer_norm` and the
//! linear-layer passes see an ordinary layer. Its statistics outputs (mean,
//! inverse std) are not supported: bertc's IR op has one output.

use crate::ir::{BinaryOp, Op, Value};

use super::ort_forms::Writer;

pub(super) fn standard(w: &mut Writer, epsilon: f32) -> Result<Vec<Option<Value>>, String> {
    let (x, skip, gamma) = (
        w.required(0, "input")?,
        w.required(1, "skip")?,
        w.required(2, "gamma")?,
    );
    let biased = match w.input(4) {
        Some(bias) => w.op("bias", Op::Binary(BinaryOp::Add), &[x, bias])?,
        None => x,
    };
    let sum = w.op("residual", Op::Binary(BinaryOp::Add), &[biased, skip])?;
    let norm = w.node(
        "layer_norm",
        Op::LayerNorm { axis: -1, epsilon },
        &[Some(sum), Some(gamma), w.input(3)],
    )?;
    Ok(vec![Some(Value { node: norm, slot: 0 })])
}
