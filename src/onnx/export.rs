//! IR graph → ONNX ModelProto bytes.
//!
//! Deterministic: nodes in canonical order, initializers in the order first
//! used, metadata sorted, no timestamps or paths — the same graph always
//! gives the same bytes.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use super::proto::{self, attribute_type as at, tensor_shape_proto::dimension::Value as DimValue};
use super::{ir_version_for, onnx_dtype, OnnxError};
use crate::atomic_write::EarlyWrite;
use crate::ir::{
    canonical_order, value_name, ContribOp, Dim, GeluApproximation, Graph, Op, Tensor, Value, ValueInfo,
};

pub const DEFAULT_OPSET: i64 = 17;
pub const MIN_OPSET: i64 = 14;
pub const MAX_OPSET: i64 = 23;

#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// The opset to emit; `None` picks the lowest that covers every op
    /// used, and at least [`DEFAULT_OPSET`].
    pub opset: Option<i64>,
    /// Write `value_info` (shape and type) for every intermediate value.
    /// Off by default: their symbolic dims (batch_size, sequence_length)
    /// make tract's plain loading — `with_input_fact(i, i64::fact([1, 128]))`
    /// then `into_optimized()` — fail to unify Sym(batch_size) with 1, and
    /// every runtime re-derives them anyway. PyTorch's exports omit them too.
    pub value_info: bool,
    /// Write initializers to a data file beside the model (`model.onnx` →
    /// `model.onnx_data`, see [`super::data_path`]). Models that would
    /// exceed protobuf's 2 GB limit get one whatever this says.
    pub external_data: bool,
}

/// The files [`write_model_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenModel {
    /// Size of the model file itself.
    pub model_bytes: usize,
    /// The external data file and its size, when initializers went there.
    pub external_data: Option<(std::path::PathBuf, u64)>,
}

impl WrittenModel {
    /// Bytes on disk, data file included.
    pub fn total_bytes(&self) -> u64 {
        self.model_bytes as u64 + self.external_data.as_ref().map_or(0, |d| d.1)
    }
}

/// Serializes the graph to ONNX bytes.
pub fn export_bytes(g: &Graph, opts: ExportOptions) -> Result<Vec<u8>, OnnxError> {
    let model = to_model(g, opts)?;
    Ok(model.encode_to_vec())
}

/// Where serialized bytes go.
#[derive(Debug, Clone, Copy)]
pub enum Sink<'a> {
    Memory,
    /// Straight into a temporary file beside this destination, renamed
    /// into place by [`EarlyWrite::finish`] once the model is kept.
    File(&'a Path),
}

/// Whether a model of `len` encoded bytes is written as one file: no
/// external data asked for, and within protobuf's 2 GB limit.
pub fn single_file(len: usize, opts: ExportOptions) -> bool {
    !opts.external_data && len <= super::PROTOBUF_LIMIT
}

/// Whether `g` is written with external data: asked for, or beyond
/// protobuf's limit once encoded (measured without encoding it).
pub fn written_with_external_data(g: &Graph, opts: ExportOptions) -> Result<bool, OnnxError> {
    Ok(opts.external_data || !single_file(to_model(g, opts)?.encoded_len(), opts))
}

/// Serializes `g` into `sink`: the bytes, and the file they are in when
/// they went to one. A model written with external data (asked for, or
/// beyond protobuf's limit) goes to memory: it is written in its own form.
pub fn export_into(
    g: &Graph,
    opts: ExportOptions,
    sink: Sink,
) -> Result<(Bytes, Option<EarlyWrite>), OnnxError> {
    let model = to_model(g, opts)?;
    match sink {
        Sink::File(path) if single_file(model.encoded_len(), opts) => {
            let (write, bytes) = encode_beside(&model, path)?;
            Ok((bytes, Some(write)))
        }
        _ => Ok((Bytes::from(model.encode_to_vec()), None)),
    }
}

