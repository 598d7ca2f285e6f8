//! `pack_tokens`: runs every per-token computation on the real tokens only.
//!
//! A value `[B, S, rest]` holds one row per position, padding included.
//! Every node that computes its output row at (b, s) from the rows at
//! (b, s) of its inputs alone — linear layers `x·W`, biases, residuals,
//! layer norms and reductions over `rest`, activations, embedding lookups
//! of token ids — gives the same rows at the real tokens when it runs on
//! `[T, rest]`, the real tokens' rows (T = the nonzeros of
//! `attention_mask`, row-major). This pass finds those nodes and rewrites
//! them in place to `[T, rest]`:
//!
//! - an input produced outside the packed region is packed (a Gather of
//!   its flattened rows at the real tokens; `[1, S, rest]` position rows and
//!   `[B, 1, rest]` sequence rows at each token's position or sequence);
//! - a packed value read outside the region (attention, pooling, a head's
//!   first-token slice, a graph output) is unpacked to `[B, S, rest]`, with
//!   zeros at the padding positions.
//!
//! So attention runs on `[B, S]` with its mask as before, and everything
//! between two attentions runs on T rows. Inputs and outputs keep their
//! names, dtypes and shapes; at real positions the numbers are the padded
//! graph's, at padding positions per-token outputs hold zeros (the padded
//! graph computed values there that no caller should read). A first-token
//! head reads position 0: where that is padding (left padding), it reads
//! zeros instead of the padded graph's values for a pad token.
//!
//! Conditions checked: the graph has an integer `attention_mask` input
//! `[B, S]` of two distinct symbols; a node is packed only when its output
//! is `[B, S, rest]` f32 with `rest` fixed, each input is a `[B, S, rest]`,
//! `[1, S, rest]`, `[S, rest]`, `[B, 1, rest]` or fixed-shape value that
//! broadcasts as the op needs, and its axes (reductions, layer norm,
//! softmax) lie in `rest`; MatMul only with a fixed 2-D right operand,
//! Gather only on axis 0 of a fixed table. Regions with no MatMul (a mask
//! cast, a lone Add) are left padded: packing them would cost more than
//! it saves. The graph records `bertc.packed` in its metadata.

use std::collections::{HashMap, HashSet};

use crate::ir::{canonical_order, infer, Dim, Graph, IrError, NodeId, Op, Shape, Value};

use super::token_indices::{Rows, TokenIndices};
use super::{Pass, PassReport};

pub struct PackTokens;

/// The metadata key a packed graph carries: what its padding positions hold.
pub const PACKED_METADATA: &str = "bertc.packed";

/// The graph input whose nonzeros are the real tokens.
const MASK: &str = "attention_mask";

impl Pass for PackTokens {
    fn name(&self) -> &'static str {
        "pack_tokens"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let Some((mask, axes)) = mask_of(g) else {
            return Ok(PassReport::default());
        };
        let region = packed_region(g, &axes);
        if region.is_empty() {
            return Ok(PassReport::default());
        }
        let mut indices = TokenIndices::new(g, mask, "packed")?;
        let in_region: HashSet<NodeId> = region.iter().map(|(id, _)| *id).collect();
        for (id, forms) in &region {
            pack_inputs(g, *id, forms, &in_region, &mut indices)?;
        }
        for &(id, _) in &region {
            unpack_readers(g, id, &in_region, &mut indices)?;
        }
        g.metadata.insert(
            PACKED_METADATA.into(),
            "per-token layers run on the real tokens; padding positions of per-token outputs hold zeros"
                .into(),
        );
        Ok(PassReport {
            matches: region.len(),
            nodes_added: indices.added,
            nodes_removed: 0,
        })
    }
}

/// The batch and sequence symbols, read off the mask.
struct TokenAxes {
    batch: Dim,
    sequence: Dim,
}

/// The `attention_mask` input and its `[B, S]` symbols, when it has them.
fn mask_of(g: &Graph) -> Option<(Value, TokenAxes)> {
    let id = g.inputs().iter().copied().find(|&id| g.node(id).name == MASK)?;
    let mask = Value { node: id, slot: 0 };
    let info = g.info(mask);
    match info.shape.dims() {
        [b @ Dim::Sym(_), s @ Dim::Sym(_)] if b != s && info.dtype.is_int() => Some((
            mask,
            TokenAxes {
                batch: b.clone(),
                sequence: s.clone(),
            },
        )),
        _ => None,
    }
}

/// How an input of a packed node reaches its `[T, rest]` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Gathered at the real tokens: rows stand for the leading `lead` dims.
    Rows(Rows, usize),
    /// Fixed, of the node's rank: its leading 1 is dropped, so it
    /// broadcasts over T as it did over [B, S].
    DropLeading,
    /// Fixed and of lower rank: broadcasts over T as it is.
    AsIs,
}

