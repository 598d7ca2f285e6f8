//! ONNX bytes → IR graph, for the ops bertc's IR knows.
//!
//! Each node is read through its op's entry in the op table
//! ([`crate::ir::op_table`]): found by domain and op_type, refused below the
//! entry's first opset, built by its `read`. Attributes ONNX moved into
//! inputs across opsets (axes of Unsqueeze, Squeeze, ReduceMean) must be
//! constants and become IR attributes. An op outside the IR, or a malformed
//! file, is an error naming the node, its op type and the opset — never a panic.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use super::external::ExternalFiles;
use super::if_op;
use super::proto;
use super::split_op::split_as_slices;
use super::tensors::{dtype_from_onnx, is_external, tensor_from_proto, value_type};
use super::OnnxError;
use crate::ir::op_table::{self, AttrInput, Attrs, Domain, OnnxNode};
use crate::ir::{DType, Graph, Op, Tensor, Value, ValueInfo};
use crate::passes::Pass;

pub fn read_model(path: &Path) -> Result<Graph, OnnxError> {
    read_model_and_bytes(path).map(|(graph, _)| graph)
}

/// [`read_model`] and the file's bytes, read once: the graph's weights are
/// slices of that one buffer (no copy), so a caller that hands the bytes
/// on to a runtime holds the weights once, not twice.
pub fn read_model_and_bytes(path: &Path) -> Result<(Graph, Bytes), OnnxError> {
    let bytes = Bytes::from(
        crate::input_file::read_regular(path).map_err(|error| OnnxError::Io {
            path: path.display().to_string(),
            error,
        })?,
    );
    // Every error names the file (an I/O error already does).
    let graph = import_with_dir(bytes.clone(), path.parent()).map_err(|e| match e {
        OnnxError::Decode(reason) => OnnxError::Decode(format!("{}: {reason}", path.display())),
        OnnxError::Io { .. } => e,
        other => OnnxError::InFile {
            path: path.display().to_string(),
            error: Box::new(other),
        },
    })?;
    Ok((graph, bytes))
}

/// Imports a model from bytes; external-data initializers are refused
/// (they need the model's folder: use [`read_model`]).
pub fn import_bytes(bytes: &[u8]) -> Result<Graph, OnnxError> {
    import_with_dir(Bytes::copy_from_slice(bytes), None)
}

/// [`import_bytes`] of a buffer the caller keeps: the graph's weights are
/// slices of it, not copies.
pub fn import_shared_bytes(bytes: Bytes) -> Result<Graph, OnnxError> {
    import_with_dir(bytes, None)
}