/// `model` encoded straight into a temporary file beside `path` (see
/// [`EarlyWrite`]), with the bytes of that file.
fn encode_beside(model: &proto::ModelProto, path: &Path) -> Result<(EarlyWrite, Bytes), OnnxError> {
    EarlyWrite::mapped(path, model.encoded_len(), |mut buf: &mut [u8]| {
        model
            .encode(&mut buf)
            .expect("the buffer has exactly encoded_len bytes");
    })
    .map_err(|error| OnnxError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// Serializes the graph and writes it atomically to `path`; returns the
/// size on disk (external data included).
pub fn write_model(g: &Graph, opts: ExportOptions, path: &Path) -> Result<usize, OnnxError> {
    Ok(write_model_files(g, opts, path)?.total_bytes() as usize)
}

/// Serializes the graph and writes it atomically to `path`, with its
/// external data file when asked or when the model exceeds protobuf's
/// limit (model and data are renamed into place together: both or neither).
pub fn write_model_files(g: &Graph, opts: ExportOptions, path: &Path) -> Result<WrittenModel, OnnxError> {
    let mut model = to_model(g, opts)?;
    let len = model.encoded_len();
    let io = |error| OnnxError::Io {
        path: path.display().to_string(),
        error,
    };
    if !single_file(len, opts) {
        let data = super::data_path(path);
        let location = data
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "external data needs a model file name in UTF-8",
                ))
            })?
            .to_string();
        let layout = super::external::externalize(&mut model, &location);
        let bytes = model.encode_to_vec();
        crate::atomic_write::write_atomic_pair(&data, |w| layout.write_to(w), path, |w| w.write_all(&bytes))
            .map_err(io)?;
        return Ok(WrittenModel {
            model_bytes: bytes.len(),
            external_data: Some((data, layout.len)),
        });
    }
    let (write, bytes) = encode_beside(&model, path)?;
    drop(bytes);
    Ok(WrittenModel {
        model_bytes: write.finish().map_err(io)?,
        external_data: None,
    })
}

