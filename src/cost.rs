//! What a model costs: parameters by component, multiply-adds per sequence,
//! an activation-memory estimate and weight bytes per precision — read off
//! any IR graph (bertc's own or an imported ONNX file) with its batch and
//! sequence dimensions bound to sizes.
//!
//! # The FLOP formula
//!
//! bertc counts **multiply-adds (MACs)** of the matrix products and reports
//! FLOPs as **2 · MACs**. For a BERT with L layers, hidden size H,
//! intermediate size I, a sequence of S tokens ([`bert_macs_per_sequence`]):
//!
//! ```text
//! linear layers   L · (4·S·H² + 2·S·H·I)  + H²   (Q, K, V, attention output; FFN in, out; pooler on one token)
//! attention       L · 2·S²·H                      (Q·Kᵀ: S·S·(heads·d) = S²·H; probabilities · V: the same)
//! ```
//!
//! Elementwise work (biases, softmax, GELU, layer norms) and the embedding
//! gathers are not counted: they are O(S·H) or O(S²·heads) per layer, under
//! 2 % of the total at BERT-base sizes. BERT-base at S=128 is
//! 11,174,215,680 MACs = 22.3 GFLOP per sequence. The graph count
//! ([`graph_cost`]) finds the same terms node by node — MatMul, Gemm,
//! Attention and onnxruntime's packed Attention — so it also costs fused,
//! merged or foreign graphs; a batch of B costs B times one sequence.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::BertConfig;
use crate::family;
use crate::ir::op_table::CostRule;
use crate::ir::{
    canonical_order, parameter_elements, parse_blocks, Dim, Factors, Graph, NodeId, Op, Shape, Value,
    NONZERO_COUNT, SLICE_LENGTH,
};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("cannot cost node `{node}`: its dimension `{dim}` is neither the batch nor the sequence dimension of an input")]
    UnboundDim { node: String, dim: String },
    #[error("cannot cost node `{node}` ({op}): {reason}")]
    Shape {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("batch and sequence length must be at least 1 (got batch {batch}, sequence {seq})")]
    EmptyShape { batch: usize, seq: usize },
    #[error(
        "batch {batch} × sequence {seq}: the {what} of node `{node}` exceed 2^64; \
         give a smaller --batch or --seq"
    )]
    Overflow {
        batch: usize,
        seq: usize,
        node: String,
        what: &'static str,
    },
}

/// The closed-form multiply-adds of one sequence of `seq` tokens through
/// BertModel (encoder and pooler): see the module documentation.
pub fn bert_macs_per_sequence(c: &BertConfig, seq: usize) -> MultiplyAdds {
    let (l, h, i, s) = (
        c.num_hidden_layers as u64,
        c.hidden_size as u64,
        c.intermediate_size as u64,
        seq as u64,
    );
    let linear = l * (4 * s * h * h + 2 * s * h * i) + h * h;
    let attention = l * 2 * s * s * h;
    MultiplyAdds {
        linear,
        attention,
        total: linear + attention,
    }
}

/// Multiply-adds of the matrix products, split by what they multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MultiplyAdds {
    /// Activations times weights (projections, FFN, pooler).
    pub linear: u64,
    /// Activations times activations (Q·Kᵀ and probabilities·V).
    pub attention: u64,
    pub total: u64,
}

impl MultiplyAdds {
    /// Adds a node's counts; `None` on overflow.
    fn add(&mut self, linear: u64, attention: u64) -> Option<()> {
        self.linear = self.linear.checked_add(linear)?;
        self.attention = self.attention.checked_add(attention)?;
        self.total = self.total.checked_add(linear.checked_add(attention)?)?;
        Some(())
    }

    fn per(self, n: u64) -> MultiplyAdds {
        MultiplyAdds {
            linear: self.linear / n,
            attention: self.attention / n,
            total: self.total / n,
        }
    }
}

