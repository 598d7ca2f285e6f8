//! DeBERTa's 2-D padding mask, `m_i · m_j`, restated as a key mask plus
//! uniform rows for the padded queries — the form bertc's own DeBERTa
//! graphs have (builder/disentangled.rs), which `fuse_attention` reads.
//!
//! transformers' DeBERTa masks the scores with `masked_fill` under the
//! outer product of the padding mask with itself, so a padded query sees
//! no key: its row of scores is all `finfo.min` and its softmax uniform
//! over every key. Runtimes' fused attention kernels disagree on a fully
//! masked row (onnxruntime's Attention does not give it uniform weights),
//! so the row is computed as what it is, the mean of the values:
//!
//! ```text
//! Where(Not(Cast<bool>(m_j · m_i)), fill, scores) → softmax → · V → merge heads
//!   = Where(padded_i, mean_j V, merged(softmax(Where(Not(Cast<bool>(m_j)), fill, scores)) · V))
//! ```
//!
//! where PyTorch's exports write `m_i` as `Unsqueeze(Squeeze(m_j, axis 2), -1)`
//! of the key mask `m_j` ([B, 1, 1, S]). A real query's row is the same
//! under both masks (`m_i` is 1 there).

use crate::ir::{BinaryOp, DType, Dim, Graph, IrError, NodeId, Op, Tensor, UnaryOp, Value};

use super::attention_heads::split_heads;
use super::attention_mask::LOWEST_FILL;
use super::pattern::{input, only_read_by, operands, producer, scalar};

/// One attention masked by `m_i · m_j`.
struct Match {
    /// The `Where` that masks the scores.
    select: NodeId,
    /// `m_j`, [B, 1, 1, S].
    keys: Value,
    /// The merged context [B, S, n·d], and V before its head split.
    merged: Value,
    v: Value,
}

/// Restates every such attention in `g`; returns how many.
pub(super) fn restate(g: &mut Graph) -> Result<usize, IrError> {
    let matches: Vec<Match> = g.node_ids().filter_map(|id| match_at(g, id)).collect();
    for m in &matches {
        let base = g.node(m.select).name.clone();
        let fresh = |g: &Graph, s: &str| g.fresh_name(&format!("{base}.{s}"));
        // `m == 0` is `Not(Cast<bool>(m))`, in the form bertc's own masks
        // (and tract's kernels) take.
        let zero = g.add_const(&fresh(g, "zero"), Tensor::scalar_i64(0))?;
        let hidden = g.add(
            &fresh(g, "key_hidden"),
            Op::Binary(BinaryOp::Equal),
            &[m.keys, zero],
        )?;
        g.set_input(m.select, 0, hidden);
        // [B, 1, 1, S] → [B, S, 1]: which queries are padding.
        let rows = g.add(&fresh(g, "query_rows"), Op::Squeeze { axes: vec![1] }, &[m.keys])?;
        let rows = g.add(
            &fresh(g, "query_mask"),
            Op::Transpose { perm: vec![0, 2, 1] },
            &[rows],
        )?;
        let padded = g.add(
            &fresh(g, "query_padded"),
            Op::Binary(BinaryOp::Equal),
            &[rows, zero],
        )?;
        let uniform = g.add(
            &fresh(g, "uniform"),
            Op::ReduceMean {
                axes: vec![1],
                keepdims: true,
            },
            &[m.v],
        )?;
        let fixed = g.add(
            &fresh(g, "padded_queries_uniform"),
            Op::Where,
            &[padded, uniform, m.merged],
        )?;
        g.replace_uses(m.merged, fixed);
        g.set_input(fixed.node, 2, m.merged);
    }
    Ok(matches.len())
}