pub(super) fn to_model(g: &Graph, opts: ExportOptions) -> Result<proto::ModelProto, OnnxError> {
    let opset = resolve_opset(g, opts.opset)?;
    let mut e = Emitter {
        g,
        opset,
        value_info: opts.value_info,
        names: HashMap::new(),
        graph: proto::GraphProto::default(),
    };
    e.graph.name = "bertc".into();
    e.name_outputs();
    let order = canonical_order(g);
    for &id in &order {
        e.emit_node(id)?;
    }
    e.emit_outputs();
    Ok(proto::ModelProto {
        ir_version: ir_version_for(opset),
        opset_import: {
            let mut imports = vec![proto::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }];
            if g.node_ids().any(|id| !g.node(id).op.domain().is_empty()) {
                imports.push(proto::OperatorSetIdProto {
                    domain: "com.microsoft".into(),
                    version: 1,
                });
            }
            imports
        },
        producer_name: "bertc".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(e.graph),
        metadata_props: g
            .metadata
            .iter()
            .map(|(k, v)| proto::StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// The opset a graph is emitted at: the requested one if every op exists
/// there, else an error naming the first node that needs more.
pub fn resolve_opset(g: &Graph, requested: Option<i64>) -> Result<i64, OnnxError> {
    let needs = |op: &Op| match op {
        Op::LayerNorm { .. } => 17,
        Op::Gelu { .. } => 20,
        Op::Attention { .. } => 23,
        // Contrib ops come with their own domain; the fused standard ops
        // that precede them set the default-domain opset.
        Op::Contrib(_) => MIN_OPSET,
        _ => MIN_OPSET,
    };
    let Some(opset) = requested else {
        return Ok(g
            .node_ids()
            .map(|id| needs(&g.node(id).op))
            .fold(DEFAULT_OPSET, i64::max));
    };
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(OnnxError::Opset(opset));
    }
    for id in canonical_order(g) {
        let node = g.node(id);
        if needs(&node.op) > opset {
            return Err(OnnxError::OpsetTooLow {
                node: node.name.clone(),
                op: node.op.kind(),
                needs: needs(&node.op),
                opset,
            });
        }
    }
    Ok(opset)
}

struct Emitter<'g> {
    value_info: bool,
    g: &'g Graph,
    opset: i64,
    /// ONNX names of values that are not simply `value_name` (graph outputs).
    names: HashMap<Value, String>,
    graph: proto::GraphProto,
}

impl Emitter<'_> {
    fn name(&self, v: Value) -> String {
        self.names
            .get(&v)
            .cloned()
            .unwrap_or_else(|| value_name(self.g, v))
    }

    /// A graph output takes over the name of the value it reads, unless
    /// that value is an input, a constant or already another output: then
    /// an Identity node gives it its own name (see `emit_outputs`).
    fn name_outputs(&mut self) {
        for (name, v) in self.g.outputs() {
            let is_source = matches!(self.g.node(v.node).op, Op::Input | Op::Constant(_));
            if !is_source && !self.names.contains_key(v) {
                self.names.insert(*v, name.clone());
            }
        }
    }

    fn emit_node(&mut self, id: crate::ir::NodeId) -> Result<(), OnnxError> {
        let node = self.g.node(id);
        let out = Value { node: id, slot: 0 };
        match &node.op {
            Op::Input => {
                let info = value_info(&self.name(out), &node.outputs[0]);
                self.graph.input.push(info);
                return Ok(());
            }
            Op::Constant(t) => {
                self.graph.initializer.push(tensor_proto(&self.name(out), t));
                return Ok(());
            }
            _ => {}
        }
        let mut inputs: Vec<String> = self
            .g
            .inputs_of(id)
            .into_iter()
            .map(|v| v.map(|v| self.name(v)).unwrap_or_default())
            .collect();
        let mut attrs = Vec::new();
        match &node.op {
            Op::ReduceMean { axes, keepdims }
            | Op::ReduceMax { axes, keepdims }
            | Op::ReduceMin { axes, keepdims } => {
                attrs.push(int_attr("keepdims", *keepdims as i64));
                if self.opset >= 18 {
                    inputs.push(self.axes_input(&node.name, axes));
                } else {
                    attrs.push(ints_attr("axes", axes));
                }
            }
            Op::Unsqueeze { axes } | Op::Squeeze { axes } => inputs.push(self.axes_input(&node.name, axes)),
            Op::Softmax { axis }
            | Op::Gather { axis }
            | Op::Concat { axis }
            | Op::QuantizeLinear { axis }
            | Op::DequantizeLinear { axis } => attrs.push(int_attr("axis", *axis)),
            Op::Transpose { perm } => attrs.push(ints_attr(
                "perm",
                &perm.iter().map(|&p| p as i64).collect::<Vec<_>>(),
            )),
            Op::Cast { to } => attrs.push(int_attr("to", onnx_dtype(*to) as i64)),
            Op::Flatten { axis } => attrs.push(int_attr("axis", *axis)),
            Op::ConstantOfShape { value } => attrs.push(proto::AttributeProto {
                name: "value".into(),
                r#type: at::TENSOR,
                t: Some(tensor_proto("", value)),
                ..Default::default()
            }),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                attrs.push(float_attr("alpha", *alpha));
                attrs.push(float_attr("beta", *beta));
                attrs.push(int_attr("transA", *trans_a as i64));
                attrs.push(int_attr("transB", *trans_b as i64));
            }
            Op::LayerNorm { axis, epsilon } => {
                attrs.push(int_attr("axis", *axis));
                attrs.push(float_attr("epsilon", *epsilon));
            }
            Op::Gelu { approximate } => {
                let name = match approximate {
                    GeluApproximation::None => "none",
                    GeluApproximation::Tanh => "tanh",
                };
                attrs.push(string_attr("approximate", name));
            }
            Op::Contrib(ContribOp::SkipLayerNorm { epsilon } | ContribOp::EmbedLayerNorm { epsilon }) => {
                attrs.push(float_attr("epsilon", *epsilon));
            }
            Op::Contrib(ContribOp::Attention { num_heads }) => {
                attrs.push(int_attr("num_heads", *num_heads as i64));
            }
            Op::Attention {
                q_num_heads,
                kv_num_heads,
                scale,
            } => {
                attrs.push(int_attr("q_num_heads", *q_num_heads as i64));
                attrs.push(int_attr("kv_num_heads", *kv_num_heads as i64));
                if let Some(s) = scale {
                    attrs.push(float_attr("scale", *s));
                }
            }
            _ => {}
        }
        while inputs.last().is_some_and(String::is_empty) {
            inputs.pop();
        }
        let outputs: Vec<String> = (0..node.outputs.len())
            .map(|slot| self.name(Value { node: id, slot }))
            .collect();
        for (slot, info) in node.outputs.iter().enumerate() {
            let v = Value { node: id, slot };
            if self.value_info && !self.g.is_output(v) {
                self.graph.value_info.push(value_info(&outputs[slot], info));
            }
        }
        self.graph.node.push(proto::NodeProto {
            input: inputs,
            output: outputs,
            name: node.name.clone(),
            op_type: node.op.op_type().into(),
            domain: node.op.domain().into(),
            attribute: attrs,
            ..Default::default()
        });
        Ok(())
    }

    /// Axes as an int64 initializer input (Unsqueeze ≥ 13, ReduceMean/ReduceMax ≥ 18).
    fn axes_input(&mut self, node: &str, axes: &[i64]) -> String {
        let name = format!("{node}.axes");
        self.graph
            .initializer
            .push(tensor_proto(&name, &Tensor::vec_i64(axes)));
        name
    }

    fn emit_outputs(&mut self) {
        for (name, v) in self.g.outputs() {
            if self.name(*v) != *name {
                self.graph.node.push(proto::NodeProto {
                    input: vec![self.name(*v)],
                    output: vec![name.clone()],
                    name: format!("{name}.identity"),
                    op_type: "Identity".into(),
                    ..Default::default()
                });
            }
            self.graph.output.push(value_info(name, self.g.info(*v)));
        }
    }
}

