//! IR graph → ONNX ModelProto bytes.
//!
//! Deterministic: nodes in canonical order, initializers in the order first
//! used, metadata sorted, no timestamps or paths — the same graph always
//! gives the same bytes. Each node's op_type, domain, attributes and the
//! opset it needs come from its op's entry in the op table.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use super::proto::{self, attribute_type as at, tensor_shape_proto::dimension::Value as DimValue};
use super::{ir_version_for, onnx_dtype, OnnxError};
use crate::atomic_write::EarlyWrite;
use crate::ir::op_table::{AttrValue, Domain};
use crate::ir::{canonical_order, value_name, Dim, Graph, Op, Tensor, Value, ValueInfo};

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

/// The size of the file [`write_model`] would write for `g` in one piece,
/// without encoding it (the weights are counted, not copied).
pub fn encoded_len(g: &Graph, opts: ExportOptions) -> Result<usize, OnnxError> {
    Ok(to_model(g, opts)?.encoded_len())
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
            let microsoft = g
                .node_ids()
                .map(|id| g.node(id).op.schema())
                .filter(|s| s.domain == Some(Domain::Microsoft))
                .map(|s| s.since)
                .max();
            if let Some(version) = microsoft {
                imports.push(proto::OperatorSetIdProto {
                    domain: Domain::Microsoft.name().into(),
                    version,
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
    let needs = |op: &Op| op.schema().min_opset().max(MIN_OPSET);
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
        let (schema, values) = node.op.entry();
        let mut attrs = Vec::new();
        // Attributes later opsets take as inputs go last: where they are
        // attributes, that is the order bertc's files have always had.
        let given = schema.attributes.iter().zip(&values);
        let (moving, fixed): (Vec<_>, Vec<_>) = given.partition(|(spec, _)| spec.input.is_some());
        for (spec, value) in fixed.into_iter().chain(moving) {
            let Some(value) = value else { continue };
            match (spec.input.filter(|_| spec.is_input_at(self.opset)), value) {
                (Some(moved), AttrValue::Ints(ints)) => {
                    let name = self.constant_input(&node.name, spec.name, ints);
                    inputs.resize(inputs.len().max(moved.slot), String::new());
                    inputs.insert(moved.slot, name);
                }
                _ => attrs.push(attribute(spec.name, value)),
            }
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
            op_type: schema.op_type.into(),
            domain: schema.domain.map_or("", Domain::name).into(),
            attribute: attrs,
            ..Default::default()
        });
        Ok(())
    }

    /// An attribute ONNX takes as an input (axes of Unsqueeze ≥ 13,
    /// ReduceMean/ReduceMax ≥ 18), as an int64 initializer named after the node.
    fn constant_input(&mut self, node: &str, attribute: &str, ints: &[i64]) -> String {
        let name = format!("{node}.{attribute}");
        self.graph
            .initializer
            .push(tensor_proto(&name, &Tensor::vec_i64(ints)));
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

/// One attribute as ONNX stores its type.
fn attribute(name: &str, value: &AttrValue) -> proto::AttributeProto {
    let a = proto::AttributeProto {
        name: name.into(),
        ..Default::default()
    };
    let int = |i: i64| proto::AttributeProto {
        r#type: at::INT,
        i,
        ..a.clone()
    };
    let ints = |ints: Vec<i64>| proto::AttributeProto {
        r#type: at::INTS,
        ints,
        ..a.clone()
    };
    match *value {
        AttrValue::Int(i) => int(i),
        AttrValue::Flag(b) => int(b as i64),
        AttrValue::DType(d) => int(onnx_dtype(d) as i64),
        AttrValue::Ints(v) => ints(v.to_vec()),
        AttrValue::Indices(v) => ints(v.iter().map(|&i| i as i64).collect()),
        AttrValue::Float(f) => proto::AttributeProto {
            r#type: at::FLOAT,
            f,
            ..a
        },
        AttrValue::Tensor(t) => proto::AttributeProto {
            r#type: at::TENSOR,
            t: Some(tensor_proto("", t)),
            ..a
        },
        AttrValue::Approximation(g) => proto::AttributeProto {
            r#type: at::STRING,
            s: g.onnx_name().as_bytes().to_vec(),
            ..a
        },
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
