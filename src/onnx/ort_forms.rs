//! onnxruntime's contrib ops (domain `com.microsoft`) in an imported graph
//! turned into bertc's own standard forms, before any pass runs.
//!
//! onnxruntime's transformers optimizer and Optimum's ORT optimizer write
//! `EmbedLayerNormalization`, `SkipLayerNormalization`, packed `Attention`,
//! `BiasGelu` and `FastGelu`; tract runs none of them, so a graph holding
//! them could not be checked, nor re-targeted to tract or OpenVINO. Each
//! becomes the standard ops it computes (one module per op), exactly as
//! onnxruntime's kernel computes it — including where that differs from
//! the source model (a 1-D mask index counts real tokens from the left).
//! The passes then find layer norms, GELUs and attention as in any export,
//! and `--target onnxruntime` fuses them back.
//!
//! A float16 `Gemm`, which tract cannot run, becomes MatMul + Add
//! (`f16_gemm`); an int64 running count of a mask, which tract cannot
//! evaluate, an int32 one (`cumsum_i64`).
//!
//! onnxruntime's int8 ops are read before this, by `ort_quantized`; the
//! fused int8 products it does not read (`MatMulIntegerToFloat`,
//! `DynamicQuantizeMatMul` of another form) are left as they are.

use std::collections::HashMap;

use crate::ir::{ContribOp, GeluApproximation, Graph, NodeId, Op, Tensor, Value};
use crate::passes::{DeadNodeElimination, Pass};

use super::{ort_attention, ort_bias_gelu, ort_embed_layer_norm, ort_skip_layer_norm, OnnxError};

/// `g` with every contrib op that has a standard form written in it;
/// warnings about what the file computes (for the report). A graph
/// without contrib ops is left untouched.
pub fn standard_forms(g: &mut Graph) -> Result<Vec<String>, OnnxError> {
    let contrib: Vec<(NodeId, ContribOp)> = crate::ir::canonical_order(g)
        .into_iter()
        .filter_map(|id| match &g.node(id).op {
            Op::Contrib(c) => Some((id, c.clone())),
            _ => None,
        })
        .collect();
    let mut rewritten =
        super::f16_gemm::rewrite(g).map_err(|reason| OnnxError::Decode(format!("fp16 Gemm: {reason}")))?;
    rewritten +=
        super::cumsum_i64::rewrite(g).map_err(|reason| OnnxError::Decode(format!("CumSum: {reason}")))?;
    let mut mask_index_readers = Vec::new();
    // One additive mask per distinct mask input, shared by every layer.
    let mut masks = HashMap::new();
    for (id, op) in contrib {
        let mut w = Writer::new(g, id);
        if matches!(op, ContribOp::Attention { .. })
            && w.input(3).is_some_and(|m| w.g.info(m).shape.rank() == 1)
        {
            mask_index_readers.push(w.base.clone());
        }
        let outputs = match op {
            ContribOp::EmbedLayerNorm { epsilon } => ort_embed_layer_norm::standard(&mut w, epsilon),
            ContribOp::SkipLayerNorm { epsilon } => ort_skip_layer_norm::standard(&mut w, epsilon),
            ContribOp::BiasGelu => ort_bias_gelu::standard(&mut w, GeluApproximation::None),
            ContribOp::FastGelu => ort_bias_gelu::standard(&mut w, GeluApproximation::Tanh),
            ContribOp::Attention {
                num_heads,
                scale,
                mask_filter_value,
            } => ort_attention::standard(&mut w, num_heads, scale, mask_filter_value, &mut masks),
            ContribOp::MatMulIntegerToFloat | ContribOp::DynamicQuantizeMatMul => continue,
            // `dequantize` reads the forms quantize_dynamic writes, and
            // refuses the others by node.
            ContribOp::QAttention { .. } | ContribOp::QEmbedLayerNorm { .. } => {
                Err("read only after onnxruntime::dequantize".to_string())
            }
        }
        .map_err(|reason| w.error(&op, reason))?;
        for (slot, new) in outputs.into_iter().enumerate() {
            if let Some(new) = new {
                g.replace_uses(Value { node: id, slot }, new);
            }
        }
        rewritten += 1;
    }
    if rewritten > 0 {
        DeadNodeElimination
            .run(g)
            .map_err(|e| OnnxError::Decode(e.to_string()))?;
    }
    let mut notes = Vec::new();
    if !mask_index_readers.is_empty() {
        notes.push(format!(
            "{} attention layer(s) of this file ({}) read onnxruntime's 1-D mask index, which takes the first \
             L tokens of each row as the real ones: on left-padded rows the file attends to padding and drops \
             real tokens, unlike the model it was made from; the optimized model computes what the file does",
            mask_index_readers.len(),
            mask_index_readers.join(", ")
        ));
    }
    Ok(notes)
}

/// Adds the nodes of one contrib op's standard form, named after it.
pub(super) struct Writer<'g> {
    pub g: &'g mut Graph,
    pub id: NodeId,
    base: String,
}

impl<'g> Writer<'g> {
    fn new(g: &'g mut Graph, id: NodeId) -> Writer<'g> {
        let base = g.node(id).name.clone();
        Writer { g, id, base }
    }

    /// Input `slot` of the contrib node, if present.
    pub fn input(&self, slot: usize) -> Option<Value> {
        self.g.inputs_of(self.id).get(slot).copied().flatten()
    }

    /// A required input.
    pub fn required(&self, slot: usize, what: &str) -> Result<Value, String> {
        self.input(slot)
            .ok_or_else(|| format!("input {slot} ({what}) is missing"))
    }

    /// Whether output `slot` of the contrib node is read.
    pub fn output_read(&self, slot: usize) -> bool {
        let v = Value { node: self.id, slot };
        !self.g.consumers(v).is_empty() || self.g.is_output(v)
    }

    pub fn op(&mut self, what: &str, op: Op, inputs: &[Value]) -> Result<Value, String> {
        let name = self.g.fresh_name(&format!("{}.{what}", self.base));
        self.g.add(&name, op, inputs).map_err(|e| e.to_string())
    }

    pub fn node(&mut self, what: &str, op: Op, inputs: &[Option<Value>]) -> Result<NodeId, String> {
        let name = self.g.fresh_name(&format!("{}.{what}", self.base));
        self.g.add_node(&name, op, inputs).map_err(|e| e.to_string())
    }

    pub fn constant(&mut self, what: &str, t: Tensor) -> Result<Value, String> {
        let name = self.g.fresh_name(&format!("{}.{what}", self.base));
        self.g.add_const(&name, t).map_err(|e| e.to_string())
    }

    /// Dim `axis` of `x` as a 1-element int64 tensor, read at run time.
    pub fn dim(&mut self, x: Value, axis: i64) -> Result<Value, String> {
        let shape = self.op("shape", Op::Shape, &[x])?;
        let (start, end) = (
            self.constant("dim.start", Tensor::vec_i64(&[axis]))?,
            self.constant("dim.end", Tensor::vec_i64(&[axis + 1]))?,
        );
        self.op("dim", Op::Slice, &[shape, start, end])
    }

    fn error(&self, op: &ContribOp, reason: String) -> OnnxError {
        OnnxError::Contrib {
            node: self.base.clone(),
            op: Op::Contrib(op.clone()).op_type(),
            reason,
        }
    }
}
