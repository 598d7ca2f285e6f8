//! The graph: a petgraph `StableGraph` of typed nodes.
//!
//! Invariants (checked by [`super::verify`]):
//! - acyclic; every required input slot of a node has exactly one producer;
//! - node names are unique (they carry lineage, e.g.
//!   `encoder.layer.3.attention.self.query`, and become ONNX names);
//! - each node's stored output types equal what inference computes from its
//!   inputs.
//!
//! petgraph does not order edges, so operand order lives on the edge
//! (`Edge::to_slot`) and inputs are read only through [`Graph::inputs_of`].

use std::collections::{BTreeMap, HashMap};

use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::dtype::DType;
use super::infer::infer;
use super::op::Op;
use super::shape::{Dim, Shape};
use super::tensor::Tensor;
use super::IrError;

pub type NodeId = NodeIndex<u32>;

/// The type of one node output, plus the integer values inference could
/// track (shapes, axes, indices), which lets Reshape/Slice outputs keep
/// symbolic dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub dtype: DType,
    pub shape: Shape,
    pub known: Option<Vec<Dim>>,
}

impl ValueInfo {
    pub fn new(dtype: DType, shape: Shape) -> ValueInfo {
        ValueInfo {
            dtype,
            shape,
            known: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub outputs: Vec<ValueInfo>,
}

/// An edge carries one output slot of its source to one input slot of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from_slot: usize,
    pub to_slot: usize,
}

/// One output of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub node: NodeId,
    pub slot: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub(super) g: StableGraph<Node, Edge>,
    names: HashMap<String, NodeId>,
    inputs: Vec<NodeId>,
    outputs: Vec<(String, Value)>,
    /// Key/value metadata carried to the emitted model (config JSON, labels).
    pub metadata: BTreeMap<String, String>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Declares a graph input.
    pub fn add_input(&mut self, name: &str, dtype: DType, shape: Shape) -> Result<Value, IrError> {
        let id = self.insert(name, Op::Input, vec![ValueInfo::new(dtype, shape)])?;
        self.inputs.push(id);
        Ok(Value { node: id, slot: 0 })
    }

    /// Adds a constant tensor.
    pub fn add_const(&mut self, name: &str, tensor: Tensor) -> Result<Value, IrError> {
        let mut info = ValueInfo::new(tensor.dtype(), tensor.shape());
        info.known = tensor.as_known_ints();
        let id = self.insert(name, Op::Constant(tensor), vec![info])?;
        Ok(Value { node: id, slot: 0 })
    }

