//! A model as its graph apart from its weights, for loading into tract
//! without tract's protobuf decode: that decode copies every weight twice
//! (into the message, then into a tensor), and a check loads two models —
//! for BERT-base, gigabytes of fresh memory whose page faults were most of
//! the compile's time. The graph (kilobytes) is re-encoded and parsed by
//! tract; the weights stay slices of the bytes they came from.

use bytes::Bytes;
use prost::Message;

use super::export::{to_model, ExportOptions};
use super::proto;
use super::tensors::{dtype_from_onnx, is_external};
use super::OnnxError;
use crate::ir::{Graph, Tensor};

/// One initializer taken out of the graph: its name and its data, a view
/// of the buffer it was decoded from (or of the IR's own weight).
#[derive(Clone, Debug)]
pub struct Initializer {
    pub name: String,
    pub tensor: Tensor,
}

/// A model's graph without its plain initializers (`graph`: ONNX bytes
/// whose nodes name them but do not define them) and those initializers.
#[derive(Clone, Debug)]
pub struct SplitModel {
    pub graph: Vec<u8>,
    pub initializers: Vec<Initializer>,
}

/// Splits serialized ONNX bytes; the initializers are slices of `bytes`
/// (the decode copies none of them).
pub fn split_bytes(bytes: Bytes) -> Result<SplitModel, OnnxError> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    Ok(split(model))
}

/// Splits the model `g` would serialize to, without serializing its
/// weights: the initializers are the IR's own buffers.
pub fn split_graph(g: &Graph, opts: ExportOptions) -> Result<SplitModel, OnnxError> {
    Ok(split(to_model(g, opts)?))
}

fn split(mut model: proto::ModelProto) -> SplitModel {
    let Some(graph) = model.graph.as_mut() else {
        return SplitModel {
            graph: model.encode_to_vec(),
            initializers: vec![],
        };
    };
    let mut initializers = vec![];
    let mut kept = vec![];
    for t in std::mem::take(&mut graph.initializer) {
        match plain(&t) {
            Some(tensor) => initializers.push(Initializer { name: t.name, tensor }),
            None => kept.push(t),
        }
    }
    graph.initializer = kept;
    // An initializer may also be listed as a graph input (IR version < 4);
    // left there, it would become an input without a value.
    let taken: std::collections::HashSet<&str> = initializers.iter().map(|i| i.name.as_str()).collect();
    graph.input.retain(|i| !taken.contains(i.name.as_str()));
    SplitModel {
        graph: model.encode_to_vec(),
        initializers,
    }
}

/// The tensor of an initializer stored inline as `raw_data` whose element
/// type the IR knows and whose byte count fits its dims; anything else
/// (typed fields, external data, an unknown type) stays in the graph for
/// the runtime's own decoder.
fn plain(t: &proto::TensorProto) -> Option<Tensor> {
    if t.raw_data.is_empty() || is_external(t) || t.name.is_empty() {
        return None;
    }
    let dtype = dtype_from_onnx(t.data_type).ok()?;
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()?;
    Tensor::from_raw(dtype, dims, t.raw_data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str) -> proto::TensorProto {
        proto::TensorProto {
            name: name.into(),
            dims: vec![2],
            data_type: proto::data_type::FLOAT,
            raw_data: Bytes::from_static(&[0, 0, 128, 63, 0, 0, 0, 64]),
            ..Default::default()
        }
    }

    /// Inline raw initializers are taken out (also from the graph inputs,
    /// where IR version 3 files list them); typed-field, external and
    /// malformed ones stay for the runtime's own decoder.
    #[test]
    fn only_plain_raw_initializers_are_taken_out() {
        let typed = proto::TensorProto {
            name: "typed".into(),
            dims: vec![1],
            data_type: proto::data_type::FLOAT,
            float_data: vec![1.0],
            ..Default::default()
        };
        let external = proto::TensorProto {
            data_location: 1,
            ..raw("external")
        };
        let short = proto::TensorProto {
            dims: vec![3],
            ..raw("short")
        };
        let model = proto::ModelProto {
            graph: Some(proto::GraphProto {
                initializer: vec![raw("w"), typed, external, short],
                input: vec![proto::ValueInfoProto {
                    name: "w".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let split = split_bytes(Bytes::from(model.encode_to_vec())).unwrap();
        let names: Vec<&str> = split.initializers.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["w"]);
        assert_eq!(split.initializers[0].tensor.to_f32_vec().unwrap(), [1.0, 2.0]);
        let rest = proto::ModelProto::decode(&*split.graph).unwrap().graph.unwrap();
        let kept: Vec<&str> = rest.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(kept, ["typed", "external", "short"]);
        assert!(rest.input.is_empty());
    }
}