/// Parameters by the component their tensor's name places them in
/// (transformers' names, with or without `bert.`; an exporter's node names
/// such as `/bert/encoder/layer.0/...` are tried when the weight's own name
/// says nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Parameters {
    pub total: usize,
    pub embeddings: usize,
    /// One entry per encoder layer, in order.
    pub layers: Vec<usize>,
    /// The norm after the last layer of pre-norm encoders (ModernBERT's
    /// `final_norm`); absent from the report where there is none.
    #[serde(skip_serializing_if = "is_zero")]
    pub final_norm: usize,
    pub pooler: usize,
    /// Task heads (classifier, qa_outputs, cls.*); BertModel has none.
    pub heads: usize,
    /// Weights no name places (e.g. `onnx::MatMul_123` of a TorchScript export).
    pub unattributed: usize,
}

/// Bytes of the weights stored at each precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WeightBytes {
    /// What the graph holds now (every constant, at its own dtype).
    pub stored: usize,
    pub fp32: usize,
    pub fp16: usize,
    /// What `--quantize dynamic` stores, by the quantizer's own account
    /// ([`crate::passes::stored_bytes`]): linear weights and the word
    /// embeddings at 1 byte plus f32 scales, the rest as it is. Every int8
    /// form stores about this (the Q/DQ forms' zero points and outlier rows
    /// are a fraction of a percent), each shared weight once.
    pub int8: usize,
    /// What `--quantize static` stores in the i8 × i8 form: `int8` plus each
    /// calibrated input's per-channel inverse scales (a fraction of a
    /// percent, but 1-3 % of a model with 32-wide layers).
    pub int8_static: usize,
}

/// The cost of a graph at one batch size and sequence length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    pub batch: usize,
    pub seq: usize,
    pub parameters: Parameters,
    /// Multiply-adds of one sequence at `seq` (the whole batch divided by `batch`).
    pub macs_per_sequence: MultiplyAdds,
    /// 2 · MACs.
    pub flops_per_sequence: u64,
    /// Peak bytes of live activations for the whole batch when nodes run in
    /// canonical order and each value is freed after its last reader; a
    /// runtime that fuses or works in place needs less.
    pub activation_bytes: u64,
    pub weight_bytes: WeightBytes,
    /// Nodes by op kind, graph inputs and constants left out.
    pub op_histogram: BTreeMap<String, usize>,
}

/// Which component a parameter name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Embeddings,
    Layer(usize),
    FinalNorm,
    Pooler,
    Heads,
}

fn component_of(name: &str) -> Option<Component> {
    let dotted = name.replace('/', ".");
    // The component names may follow any prefix (`bert.`, a wrapper's `m.`,
    // an exporter's leading `/`): try every segment boundary.
    let starts = std::iter::once(0).chain(dotted.match_indices('.').map(|(i, _)| i + 1));
    starts.into_iter().find_map(|i| component_at(&dotted[i..]))
}

fn component_at(n: &str) -> Option<Component> {
    // The family table's names: ELECTRA's and ALBERT's projections belong
    // to the embeddings, and so does MPNet's relative position bias.
    if family::is_embedding_weight(n) {
        return Some(Component::Embeddings);
    }
    // DistilBERT's layers; ALBERT's shared groups count once, as their group.
    if let Some(rest) = family::layer_weight_rest(n) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return digits.parse().ok().map(Component::Layer);
    }
    if family::is_final_norm_weight(n) {
        return Some(Component::FinalNorm);
    }
    if family::is_pooler_weight(n) {
        return Some(Component::Pooler);
    }
    if family::is_head_param(n) {
        return Some(Component::Heads);
    }
    None
}

/// The component of a weight: its own name, else the names of the nodes
/// reading it, else the names of the other constants their results meet
/// (an anonymous `val_64` weight whose MatMul feeds `...query.bias`'s Add).
fn component_of_weight(g: &Graph, id: NodeId) -> Option<Component> {
    component_of(&g.node(id).name).or_else(|| {
        let readers = g.consumers(Value { node: id, slot: 0 });
        readers
            .iter()
            .find_map(|&(user, _)| component_of(&g.node(user).name))
            .or_else(|| {
                readers.iter().find_map(|&(user, _)| {
                    g.consumers(Value { node: user, slot: 0 })
                        .iter()
                        .flat_map(|&(next, _)| g.inputs_of(next))
                        .flatten()
                        .filter(|v| matches!(g.node(v.node).op, Op::Constant(_)))
                        .find_map(|v| component_of(&g.node(v.node).name))
                })
            })
    })
}