/// The form of a value of `shape` read by an elementwise node of output
/// rank `rank`, or `None` when it cannot be packed.
fn form_of(shape: &Shape, rank: usize, axes: &TokenAxes) -> Option<Form> {
    let dims = shape.dims();
    let fixed = dims.iter().all(|d| d.fixed().is_some());
    let rest_fixed = |from: usize| dims[from..].iter().all(|d| d.fixed().is_some());
    let one = Dim::Fixed(1);
    if fixed {
        return match dims.len() {
            k if k == rank && k >= 2 && dims[..2] == [one.clone(), one] => Some(Form::DropLeading),
            k if k < rank => Some(Form::AsIs),
            _ => None,
        };
    }
    let (b, s) = (&axes.batch, &axes.sequence);
    match dims.len() {
        k if k == rank && k >= 2 && rest_fixed(2) => match (&dims[0], &dims[1]) {
            (x, y) if x == b && y == s => Some(Form::Rows(Rows::Token, 2)),
            (x, y) if *x == one && y == s => Some(Form::Rows(Rows::Position, 2)),
            (x, y) if x == b && *y == one => Some(Form::Rows(Rows::Sequence, 2)),
            _ => None,
        },
        k if k + 1 == rank && k >= 1 && dims[0] == *s && rest_fixed(1) => Some(Form::Rows(Rows::Position, 1)),
        _ => None,
    }
}

/// Whether `shape` is `[B, S, rest]` with `rest` fixed.
fn token_rows(shape: &Shape, axes: &TokenAxes) -> bool {
    form_of(shape, shape.rank(), axes) == Some(Form::Rows(Rows::Token, 2))
}

/// Whether every axis (of rank `rank`) lies past the first two.
fn within_rows(axes: &[i64], rank: usize) -> bool {
    axes.iter()
        .all(|&a| crate::ir::normalize_axis(a, rank).is_some_and(|a| a >= 2))
}

/// The forms of node `id`'s inputs by slot when it computes each row from
/// the same rows of its inputs; `None` when it does not (or cannot be
/// packed). `None` entries are inputs read as they are.
fn per_token(g: &Graph, id: NodeId, axes: &TokenAxes) -> Option<Vec<Option<Form>>> {
    let node = g.node(id);
    let out = node.outputs.first()?;
    if node.outputs.len() != 1 || out.dtype != crate::ir::DType::F32 || !token_rows(&out.shape, axes) {
        return None;
    }
    let rank = out.shape.rank();
    let inputs = g.inputs_of(id);
    let info = |slot: usize| inputs.get(slot).copied().flatten().map(|v| g.info(v));
    // Each present input must have a form (absent optional ones are read
    // as they are), one at least must be the token rows.
    let elementwise = || -> Option<Vec<Option<Form>>> {
        let mut forms = Vec::with_capacity(inputs.len());
        for v in &inputs {
            forms.push(match v {
                Some(v) => Some(form_of(&g.info(*v).shape, rank, axes)?),
                None => None,
            });
        }
        let tokens = forms.contains(&Some(Form::Rows(Rows::Token, 2)));
        tokens.then_some(forms)
    };
    match &node.op {
        Op::Unary(_)
        | Op::Gelu { .. }
        | Op::Cast { .. }
        | Op::Identity
        | Op::Binary(_)
        | Op::Where
        | Op::Clip => elementwise(),
        Op::ReduceMean { axes: a, .. } | Op::ReduceMax { axes: a, .. } | Op::ReduceMin { axes: a, .. } => {
            let input_rank = info(0)?.shape.rank();
            within_rows(a, input_rank).then(elementwise).flatten()
        }
        Op::Softmax { axis } | Op::LayerNorm { axis, .. } | Op::RmsNorm { axis, .. } => {
            within_rows(&[*axis], rank).then(elementwise).flatten()
        }
        Op::MatMul => {
            let (a, w) = (info(0)?, info(1)?);
            let weight = w.shape.rank() == 2 && w.shape.as_fixed().is_some();
            (weight && a.shape.rank() == 3 && token_rows(&a.shape, axes))
                .then(|| vec![Some(Form::Rows(Rows::Token, 2)), None])
        }
        Op::Gather { axis: 0 } => {
            let (table, ids) = (info(0)?, info(1)?);
            let ids_rows = form_of(&ids.shape, ids.shape.rank(), axes) == Some(Form::Rows(Rows::Token, 2));
            (table.shape.as_fixed().is_some() && ids_rows)
                .then(|| vec![None, Some(Form::Rows(Rows::Token, 2))])
        }
        _ => None,
    }
}

