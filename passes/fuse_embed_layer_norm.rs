//! `fuse_embed_layer_norm` (target onnxruntime): BERT's embeddings —
//! `LayerNormalization(word[input_ids] + segment[token_type_ids] +
//! position[0..S])`, the three terms in any order — → com.microsoft
//! `EmbedLayerNormalization` with int32 ids (casts added). The position term
//! must gather rows 0..S of its table (a Slice of an arange buffer starting
//! at 0), which is what the op computes itself.

use crate::ir::{BinaryOp, ContribOp, DType, Graph, IrError, NodeId, Op, Value};

use super::pattern::{constant, fused_name, input, only_read_by, operands, producer};
use super::{Pass, PassReport};

pub struct FuseEmbedLayerNorm;

struct Match {
    root: NodeId,
    nodes: Vec<NodeId>,
    input_ids: Value,
    segment_ids: Value,
    tables: [Value; 3],
    gamma: Value,
    beta: Value,
    epsilon: f32,
}

impl Pass for FuseEmbedLayerNorm {
    fn name(&self) -> &'static str {
        "fuse_embed_layer_norm"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
        for m in &matches {
            let name = fused_name(g, m.root, &m.nodes, "EmbedLayerNormalization");
            let cast = |g: &mut Graph, v: Value, what: &str| {
                let n = g.fresh_name(&format!("{name}.{what}_i32"));
                g.add(&n, Op::Cast { to: DType::I32 }, &[v])
            };
            let ids = cast(g, m.input_ids, "input_ids")?;
            let segments = cast(g, m.segment_ids, "segment_ids")?;
            let [word, position, segment] = m.tables;
            let op = Op::Contrib(ContribOp::EmbedLayerNorm { epsilon: m.epsilon });
            let inputs = [ids, segments, word, position, segment, m.gamma, m.beta].map(Some);
            let fused = g.add_node(&name, op, &inputs)?;
            g.replace_uses(
                Value {
                    node: m.root,
                    slot: 0,
                },
                Value { node: fused, slot: 0 },
            );
        }
        Ok(PassReport {
            matches: matches.len(),
            nodes_added: 3 * matches.len(),
            nodes_removed: 0,
        })
    }
}

fn graph_input_named(g: &Graph, v: Value, name: &str) -> bool {
    g.inputs().contains(&v.node) && g.node(v.node).name == name
}

/// Whether `ids` are rows 0..S of a position table: `Slice(arange, [0], S)`.
fn is_position_range(g: &Graph, ids: Value, seq: &crate::ir::Dim) -> bool {
    if producer(g, ids).op != Op::Slice {
        return false;
    }
    let (Some(buffer), Some(start)) = (input(g, ids.node, 0), input(g, ids.node, 1)) else {
        return false;
    };
    let is_arange = constant(g, buffer)
        .and_then(|t| t.to_i64_vec())
        .is_some_and(|v| v.iter().enumerate().all(|(i, &x)| x == i as i64));
    let starts_at_zero = constant(g, start)
        .and_then(|t| t.to_i64_vec())
        .is_some_and(|v| v == [0]);
    is_arange && starts_at_zero && g.info(ids).shape.dims().last() == Some(seq)
}

fn match_at(g: &Graph, root: NodeId) -> Option<Match> {
    let Op::LayerNorm { axis: -1, epsilon } = producer(g, Value { node: root, slot: 0 }).op else {
        return None;
    };
    let outer = input(g, root, 0)?;
    let add = |v: Value| producer(g, v).op == Op::Binary(BinaryOp::Add);
    if !add(outer) || !only_read_by(g, outer, &[root]) {
        return None;
    }
    // The three terms: one Add inside the other.
    let (p, q) = operands(g, outer.node)?;
    let (inner, last) = if add(p) { (p, q) } else { (q, p) };
    if !add(inner) || !only_read_by(g, inner, &[outer.node]) {
        return None;
    }
    let (a, b) = operands(g, inner.node)?;
    let (mut word, mut segment, mut position) = (None, None, None);
    let mut input_ids = None;
    let mut gathers = Vec::new();
    for term in [a, b, last] {
        if producer(g, term).op != (Op::Gather { axis: 0 })
            || !only_read_by(g, term, &[inner.node, outer.node])
        {
            return None;
        }
        let (table, ids) = (input(g, term.node, 0)?, input(g, term.node, 1)?);
        constant(g, table)?;
        gathers.push(term.node);
        if graph_input_named(g, ids, "input_ids") {
            word = Some(table);
            input_ids = Some(ids);
        } else if graph_input_named(g, ids, "token_type_ids") {
            segment = Some((table, ids));
        } else {
            position = Some((table, ids));
        }
    }
    let input_ids = input_ids?;
    let seq = g.info(input_ids).shape.dims().get(1)?.clone();
    let (position, position_ids) = position?;
    if !is_position_range(g, position_ids, &seq) {
        return None;
    }
    let (segment, segment_ids) = segment?;
    let mut nodes = gathers;
    nodes.extend([inner.node, outer.node, root]);
    Some(Match {
        root,
        nodes,
        input_ids,
        segment_ids,
        tables: [word?, position, segment],
        gamma: input(g, root, 1)?,
        beta: input(g, root, 2)?,
        epsilon,
    })
}