/// Constants that are parameters, by the one rule of [`parameter_elements`].
fn constant_parameters(op: &Op) -> Option<usize> {
    match op {
        Op::Constant(t) => parameter_elements(t),
        _ => None,
    }
}

/// Sizes for the symbolic dims: the first dim of every rank-≥2 input is the
/// batch, the second the sequence.
struct Bindings {
    sizes: HashMap<String, u64>,
    batch: usize,
    seq: usize,
}

/// The product of `xs`, `None` on overflow.
fn product(xs: impl IntoIterator<Item = u64>) -> Option<u64> {
    xs.into_iter().try_fold(1u64, |acc, x| acc.checked_mul(x))
}

impl Bindings {
    fn of(g: &Graph, batch: usize, seq: usize) -> Bindings {
        let mut map = HashMap::new();
        for &id in g.inputs() {
            let dims = g.node(id).outputs[0].shape.dims();
            if dims.len() >= 2 {
                for (d, size) in dims.iter().zip([batch, seq]) {
                    if let Dim::Sym(s) = d {
                        map.insert(s.clone(), size as u64);
                    }
                }
            }
        }
        // A packed graph's token count, at its largest: every position real
        // (the model counts full sequences).
        map.insert(
            NONZERO_COUNT.to_string(),
            (batch as u64).saturating_mul(seq as u64),
        );
        // A run-time cut of DeBERTa's relative table: the rows distances
        // −(S − 1) … S − 1 read, at most 2·S − 1 (fewer past the exact
        // buckets; the count is an upper bound).
        map.insert(
            SLICE_LENGTH.to_string(),
            (2 * seq as u64).saturating_sub(1).max(1),
        );
        Bindings {
            sizes: map,
            batch,
            seq,
        }
    }

    /// The size of one symbol: bound, or a sum (`nonzero_count+1`, from a
    /// Concat) of bound symbols, numbers and block counts
    /// (`ceil(sequence_length/32)`, from a Range).
    fn symbol(&self, s: &str, node: &str) -> Result<u64, CostError> {
        let unbound = || CostError::UnboundDim {
            node: node.into(),
            dim: s.to_string(),
        };
        s.split('+').try_fold(0u64, |sum, part| {
            let size = match (part.parse::<u64>(), parse_blocks(part)) {
                (Ok(n), _) => n,
                (Err(_), Some((inner, block))) => self.symbol(inner, node)?.div_ceil(block as u64),
                (Err(_), None) => *self.sizes.get(part).ok_or_else(unbound)?,
            };
            sum.checked_add(size)
                .ok_or_else(|| self.overflow(node, "dimensions"))
        })
    }

    /// The error of an overflowing count at `node`.
    fn overflow(&self, node: &str, what: &'static str) -> CostError {
        CostError::Overflow {
            batch: self.batch,
            seq: self.seq,
            node: node.into(),
            what,
        }
    }

    /// The element count of `shape`, checked.
    fn elements(&self, shape: &Shape, node: &str) -> Result<u64, CostError> {
        product(self.dims(shape, node)?).ok_or_else(|| self.overflow(node, "elements"))
    }

    fn dim(&self, d: &Dim, node: &str) -> Result<u64, CostError> {
        let f = Factors::of(std::slice::from_ref(d)).ok_or_else(|| self.overflow(node, "dimensions"))?;
        let mut n = f.coefficient.max(0) as u64;
        for s in &f.symbols {
            let size = self.symbol(s, node)?;
            n = n
                .checked_mul(size)
                .ok_or_else(|| self.overflow(node, "dimensions"))?;
        }
        Ok(n)
    }

    fn dims(&self, shape: &Shape, node: &str) -> Result<Vec<u64>, CostError> {
        shape.dims().iter().map(|d| self.dim(d, node)).collect()
    }
}

