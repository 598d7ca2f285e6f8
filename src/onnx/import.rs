//! ONNX bytes → IR graph, for the ops bertc's IR knows.
//!
//! Attributes ONNX moved into inputs across opsets (axes of Unsqueeze,
//! Squeeze, ReduceMean) must be constants and become IR attributes. An op
//! outside the IR, or a malformed file, is an error naming the node, its op
//! type and the opset — never a panic.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::external::ExternalFiles;
use super::proto;
use super::tensors::{dtype_from_onnx, is_external, tensor_from_proto, value_type};
use super::OnnxError;
use crate::ir::{BinaryOp, ContribOp, Dim, GeluApproximation, Graph, Op, Tensor, UnaryOp, Value};
use crate::passes::Pass;

pub fn read_model(path: &Path) -> Result<Graph, OnnxError> {
    let bytes = crate::input_file::read_regular(path).map_err(|error| OnnxError::Io {
        path: path.display().to_string(),
        error,
    })?;
    // Every error names the file (an I/O error already does).
    import_with_dir(&bytes, path.parent()).map_err(|e| match e {
        OnnxError::Decode(reason) => OnnxError::Decode(format!("{}: {reason}", path.display())),
        OnnxError::Io { .. } => e,
        other => OnnxError::InFile {
            path: path.display().to_string(),
            error: Box::new(other),
        },
    })
}

/// Imports a model from bytes; external-data initializers are refused
/// (they need the model's folder: use [`read_model`]).
pub fn import_bytes(bytes: &[u8]) -> Result<Graph, OnnxError> {
    import_with_dir(bytes, None)
}

fn import_with_dir(bytes: &[u8], dir: Option<&Path>) -> Result<Graph, OnnxError> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Decode("the model has no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::Decode("the model imports no default-domain opset".into()))?;
    check_versions(model.ir_version, opset)?;
    check_outputs(graph)?;
    let mut im = Importer {
        g: Graph::new(),
        values: HashMap::new(),
        opset,
    };
    im.g.metadata = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    let mut external = ExternalFiles::new(dir);
    for t in &graph.initializer {
        let tensor = match is_external(t) {
            true => external.tensor(t),
            false => tensor_from_proto(t),
        }
        .map_err(|reason| im.err(&t.name, "initializer", reason))?;
        let name = im.g.fresh_name(&t.name);
        let v =
            im.g.add_const(&name, tensor)
                .map_err(|e| im.err(&t.name, "initializer", e.to_string()))?;
        im.values.insert(t.name.clone(), v);
    }
    for input in &graph.input {
        if im.values.contains_key(&input.name) {
            continue; // an initializer listed as input (IR < 4 style)
        }
        let (dtype, shape) = value_type(input).map_err(|reason| im.err(&input.name, "input", reason))?;
        let v =
            im.g.add_input(&input.name, dtype, shape)
                .map_err(|e| im.err(&input.name, "input", e.to_string()))?;
        im.values.insert(input.name.clone(), v);
    }
    for (i, node) in graph.node.iter().enumerate() {
        im.node(i, node)?;
    }
    for out in &graph.output {
        let v = *im
            .values
            .get(&out.name)
            .ok_or_else(|| im.err(&out.name, "output", "no node produces it".into()))?;
        im.g.set_output(&out.name, v);
    }
    // Constants absorbed as attributes (axes inputs) are left unused.
    crate::passes::DeadNodeElimination
        .run(&mut im.g)
        .map_err(|e| OnnxError::Decode(e.to_string()))?;
    Ok(im.g)
}

/// IR versions bertc reads: 3 (the first with opset imports) to the
/// newest it knows (onnx 1.18's, for opset 23).
pub const IMPORT_IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=11;
/// Default-domain opsets bertc reads. From 11 on, every op the IR knows
/// takes its operands as inputs (Slice, Clip) and broadcasts like numpy;
/// past [`MAX_OPSET`] the semantics are unknown to it.
pub const IMPORT_OPSETS: std::ops::RangeInclusive<i64> = 11..=super::MAX_OPSET;