/// Decoding from a `Bytes` makes every `raw_data` a slice of it.
fn import_with_dir(bytes: Bytes, dir: Option<&Path>) -> Result<Graph, OnnxError> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Decode("the model has no graph".into()))?;
    // onnx's checker refuses a domain imported twice and an initializer
    // name given twice; bertc took the first opset and the last tensor
    // (issue 25), so a file two tools read differently was accepted.
    let default_opsets: Vec<i64> = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .collect();
    let opset = match default_opsets.as_slice() {
        [] => {
            return Err(OnnxError::Decode(
                "the model imports no default-domain opset".into(),
            ))
        }
        [one] => *one,
        several => {
            return Err(OnnxError::Decode(format!(
                "the model imports the default domain {} times (opsets {several:?}); onnx's checker \
                 accepts one import per domain",
                several.len()
            )))
        }
    };
    let mut initializer_names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    initializer_names.sort_unstable();
    if let Some(twice) = initializer_names.windows(2).find(|w| w[0] == w[1]) {
        return Err(OnnxError::Decode(format!(
            "two initializers are named `{}`; onnx's checker requires unique names (which one a \
             runtime uses is not defined)",
            twice[0]
        )));
    }
    check_versions(model.ir_version, opset)?;
    check_outputs(graph)?;
    let mut im = Importer {
        g: Graph::new(),
        values: HashMap::new(),
        opset,
        inlined: 0,
        depth: 0,
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

struct Importer {
    g: Graph,
    values: HashMap<String, Value>,
    opset: i64,
    /// Nodes of If branches inlined so far, and how deep the current one is.
    inlined: usize,
    depth: usize,
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

    /// Imports one node through its op's entry in the op table.
    fn node(&mut self, index: usize, n: &proto::NodeProto) -> Result<(), OnnxError> {
        let label = if n.name.is_empty() {
            format!("{}_{index}", n.op_type)
        } else {
            n.name.clone()
        };
        let err = |s: &Self, reason: String| s.err(&label, &n.op_type, reason);
        let domain = match n.domain.as_str() {
            "" | "ai.onnx" => Domain::Onnx,
            "com.microsoft" => Domain::Microsoft,
            other => return Err(err(self, format!("domain `{other}` is not supported"))),
        };
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
        if domain == Domain::Onnx && n.op_type == "If" {
            return self.inline_if(n, &label, &inputs);
        }
        if domain == Domain::Onnx && n.op_type == "Split" {
            let parts =
                split_as_slices(&mut self.g, n, &label, &inputs, self.opset).map_err(|r| err(self, r))?;
            return self.produced(n, &parts).map_err(|r| err(self, r));
        }
        let schema = op_table::find(domain, &n.op_type)
            .ok_or_else(|| err(self, op_table::not_supported(domain, &n.op_type)))?;
        if schema.min_opset() > self.opset {
            return Err(err(
                self,
                format!(
                    "{} does not exist before opset {}, but the model imports opset {}",
                    n.op_type, schema.since, self.opset
                ),
            ));
        }
        let sliced = domain == Domain::Onnx && n.op_type == "Shape";
        let (op, inputs) = match sliced && (has(n, "start") || has(n, "end")) {
            true => self.shape_slice(n, &label, &inputs).map_err(|r| err(self, r))?,
            false => {
                let view = NodeView {
                    n,
                    g: &self.g,
                    inputs: &inputs,
                    opset: self.opset,
                };
                let op = (schema.read)(&Attrs::new(schema.attributes, &view)).map_err(|r| err(self, r))?;
                inputs.truncate(schema.operands_at(self.opset, inputs.len()));
                (op, inputs)
            }
        };
        let name = self.g.fresh_name(&label);
        let id = match op {
            Op::Constant(t) => self.g.add_const(&name, t).map(|v| v.node),
            op => self.g.add_node(&name, op, &inputs),
        }
        .map_err(|e| err(self, e.to_string()))?;
        let slots = (0..self.g.node(id).outputs.len()).map(|slot| Value { node: id, slot });
        self.produced(n, &slots.collect::<Vec<_>>())
            .map_err(|r| err(self, r))
    }

    /// An If decided at compile time: the nodes of its taken branch,
    /// imported in its place (see [`if_op`]), within bounds on nesting and
    /// on the nodes all branches add.
    fn inline_if(
        &mut self,
        n: &proto::NodeProto,
        label: &str,
        inputs: &[Option<Value>],
    ) -> Result<(), OnnxError> {
        let err = |s: &Self, reason: String| s.err(label, "If", reason);
        let condition = inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| err(self, "no condition".into()))?;
        let branch = if_op::taken_branch(n, if_op::decided(self.g.info(condition)), label)
            .map_err(|r| err(self, r))?;
        self.inlined += branch.nodes.len();
        if self.depth >= if_op::MAX_DEPTH || self.inlined > if_op::MAX_INLINED_NODES {
            return Err(err(
                self,
                format!(
                    "If branches nest deeper than {} or hold more than {} nodes in all",
                    if_op::MAX_DEPTH,
                    if_op::MAX_INLINED_NODES
                ),
            ));
        }
        self.depth += 1;
        let imported = branch
            .nodes
            .iter()
            .enumerate()
            .try_for_each(|(i, node)| self.node(i, node));
        self.depth -= 1;
        imported?;
        let mut values = Vec::with_capacity(branch.outputs.len());
        for name in &branch.outputs {
            values.push(*self.values.get(name).ok_or_else(|| {
                err(
                    self,
                    format!("branch output `{name}` is not produced by any node"),
                )
            })?);
        }
        self.produced(n, &values).map_err(|r| err(self, r))
    }

    /// Records `values` as what `n`'s outputs name, in order.
    fn produced(&mut self, n: &proto::NodeProto, values: &[Value]) -> Result<(), String> {
        for (slot, out) in n.output.iter().enumerate() {
            if self.values.contains_key(out) {
                return Err(format!(
                    "value `{out}` is already produced by another node or is an input"
                ));
            }
            if let (Some(&v), false) = (values.get(slot), out.is_empty()) {
                self.values.insert(out.clone(), v);
            }
        }
        Ok(())
    }

    /// Shape{start, end} (opset 15): the IR's Shape, then a Slice of it.
    fn shape_slice(
        &mut self,
        n: &proto::NodeProto,
        label: &str,
        inputs: &[Option<Value>],
    ) -> Result<(Op, Vec<Option<Value>>), String> {
        let data = inputs.first().copied().flatten().ok_or("no input")?;
        let whole = self.g.fresh_name(&format!("{label}.full"));
        let whole = self
            .g
            .add(&whole, Op::Shape, &[data])
            .map_err(|e| e.to_string())?;
        let int = |name: &str, default: i64| attribute(n, name).map_or(default, |a| a.i);
        let bounds = [int("start", 0), int("end", i64::MAX), 0];
        let mut args = vec![Some(whole)];
        for (b, what) in bounds.iter().zip(["start", "end", "axis"]) {
            let cname = self.g.fresh_name(&format!("{label}.{what}"));
            let c = self
                .g
                .add_const(&cname, Tensor::vec_i64(&[*b]))
                .map_err(|e| e.to_string())?;
            args.push(Some(c));
        }
        Ok((Op::Slice, args))
    }
}