/// The nodes to pack with their inputs' forms, in topological order: the
/// per-token nodes, less the connected groups of them that hold no MatMul.
/// Found before anything changes (packing a node's inputs changes what
/// its readers see).
fn packed_region(g: &Graph, axes: &TokenAxes) -> Vec<(NodeId, Vec<Option<Form>>)> {
    let order = canonical_order(g);
    let mut forms: HashMap<NodeId, Vec<Option<Form>>> = order
        .iter()
        .filter_map(|&id| per_token(g, id, axes).map(|f| (id, f)))
        .collect();
    let candidates: HashSet<NodeId> = forms.keys().copied().collect();
    // Union-find over the edges between candidates.
    let mut parent: HashMap<NodeId, NodeId> = candidates.iter().map(|&id| (id, id)).collect();
    fn root(parent: &mut HashMap<NodeId, NodeId>, mut id: NodeId) -> NodeId {
        while parent[&id] != id {
            let up = parent[&parent[&id]];
            parent.insert(id, up);
            id = up;
        }
        id
    }
    for &id in &candidates {
        for v in g.inputs_of(id).into_iter().flatten() {
            if candidates.contains(&v.node) {
                let (a, b) = (root(&mut parent, id), root(&mut parent, v.node));
                parent.insert(a, b);
            }
        }
    }
    let mut heavy: HashSet<NodeId> = HashSet::new();
    for &id in &candidates {
        if matches!(g.node(id).op, Op::MatMul) {
            heavy.insert(root(&mut parent, id));
        }
    }
    order
        .into_iter()
        .filter(|id| candidates.contains(id) && heavy.contains(&root(&mut parent, *id)))
        .filter_map(|id| forms.remove(&id).map(|f| (id, f)))
        .collect()
}

/// Rewrites node `id` of the region to `[T, rest]`: its outside inputs
/// packed as `forms` says, its axes counted on the packed rank, its output
/// type inferred again (its inputs from the region were rewritten before it).
fn pack_inputs(
    g: &mut Graph,
    id: NodeId,
    forms: &[Option<Form>],
    region: &HashSet<NodeId>,
    indices: &mut TokenIndices,
) -> Result<(), IrError> {
    for (slot, (v, form)) in g.inputs_of(id).into_iter().zip(forms.iter().copied()).enumerate() {
        let (Some(v), Some(form)) = (v, form) else {
            continue;
        };
        if region.contains(&v.node) {
            continue;
        }
        let packed = match form {
            Form::Rows(rows, lead) => indices.pack(g, v, rows, lead)?,
            Form::DropLeading => {
                let name = g.fresh_name(&format!("{}.drop_leading", g.node(v.node).name));
                indices.added += 1;
                g.add(&name, Op::Squeeze { axes: vec![0] }, &[v])?
            }
            Form::AsIs => continue,
        };
        g.set_input(id, slot, packed);
    }
    let node = g.node(id);
    let op = packed_op(&node.op);
    let infos: Vec<_> = g
        .inputs_of(id)
        .into_iter()
        .map(|v| v.map(|v| g.info(v).clone()))
        .collect();
    let refs: Vec<_> = infos.iter().map(Option::as_ref).collect();
    let outputs = infer(&op, &refs).map_err(|reason| IrError::Infer {
        node: node.name.clone(),
        op: op.kind(),
        reason,
    })?;
    let node = g.node_mut(id);
    node.op = op;
    node.outputs = outputs;
    Ok(())
}

/// `op` on rows of one rank less: non-negative axes move down by one
/// (they lie past [B, S], checked by [`per_token`]).
fn packed_op(op: &Op) -> Op {
    let down = |a: i64| if a >= 0 { a - 1 } else { a };
    match op {
        Op::ReduceMean { axes, keepdims } => Op::ReduceMean {
            axes: axes.iter().map(|&a| down(a)).collect(),
            keepdims: *keepdims,
        },
        Op::ReduceMax { axes, keepdims } => Op::ReduceMax {
            axes: axes.iter().map(|&a| down(a)).collect(),
            keepdims: *keepdims,
        },
        Op::ReduceMin { axes, keepdims } => Op::ReduceMin {
            axes: axes.iter().map(|&a| down(a)).collect(),
            keepdims: *keepdims,
        },
        Op::Softmax { axis } => Op::Softmax { axis: down(*axis) },
        Op::LayerNorm { axis, epsilon } => Op::LayerNorm {
            axis: down(*axis),
            epsilon: *epsilon,
        },
        Op::RmsNorm { axis, epsilon } => Op::RmsNorm {
            axis: down(*axis),
            epsilon: *epsilon,
        },
        other => other.clone(),
    }
}

/// Points every reader of node `id`'s output outside the region, and the
/// graph outputs, at its unpacked `[B, S, rest]` form.
fn unpack_readers(
    g: &mut Graph,
    id: NodeId,
    region: &HashSet<NodeId>,
    indices: &mut TokenIndices,
) -> Result<(), IrError> {
    let v = Value { node: id, slot: 0 };
    let outside: Vec<(NodeId, usize)> = g
        .consumers(v)
        .into_iter()
        .filter(|(c, _)| !region.contains(c))
        .collect();
    if outside.is_empty() && !g.is_output(v) {
        return Ok(());
    }
    let unpacked = indices.unpack(g, v)?;
    for (reader, slot) in outside {
        g.set_input(reader, slot, unpacked);
    }
    g.redirect_outputs(v, unpacked);
    Ok(())
}