    /// Adds a single-output op, inferring its output type now so that a
    /// builder mistake is reported at the node that makes it.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[Value]) -> Result<Value, IrError> {
        let opt: Vec<Option<Value>> = inputs.iter().copied().map(Some).collect();
        let id = self.add_node(name, op, &opt)?;
        Ok(Value { node: id, slot: 0 })
    }

    /// Adds an op whose optional inputs may be absent (`None`).
    pub fn add_node(&mut self, name: &str, op: Op, inputs: &[Option<Value>]) -> Result<NodeId, IrError> {
        let infos: Vec<Option<&ValueInfo>> = inputs.iter().map(|v| v.map(|v| self.info(v))).collect();
        let outputs = infer(&op, &infos).map_err(|reason| IrError::Infer {
            node: name.to_string(),
            op: op.kind(),
            reason,
        })?;
        let id = self.insert(name, op, outputs)?;
        for (slot, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.connect(*v, id, slot);
            }
        }
        Ok(id)
    }

    fn insert(&mut self, name: &str, op: Op, outputs: Vec<ValueInfo>) -> Result<NodeId, IrError> {
        if self.names.contains_key(name) {
            return Err(IrError::DuplicateName(name.to_string()));
        }
        let id = self.g.add_node(Node {
            name: name.to_string(),
            op,
            outputs,
        });
        self.names.insert(name.to_string(), id);
        Ok(id)
    }

    /// A name not used yet, derived from `base` (`base`, `base.1`, `base.2`, …).
    pub fn fresh_name(&self, base: &str) -> String {
        if !self.names.contains_key(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}.{i}"))
            .find(|n| !self.names.contains_key(n))
            .unwrap()
    }

    /// Marks a value as a graph output under `name`.
    pub fn set_output(&mut self, name: &str, value: Value) {
        self.outputs.push((name.to_string(), value));
    }

    /// Renames the output `old` to `new`; false when there is no `old`.
    pub fn rename_output(&mut self, old: &str, new: &str) -> bool {
        match self.outputs.iter_mut().find(|(n, _)| n == old) {
            Some(o) => {
                o.0 = new.to_string();
                true
            }
            None => false,
        }
    }

    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[(String, Value)] {
        &self.outputs
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.names.get(name).copied()
    }

    pub fn info(&self, v: Value) -> &ValueInfo {
        &self.g[v.node].outputs[v.slot]
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// Node ids in petgraph's order (not canonical; see [`super::order`]).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    /// The inputs of a node by slot; `None` for an absent optional input.
    pub fn inputs_of(&self, id: NodeId) -> Vec<Option<Value>> {
        let mut slots: Vec<Option<Value>> = Vec::new();
        for e in self.g.edges_directed(id, Direction::Incoming) {
            let slot = e.weight().to_slot;
            if slots.len() <= slot {
                slots.resize(slot + 1, None);
            }
            slots[slot] = Some(Value {
                node: e.source(),
                slot: e.weight().from_slot,
            });
        }
        slots
    }

    /// Every (consumer node, input slot) that reads `v`.
    pub fn consumers(&self, v: Value) -> Vec<(NodeId, usize)> {
        let mut users: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().from_slot == v.slot)
            .map(|e| (e.target(), e.weight().to_slot))
            .collect();
        users.sort();
        users
    }

    /// Whether a value is one of the graph outputs.
    pub fn is_output(&self, v: Value) -> bool {
        self.outputs.iter().any(|(_, o)| *o == v)
    }

    /// Points every consumer and graph output reading `old` at `new` instead.
    pub fn replace_uses(&mut self, old: Value, new: Value) {
        let edges: Vec<_> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().from_slot == old.slot)
            .map(|e| (e.id(), e.target(), e.weight().to_slot))
            .collect();
        for (edge, target, to_slot) in edges {
            self.g.remove_edge(edge);
            self.g.add_edge(
                new.node,
                target,
                Edge {
                    from_slot: new.slot,
                    to_slot,
                },
            );
        }
        for (_, o) in self.outputs.iter_mut() {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Points the graph outputs that are `old` at `new` (its readers keep
    /// reading `old`).
    pub fn redirect_outputs(&mut self, old: Value, new: Value) {
        for (_, o) in self.outputs.iter_mut() {
            if *o == old {
                *o = new;
            }
        }
    }

    /// An edge carrying `v` into input `slot` of node `to`.
    fn connect(&mut self, v: Value, to: NodeId, slot: usize) {
        self.g.add_edge(
            v.node,
            to,
            Edge {
                from_slot: v.slot,
                to_slot: slot,
            },
        );
    }

    /// Points input `slot` of node `id` at `v` (replacing what it read).
    /// The caller keeps the node's output type valid (the verifier checks).
    pub fn set_input(&mut self, id: NodeId, slot: usize, v: Value) {
        let old: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| e.weight().to_slot == slot)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.connect(v, id, slot);
    }

    /// Removes a node and its edges. Graph inputs and nodes feeding graph
    /// outputs are kept; the caller (a pass) decides what is dead.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        if self.inputs.contains(&id) || self.outputs.iter().any(|(_, o)| o.node == id) {
            return None;
        }
        let node = self.g.remove_node(id)?;
        self.names.remove(&node.name);
        Some(node)
    }

    /// Number of parameters: the sum of [`parameter_elements`] over the
    /// constants.
    pub fn parameter_count(&self) -> usize {
        self.g
            .node_weights()
            .filter_map(|n| match &n.op {
                Op::Constant(t) => parameter_elements(t),
                _ => None,
            })
            .sum()
    }

    /// Counts of the operations by kind, sorted by kind: every node but
    /// the graph's inputs and constants (see [`Graph::constant_count`]).
    /// The one histogram every report prints.
    pub fn op_histogram(&self) -> BTreeMap<&'static str, usize> {
        let mut h = BTreeMap::new();
        for n in self.g.node_weights() {
            if !matches!(n.op, Op::Input | Op::Constant(_)) {
                *h.entry(n.op.kind()).or_insert(0) += 1;
            }
        }
        h
    }

    /// Constant nodes (weights and small structural constants).
    pub fn constant_count(&self) -> usize {
        self.g
            .node_weights()
            .filter(|n| matches!(n.op, Op::Constant(_)))
            .count()
    }
}

/// The one rule for what a parameter is: the elements of a float constant
/// of rank ≥ 1, or of an int8/uint8 matrix (a quantized weight). Scalars
/// (epsilons, 0.5, √2, mask fill values) are structure, so an f32 graph's
/// count matches PyTorch's `numel()` sum; a quantized graph keeps its
/// weights' count (its f32 scales count too), while zero points (rank ≤ 1
/// integers) are quantization metadata.
pub fn parameter_elements(t: &Tensor) -> Option<usize> {
    let float = t.dtype().is_float() && !t.dims().is_empty();
    (float || is_quantized_weight(t)).then(|| t.len())
}

/// An int8/uint8 matrix: a quantized weight (zero points are rank ≤ 1).
pub fn is_quantized_weight(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::I8 | DType::U8) && t.dims().len() >= 2
}