/// The cost of `g` with its batch and sequence dims bound to `batch`, `seq`.
pub fn graph_cost(g: &Graph, batch: usize, seq: usize) -> Result<Cost, CostError> {
    if batch == 0 || seq == 0 {
        return Err(CostError::EmptyShape { batch, seq });
    }
    let bind = Bindings::of(g, batch, seq);
    let mut macs = MultiplyAdds::default();
    for id in g.node_ids() {
        let (linear, attention) = node_macs(g, id, &bind)?;
        macs.add(linear, attention)
            .ok_or_else(|| bind.overflow(&g.node(id).name, "multiply-adds"))?;
    }
    let parameters = parameters_of(g);
    let weight_bytes = weight_bytes_of(g);
    let op_histogram = g
        .op_histogram()
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let macs_per_sequence = macs.per(batch as u64);
    Ok(Cost {
        batch,
        seq,
        parameters,
        macs_per_sequence,
        flops_per_sequence: macs_per_sequence
            .total
            .checked_mul(2)
            .ok_or_else(|| bind.overflow("(all)", "FLOPs"))?,
        activation_bytes: peak_activation_bytes(g, &bind)?,
        weight_bytes,
        op_histogram,
    })
}

/// (linear, attention) multiply-adds of one node.
fn node_macs(g: &Graph, id: NodeId, bind: &Bindings) -> Result<(u64, u64), CostError> {
    let node = g.node(id);
    let inputs = g.inputs_of(id);
    let shape_of = |slot: usize| -> Result<Vec<u64>, CostError> {
        let v = inputs
            .get(slot)
            .copied()
            .flatten()
            .ok_or_else(|| CostError::Shape {
                node: node.name.clone(),
                op: node.op.kind(),
                reason: format!("input {slot} is missing"),
            })?;
        bind.dims(&g.info(v).shape, &node.name)
    };
    let is_constant = |slot: usize| {
        inputs
            .get(slot)
            .copied()
            .flatten()
            .is_some_and(|v| is_weight(g, v))
    };
    let out: u64 = bind.elements(&node.outputs[0].shape, &node.name)?;
    let macs_of =
        |xs: &[u64]| product(xs.iter().copied()).ok_or_else(|| bind.overflow(&node.name, "multiply-adds"));
    let bad = |reason: &str| CostError::Shape {
        node: node.name.clone(),
        op: node.op.kind(),
        reason: reason.into(),
    };
    Ok(match node.op.schema().cost {
        // int8 products (MatMulInteger, QLinearMatMul, onnxruntime's fused
        // ones) cost the same multiply-adds as the float one.
        CostRule::MatMul { b } => {
            let a = shape_of(0)?;
            let k = *a.last().ok_or_else(|| bad("a scalar operand"))?;
            let macs = macs_of(&[out, k])?;
            // A weight operand makes it a linear layer; two activations are attention.
            if is_constant(0) || is_constant(b) {
                (macs, 0)
            } else {
                (0, macs)
            }
        }
        CostRule::Gemm => {
            let a = shape_of(0)?;
            if a.len() != 2 {
                return Err(bad("Gemm's A is not 2-D"));
            }
            // A is [M, K] or, transposed, [K, M]; the output is [M, N].
            let n = *bind
                .dims(&node.outputs[0].shape, &node.name)?
                .last()
                .ok_or_else(|| bad("Gemm's output is not 2-D"))?;
            (macs_of(&[a[0], a[1], n])?, 0)
        }
        CostRule::Attention => {
            // Q·Kᵀ: every query element meets every key position; P·V:
            // every output element sums over the key positions.
            let (q, k) = (shape_of(0)?, shape_of(1)?);
            if k.len() < 2 {
                return Err(bad("K has rank < 2"));
            }
            let kv_len = k[k.len() - 2];
            let q_elems = macs_of(&q)?;
            let (qk, pv) = (macs_of(&[q_elems, kv_len])?, macs_of(&[out, kv_len])?);
            (
                0,
                qk.checked_add(pv)
                    .ok_or_else(|| bind.overflow(&node.name, "multiply-adds"))?,
            )
        }
        CostRule::PackedAttention => {
            // Packed projection [B,S,H]·[H,3H], then attention over S.
            let (x, w) = (shape_of(0)?, shape_of(1)?);
            if x.len() != 3 || w.len() != 2 {
                return Err(bad("expects input [B,S,H] and weights [H,3H]"));
            }
            let (b, s, h) = (x[0], x[1], x[2]);
            let projection = macs_of(&[b, s, h, w[1]])?;
            (projection, macs_of(&[2, b, s, s, w[1] / 3])?)
        }
        CostRule::Uncounted | CostRule::Weight | CostRule::WeightView => (0, 0),
    })
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn parameters_of(g: &Graph) -> Parameters {
    let mut p = Parameters::default();
    for id in g.node_ids() {
        let node = g.node(id);
        let Some(n) = constant_parameters(&node.op) else {
            continue;
        };
        p.total += n;
        match component_of_weight(g, id) {
            Some(Component::Embeddings) => p.embeddings += n,
            Some(Component::Layer(i)) => {
                if p.layers.len() <= i {
                    p.layers.resize(i + 1, 0);
                }
                p.layers[i] += n;
            }
            Some(Component::FinalNorm) => p.final_norm += n,
            Some(Component::Pooler) => p.pooler += n,
            Some(Component::Heads) => p.heads += n,
            None => p.unattributed += n,
        }
    }
    p
}

/// Whether `v` is a weight: a constant, or a constant seen through the
/// ops the op table marks as views (layout, dtype and precision) — the
/// tied masked-LM decoder's Transpose of the word embeddings, an f16
/// weight's Cast to f32, an int8 weight's DequantizeLinear (QDQ files).
fn is_weight(g: &Graph, v: Value) -> bool {
    match g.node(v.node).op.schema().cost {
        CostRule::Weight => true,
        CostRule::WeightView => g
            .inputs_of(v.node)
            .first()
            .copied()
            .flatten()
            .is_some_and(|x| is_weight(g, x)),
        CostRule::Uncounted
        | CostRule::MatMul { .. }
        | CostRule::Gemm
        | CostRule::Attention
        | CostRule::PackedAttention => false,
    }
}

fn weight_bytes_of(g: &Graph) -> WeightBytes {
    let mut w = WeightBytes::default();
    for id in g.node_ids() {
        let op = &g.node(id).op;
        if let Op::Constant(t) = op {
            w.stored += t.len() * t.dtype().size();
        }
        let Some(n) = constant_parameters(op) else {
            continue;
        };
        w.fp32 += 4 * n;
        w.fp16 += 2 * n;
    }
    let dynamic = crate::passes::QuantizeInt8::dynamic();
    w.int8 = crate::passes::stored_bytes(g, &dynamic);
    let calibrated = crate::passes::QuantizeInt8 {
        activations: crate::passes::ActivationScales::Static(HashMap::new()),
        ..dynamic
    };
    w.int8_static = crate::passes::stored_bytes(g, &calibrated);
    w
}

/// Simulates running the nodes in canonical order, each output allocated
/// when its node runs and freed after its last reader (graph outputs live to
/// the end); returns the largest total of live activation bytes.
fn peak_activation_bytes(g: &Graph, bind: &Bindings) -> Result<u64, CostError> {
    let order = canonical_order(g);
    let position: HashMap<_, _> = order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let end = order.len();
    // (step at which the value dies, bytes) of every activation.
    let mut frees: Vec<Vec<u64>> = vec![Vec::new(); end + 1];
    let (mut live, mut peak) = (0u64, 0u64);
    for (step, &id) in order.iter().enumerate() {
        let node = g.node(id);
        if !matches!(node.op, Op::Constant(_)) {
            for (slot, info) in node.outputs.iter().enumerate() {
                let elems = bind.elements(&info.shape, &node.name)?;
                let bytes = product([elems, info.dtype.size() as u64])
                    .ok_or_else(|| bind.overflow(&node.name, "activation bytes"))?;
                let v = Value { node: id, slot };
                let last_read = g
                    .consumers(v)
                    .iter()
                    .filter_map(|(user, _)| position.get(user).copied())
                    .max()
                    .unwrap_or(step);
                let dies = if g.is_output(v) { end } else { last_read };
                live = live
                    .checked_add(bytes)
                    .ok_or_else(|| bind.overflow(&node.name, "activation bytes"))?;
                frees[dies].push(bytes);
            }
        }
        peak = peak.max(live);
        live -= frees[step].iter().sum::<u64>();
    }
    Ok(peak)
}