fn match_at(g: &Graph, select: NodeId) -> Option<Match> {
    let masked = Value {
        node: select,
        slot: 0,
    };
    if g.node(select).op != Op::Where || g.info(masked).shape.rank() != 4 {
        return None;
    }
    let fill = scalar(g, input(g, select, 1)?)?;
    let not = input(g, select, 0)?;
    if fill > LOWEST_FILL || producer(g, not).op != Op::Unary(UnaryOp::Not) {
        return None;
    }
    let cast = input(g, not.node, 0)?;
    if producer(g, cast).op != (Op::Cast { to: DType::Bool }) {
        return None;
    }
    let product = input(g, cast.node, 0)?;
    if producer(g, product).op != Op::Binary(BinaryOp::Mul) || g.info(product).dtype != DType::I64 {
        return None;
    }
    let (a, b) = operands(g, product.node)?;
    let keys = [(a, b), (b, a)]
        .into_iter()
        .find_map(|(keys, queries)| is_outer_pair(g, keys, queries).then_some(keys))?;
    // softmax → · V (heads) → [0, 2, 1, 3] → [B, S, n·d], each read once.
    let probs = single_reader(g, masked)?;
    if !matches!(g.node(probs).op, Op::Softmax { axis: -1 | 3 }) {
        return None;
    }
    let probs = Value { node: probs, slot: 0 };
    let ctx = single_reader(g, probs)?;
    let (p, vh) = operands(g, ctx)?;
    if g.node(ctx).op != Op::MatMul || p != probs {
        return None;
    }
    let heads = split_heads(g, vh, &[0, 2, 1, 3])?;
    let ctx = Value { node: ctx, slot: 0 };
    let transposed = single_reader(g, ctx)?;
    let merge = Op::Transpose {
        perm: vec![0, 2, 1, 3],
    };
    if g.node(transposed).op != merge {
        return None;
    }
    let transposed = Value {
        node: transposed,
        slot: 0,
    };
    let merged = single_reader(g, transposed)?;
    let merged = Value {
        node: merged,
        slot: 0,
    };
    let fits = producer(g, merged).op == Op::Reshape && g.info(merged).shape == g.info(heads.x).shape;
    fits.then_some(Match {
        select,
        keys,
        merged,
        v: heads.x,
    })
}

/// Whether `keys` is [B, 1, 1, S] and `queries` its transpose
/// `Unsqueeze(Squeeze(keys, axis 2), axis -1)` ([B, 1, S, 1]).
fn is_outer_pair(g: &Graph, keys: Value, queries: Value) -> bool {
    let dims = g.info(keys).shape.dims();
    let key_shaped = dims.len() == 4 && dims[1] == Dim::Fixed(1) && dims[2] == Dim::Fixed(1);
    let unsqueezed =
        matches!(&producer(g, queries).op, Op::Unsqueeze { axes } if axes[..] == [-1] || axes[..] == [3]);
    let Some(squeezed) = input(g, queries.node, 0) else {
        return false;
    };
    let squeezes_keys = producer(g, squeezed).op == (Op::Squeeze { axes: vec![2] })
        && input(g, squeezed.node, 0) == Some(keys);
    key_shaped && unsqueezed && squeezes_keys
}

/// The one node reading `v`, when exactly one does (and `v` is no output).
fn single_reader(g: &Graph, v: Value) -> Option<NodeId> {
    match g.consumers(v)[..] {
        [(reader, _)] if only_read_by(g, v, &[reader]) => Some(reader),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{folded_heads, level_passes, Level, PassManager};

    /// The DeBERTa export at -O1, its folded heads restated: what
    /// `fuse_attention` restates the mask of.
    fn deberta_unfolded() -> Graph {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/foreign-modern/deberta-v3-base-optimum.onnx");
        let mut g = crate::onnx::read_model(&path).unwrap();
        PassManager::from_names(level_passes(Level::O1))
            .unwrap()
            .run(&mut g)
            .unwrap();
        // Each layer's scores and context.
        assert_eq!(folded_heads::restate(&mut g).unwrap(), 4);
        g
    }

    /// Both layers' masks are `m_i · m_j` of one mask: restated.
    #[test]
    fn the_outer_product_of_one_mask_is_restated_in_every_layer() {
        let mut g = deberta_unfolded();
        assert_eq!(restate(&mut g).unwrap(), 2);
        // Nothing left to restate.
        assert_eq!(restate(&mut g).unwrap(), 0);
    }

    /// A product of two different masks hides keys a query mask cannot
    /// describe: left as it is.
    #[test]
    fn a_product_of_different_masks_is_not_restated() {
        let mut g = deberta_unfolded();
        let product = g
            .node_ids()
            .find(|&id| {
                let v = Value { node: id, slot: 0 };
                g.node(id).op == Op::Binary(BinaryOp::Mul)
                    && g.info(v).dtype == DType::I64
                    && g.info(v).shape.rank() == 4
            })
            .expect("the 2-D mask");
        let keys = input(&g, product, 0).unwrap();
        let one = g
            .add_const("other.one", crate::ir::Tensor::scalar_i64(1))
            .unwrap();
        let other = g.add("other", Op::Binary(BinaryOp::Mul), &[keys, one]).unwrap();
        g.set_input(product, 0, other);
        assert_eq!(restate(&mut g).unwrap(), 0);
    }
}