fn attribute<'n>(n: &'n proto::NodeProto, name: &str) -> Option<&'n proto::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn has(n: &proto::NodeProto, name: &str) -> bool {
    attribute(n, name).is_some()
}

/// An ONNX node as the op table's `read` functions see it.
struct NodeView<'a> {
    n: &'a proto::NodeProto,
    g: &'a Graph,
    inputs: &'a [Option<Value>],
    opset: i64,
}

impl OnnxNode for NodeView<'_> {
    fn opset(&self) -> i64 {
        self.opset
    }

    fn input_count(&self) -> usize {
        self.inputs.len()
    }

    fn output_count(&self) -> usize {
        self.n.output.len()
    }

    fn input(&self, slot: usize) -> Option<&ValueInfo> {
        let v = self.inputs.get(slot).copied().flatten()?;
        Some(self.g.info(v))
    }

    fn attr_input(&self, slot: usize) -> AttrInput {
        match self.inputs.get(slot).copied().flatten() {
            None => AttrInput::Absent,
            Some(v) => match &self.g.node(v.node).op {
                Op::Constant(t) => AttrInput::Constant(t.to_i64_vec()),
                _ => AttrInput::Computed,
            },
        }
    }

    fn int(&self, name: &str) -> Option<i64> {
        attribute(self.n, name).map(|a| a.i)
    }

    fn float(&self, name: &str) -> Option<f32> {
        attribute(self.n, name).map(|a| a.f)
    }

    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        attribute(self.n, name).map(|a| a.ints.clone())
    }

    fn string(&self, name: &str) -> Option<&[u8]> {
        attribute(self.n, name).map(|a| a.s.as_slice())
    }

    fn tensor(&self, name: &str) -> Option<Result<Tensor, String>> {
        attribute(self.n, name)?.t.as_ref().map(tensor_from_proto)
    }

    fn dtype(&self, name: &str) -> Result<DType, String> {
        dtype_from_onnx(self.int(name).unwrap_or(0) as i32)
    }

    fn has(&self, name: &str) -> bool {
        has(self.n, name)
    }
}