fn value_info(name: &str, info: &ValueInfo) -> proto::ValueInfoProto {
    let dims = info
        .shape
        .dims()
        .iter()
        .map(|d| proto::tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimValue::DimValue(*n),
                Dim::Sym(s) => DimValue::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    proto::ValueInfoProto {
        name: name.into(),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
                elem_type: onnx_dtype(info.dtype),
                shape: Some(proto::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tensor_proto(name: &str, t: &Tensor) -> proto::TensorProto {
    proto::TensorProto {
        dims: t.dims().iter().map(|&d| d as i64).collect(),
        data_type: onnx_dtype(t.dtype()),
        name: name.into(),
        raw_data: t.raw().clone(),
        ..Default::default()
    }
}

fn float_attr(name: &str, f: f32) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: at::FLOAT,
        f,
        ..Default::default()
    }
}

fn string_attr(name: &str, s: &str) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: at::STRING,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: at::INT,
        i,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: &[i64]) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        r#type: at::INTS,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Tensor};

    /// A graph whose one weight is `len` bytes of untouched anonymous
    /// memory: its size is real, its pages cost nothing until read.
    fn graph_with_weight_of(len: usize) -> Graph {
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .and_then(|m| m.make_read_only())
            .expect("an anonymous map");
        let weight = Tensor::from_raw(DType::U8, vec![len], bytes::Bytes::from_owner(map)).unwrap();
        let mut g = Graph::new();
        let w = g.add_const("weight", weight).unwrap();
        g.set_output("weight", w);
        g
    }

    /// The check plans by this answer: a model past protobuf's limit is
    /// written with external data whatever was asked, and is not encoded
    /// inline to find that out.
    #[test]
    fn external_data_is_known_before_encoding() {
        let inline = ExportOptions::default();
        let asked = ExportOptions {
            external_data: true,
            ..inline
        };
        let small = graph_with_weight_of(1 << 20);
        assert!(!written_with_external_data(&small, inline).unwrap());
        assert!(written_with_external_data(&small, asked).unwrap());
        let over = graph_with_weight_of(super::super::PROTOBUF_LIMIT + 1);
        assert!(written_with_external_data(&over, inline).unwrap());
    }
}