/// Refuses versions outside what bertc knows: an older opset means other
/// semantics for the same op names, a newer one semantics it cannot know.
fn check_versions(ir_version: i64, opset: i64) -> Result<(), OnnxError> {
    if !IMPORT_IR_VERSIONS.contains(&ir_version) {
        return Err(OnnxError::Version {
            what: "IR version",
            value: ir_version,
            range: IMPORT_IR_VERSIONS,
        });
    }
    if !IMPORT_OPSETS.contains(&opset) {
        return Err(OnnxError::Version {
            what: "default-domain opset",
            value: opset,
            range: IMPORT_OPSETS,
        });
    }
    Ok(())
}

/// A graph must name at least one output, each once: with none there is
/// nothing to compile (or check), and a duplicate is two results of one name.
fn check_outputs(graph: &proto::GraphProto) -> Result<(), OnnxError> {
    if graph.output.is_empty() {
        return Err(OnnxError::Decode(
            "the graph has no outputs: there is nothing to compute".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for out in &graph.output {
        if !seen.insert(out.name.as_str()) {
            return Err(OnnxError::Decode(format!(
                "the graph lists output `{}` twice; each output must have its own name",
                out.name
            )));
        }
    }
    Ok(())
}

/// The opset in which a default-domain op got the form the IR reads, where
/// that is later than the oldest opset imported ([`IMPORT_OPSETS`]).
fn since_opset(op_type: &str) -> i64 {
    match op_type {
        "GreaterOrEqual" | "LessOrEqual" => 12,
        "LayerNormalization" => 17,
        "Gelu" => 20,
        "Attention" => 23,
        _ => *IMPORT_OPSETS.start(),
    }
}

struct Importer {
    g: Graph,
    values: HashMap<String, Value>,
    opset: i64,
}

impl Importer {
    fn err(&self, node: &str, op_type: &str, reason: String) -> OnnxError {
        OnnxError::Import {
            node: node.into(),
            op_type: op_type.into(),
            opset: self.opset,
            reason,
        }
    }

    fn node(&mut self, index: usize, n: &proto::NodeProto) -> Result<(), OnnxError> {
        let label = if n.name.is_empty() {
            format!("{}_{index}", n.op_type)
        } else {
            n.name.clone()
        };
        let err = |s: &Self, reason: String| s.err(&label, &n.op_type, reason);
        let microsoft = n.domain == "com.microsoft";
        if !(n.domain.is_empty() || n.domain == "ai.onnx" || microsoft) {
            return Err(err(self, format!("domain `{}` is not supported", n.domain)));
        }
        let mut inputs: Vec<Option<Value>> = Vec::new();
        for name in &n.input {
            inputs.push(match name.is_empty() {
                true => None,
                false => Some(*self.values.get(name).ok_or_else(|| {
                    err(
                        self,
                        format!("input `{name}` is not produced by any earlier node"),
                    )
                })?),
            });
        }
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
        let int = |name: &str, default: i64| attr(name).map_or(default, |a| a.i);
        let ints = |name: &str| attr(name).map(|a| a.ints.clone());
        // Axes given as a constant input (Unsqueeze ≥ 13, ReduceMean ≥ 18).
        let const_axes = |s: &Self, slot: usize| -> Result<Option<Vec<i64>>, OnnxError> {
            match inputs.get(slot).copied().flatten() {
                None => Ok(None),
                Some(v) => match &s.g.node(v.node).op {
                    Op::Constant(t) => Ok(t.to_i64_vec()),
                    _ => Err(err(s, "axes must be a constant".into())),
                },
            }
        };
        if !microsoft && since_opset(&n.op_type) > self.opset {
            return Err(err(
                self,
                format!(
                    "{} does not exist before opset {}, but the model imports opset {}",
                    n.op_type,
                    since_opset(&n.op_type),
                    self.opset
                ),
            ));
        }
        let unary = |u| Ok::<_, OnnxError>(Op::Unary(u));
        let binary = |b| Ok::<_, OnnxError>(Op::Binary(b));
        let mut keep = inputs.len();
        let op = match n.op_type.as_str() {
            _ if microsoft => contrib_op(n).map_err(|r| err(self, r))?,
            "Constant" => {
                let t = attr("value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| err(self, "only tensor `value` constants are supported".into()))?;
                Op::Constant(tensor_from_proto(t).map_err(|r| err(self, r))?)
            }
            "Erf" => unary(UnaryOp::Erf)?,
            "Tanh" => unary(UnaryOp::Tanh)?,
            "Sqrt" => unary(UnaryOp::Sqrt)?,
            "Relu" => unary(UnaryOp::Relu)?,
            "Sigmoid" => unary(UnaryOp::Sigmoid)?,
            "Neg" => unary(UnaryOp::Neg)?,
            "Exp" => unary(UnaryOp::Exp)?,
            "Log" => unary(UnaryOp::Log)?,
            "Softplus" => unary(UnaryOp::Softplus)?,
            "Abs" => unary(UnaryOp::Abs)?,
            "Reciprocal" => unary(UnaryOp::Reciprocal)?,
            "Round" => unary(UnaryOp::Round)?,
            "Clip" => {
                if attr("min").is_some() || attr("max").is_some() {
                    return Err(err(self, "Clip with min/max attributes (opset < 11)".into()));
                }
                Op::Clip
            }
            "MatMulInteger" => Op::MatMulInteger,
            "DynamicQuantizeLinear" => Op::DynamicQuantizeLinear,
            "QLinearMatMul" => Op::QLinearMatMul,
            "QuantizeLinear" | "DequantizeLinear" => {
                // Blocked quantization (opset 21) and an output type other
                // than the zero point's have no IR form.
                if int("block_size", 0) != 0 || int("output_dtype", 0) != 0 {
                    return Err(err(self, "block_size / output_dtype are not supported".into()));
                }
                let axis = int("axis", 1);
                match n.op_type.as_str() {
                    "QuantizeLinear" => Op::QuantizeLinear { axis },
                    _ => Op::DequantizeLinear { axis },
                }
            }
            "Add" => binary(BinaryOp::Add)?,
            "Sub" => binary(BinaryOp::Sub)?,
            "Mul" => binary(BinaryOp::Mul)?,
            "Div" => binary(BinaryOp::Div)?,
            "Pow" => binary(BinaryOp::Pow)?,
            "Equal" => binary(BinaryOp::Equal)?,
            "Less" => binary(BinaryOp::Less)?,
            "Greater" => binary(BinaryOp::Greater)?,
            "GreaterOrEqual" => binary(BinaryOp::GreaterOrEqual)?,
            "LessOrEqual" => binary(BinaryOp::LessOrEqual)?,
            "And" => binary(BinaryOp::And)?,
            "Or" => binary(BinaryOp::Or)?,
            "Not" => unary(UnaryOp::Not)?,
            "Max" | "Min" if inputs.len() == 2 => binary(if n.op_type == "Max" {
                BinaryOp::Max
            } else {
                BinaryOp::Min
            })?,
            "Range" => Op::Range,
            "CumSum" => {
                // Only the plain inclusive forward sum has a meaning in the IR.
                for flag in ["exclusive", "reverse"] {
                    if int(flag, 0) != 0 {
                        return Err(err(self, format!("{flag}=1 is not supported")));
                    }
                }
                Op::CumSum
            }
            "ConstantOfShape" => {
                let value = match attr("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor_from_proto(t).map_err(|r| err(self, r))?,
                    None => Tensor::from_f32(vec![1], &[0.0]),
                };
                if value.len() != 1 {
                    return Err(err(self, "value must hold one element".into()));
                }
                Op::ConstantOfShape { value }
            }
            "Flatten" => Op::Flatten { axis: int("axis", 1) },
            "Gemm" => Op::Gemm {
                alpha: attr("alpha").map_or(1.0, |a| a.f),
                beta: attr("beta").map_or(1.0, |a| a.f),
                trans_a: int("transA", 0) != 0,
                trans_b: int("transB", 0) != 0,
            },
            "MatMul" => Op::MatMul,
            "ReduceMean" | "ReduceMax" | "ReduceMin" => {
                let axes = match self.opset >= 18 {
                    true => {
                        keep = 1;
                        const_axes(self, 1)?
                    }
                    false => ints("axes"),
                };
                let axes = axes.ok_or_else(|| err(self, "reducing over all axes is not supported".into()))?;
                let keepdims = int("keepdims", 1) != 0;
                match n.op_type.as_str() {
                    "ReduceMax" => Op::ReduceMax { axes, keepdims },
                    "ReduceMin" => Op::ReduceMin { axes, keepdims },
                    _ => Op::ReduceMean { axes, keepdims },
                }
            }
            // Before opset 13, Softmax flattens to 2-D at `axis` (default 1):
            // the same as the IR's only when that is the last axis.
            "Softmax" if self.opset < 13 => {
                let rank = inputs
                    .first()
                    .copied()
                    .flatten()
                    .map(|x| self.g.info(x).shape.rank() as i64)
                    .ok_or_else(|| err(self, "no input".into()))?;
                let axis = int("axis", 1);
                if axis != rank - 1 && axis != -1 {
                    return Err(err(
                        self,
                        format!(
                            "opset-{} Softmax over axis {axis} of a rank-{rank} input flattens several axes",
                            self.opset
                        ),
                    ));
                }
                Op::Softmax { axis: -1 }
            }
            "Softmax" => Op::Softmax {
                axis: int("axis", -1),
            },
            "Transpose" => {
                let perm = ints("perm")
                    .ok_or_else(|| err(self, "Transpose without perm is not supported".into()))?;
                Op::Transpose {
                    perm: perm.iter().map(|&p| p as usize).collect(),
                }
            }
            "Reshape" => {
                // allowzero=1 only differs when the target holds a 0.
                if int("allowzero", 0) != 0 {
                    let target = inputs
                        .get(1)
                        .copied()
                        .flatten()
                        .and_then(|v| self.g.info(v).known.clone());
                    match target {
                        Some(dims) if !dims.contains(&Dim::Fixed(0)) => {}
                        _ => return Err(err(self, "allowzero=1 with a possibly-zero target dim".into())),
                    }
                }
                Op::Reshape
            }
            "GatherND" => {
                if int("batch_dims", 0) != 0 {
                    return Err(err(self, "batch_dims != 0 is not supported".into()));
                }
                Op::GatherNd
            }
            "Unsqueeze" | "Squeeze" => {
                keep = 1;
                let axes = const_axes(self, 1)?.or_else(|| ints("axes")).unwrap_or_default();
                match n.op_type.as_str() {
                    "Unsqueeze" => Op::Unsqueeze { axes },
                    // No axes means every size-1 dim: made explicit, so the
                    // emitted node never carries an empty axes list (which
                    // runtimes read as "squeeze nothing").
                    _ if axes.is_empty() => {
                        let x = inputs
                            .first()
                            .copied()
                            .flatten()
                            .ok_or_else(|| err(self, "no input".into()))?;
                        let dims = self.g.info(x).shape.dims().to_vec();
                        let ones = dims.iter().enumerate().filter(|(_, d)| **d == Dim::Fixed(1));
                        Op::Squeeze {
                            axes: ones.map(|(i, _)| i as i64).collect(),
                        }
                    }
                    _ => Op::Squeeze { axes },
                }
            }
            "Slice" => Op::Slice,
            "Gather" => Op::Gather { axis: int("axis", 0) },
            "Shape" => {
                // Shape{start, end} (opset 15) is Shape then a Slice of it.
                if attr("start").is_some() || attr("end").is_some() {
                    let whole = self.g.fresh_name(&format!("{label}.full"));
                    let data = inputs.first().copied().flatten();
                    let whole = self.g.add(
                        &whole,
                        Op::Shape,
                        &[data.ok_or_else(|| err(self, "no input".into()))?],
                    );
                    let whole = whole.map_err(|e| err(self, e.to_string()))?;
                    let bounds = [int("start", 0), attr("end").map_or(i64::MAX, |a| a.i), 0];
                    let mut args = vec![Some(whole)];
                    for (i, b) in bounds.iter().enumerate() {
                        let cname = self
                            .g
                            .fresh_name(&format!("{label}.{}", ["start", "end", "axis"][i]));
                        let c = self
                            .g
                            .add_const(&cname, Tensor::vec_i64(&[*b]))
                            .map_err(|e| err(self, e.to_string()))?;
                        args.push(Some(c));
                    }
                    inputs = args;
                    keep = 4;
                    Op::Slice
                } else {
                    Op::Shape
                }
            }
            "Cast" => Op::Cast {
                to: dtype_from_onnx(int("to", 0) as i32).map_err(|r| err(self, r))?,
            },
            "Concat" => Op::Concat { axis: int("axis", 0) },
            "Where" => Op::Where,
            "Identity" => Op::Identity,
            "Expand" => Op::Expand,
            "LayerNormalization" => {
                if n.output.len() > 1 {
                    return Err(err(
                        self,
                        "the mean and inv_std_dev outputs are not supported".into(),
                    ));
                }
                let epsilon = attr("epsilon").map_or(1e-5, |a| a.f);
                Op::LayerNorm {
                    axis: int("axis", -1),
                    epsilon,
                }
            }
            "Gelu" => {
                let approximate = match attr("approximate").map(|a| a.s.as_slice()) {
                    None | Some(b"none") => GeluApproximation::None,
                    Some(b"tanh") => GeluApproximation::Tanh,
                    Some(other) => {
                        return Err(err(
                            self,
                            format!("approximate={:?}", String::from_utf8_lossy(other)),
                        ))
                    }
                };
                Op::Gelu { approximate }
            }
            "Attention" => {
                if inputs.len() > 4 || n.output.len() > 1 || int("is_causal", 0) != 0 {
                    return Err(err(
                        self,
                        "only Q, K, V and a mask, non-causal, one output".into(),
                    ));
                }
                let heads = |name: &str| usize::try_from(int(name, 0)).ok().filter(|&h| h > 0);
                let (Some(q_num_heads), Some(kv_num_heads)) = (heads("q_num_heads"), heads("kv_num_heads"))
                else {
                    return Err(err(
                        self,
                        "3-D Attention needs q_num_heads and kv_num_heads".into(),
                    ));
                };
                Op::Attention {
                    q_num_heads,
                    kv_num_heads,
                    scale: attr("scale").map(|a| a.f),
                }
            }
            other => return Err(err(self, format!("op `{other}` is not supported by bertc's IR"))),
        };
        inputs.truncate(keep);
        let name = self.g.fresh_name(&label);
        let id = match op {
            Op::Constant(t) => self.g.add_const(&name, t).map(|v| v.node),
            op => self.g.add_node(&name, op, &inputs),
        }
        .map_err(|e| err(self, e.to_string()))?;
        for (slot, out) in n.output.iter().enumerate() {
            if self.values.contains_key(out) {
                return Err(err(
                    self,
                    format!("value `{out}` is already produced by another node or is an input"),
                ));
            }
            if slot < self.g.node(id).outputs.len() && !out.is_empty() {
                self.values.insert(out.clone(), Value { node: id, slot });
            }
        }
        Ok(())
    }
}

/// The com.microsoft ops bertc's IR knows: the ones `--target onnxruntime`
/// emits, and the fused int8 products onnxruntime's quantizer and optimizer
/// write.
fn contrib_op(n: &proto::NodeProto) -> Result<Op, String> {
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
    let epsilon = attr("epsilon").map_or(1e-12, |a| a.f);
    Ok(Op::Contrib(match n.op_type.as_str() {
        "SkipLayerNormalization" => ContribOp::SkipLayerNorm { epsilon },
        "BiasGelu" => ContribOp::BiasGelu,
        "FastGelu" => ContribOp::FastGelu,
        "EmbedLayerNormalization" => ContribOp::EmbedLayerNorm { epsilon },
        "Attention" => {
            let heads = attr("num_heads").map(|a| a.i).filter(|&h| h > 0);
            let extra = ["unidirectional", "past_present_share_buffer", "do_rotary"]
                .iter()
                .any(|a| attr(a).is_some_and(|a| a.i != 0));
            match heads {
                Some(h) if !extra && attr("qkv_hidden_sizes").is_none() => ContribOp::Attention {
                    num_heads: h as usize,
                },
                _ => return Err("only bidirectional Attention with num_heads and packed equal Q/K/V".into()),
            }
        }
        "MatMulIntegerToFloat" => ContribOp::MatMulIntegerToFloat,
        "DynamicQuantizeMatMul" => ContribOp::DynamicQuantizeMatMul,
        other => {
            return Err(format!(
                "com.microsoft op `{other}` is not supported by bertc's IR"
            ))
        }
    }))
}
