//! The sentence-embedding head of an imported graph, recognised by what it
//! computes: sentence-transformers' pooling of the token embeddings (the
//! mean over the attention mask, the first token, or the maximum) and,
//! when the model has a Normalize module, the L2 normalisation after it —
//! as Optimum's and onnxruntime's files write them (`ReduceSum` of the
//! masked tokens over `Clip(ReduceSum(mask))`, `Div` by
//! `Expand(Clip(ReduceL2))`, a one-input `Concat` around the pooling).
//! `bertc run` reads such a file's `sentence_embedding` output as the
//! sentence vector; the summary says which head it recognised.

use std::fmt;

use crate::ir::{BinaryOp, Graph, Op, Value};

/// How an imported graph's `sentence_embedding` is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceHead {
    pub pooling: Pooling,
    /// Divided by its L2 norm (sentence-transformers' Normalize module).
    pub normalized: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The token embeddings summed under the mask, over the mask's sum.
    Mean,
    /// The first token's embedding.
    Cls,
    /// The maximum over the tokens.
    Max,
}

impl fmt::Display for SentenceHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pooling = match self.pooling {
            Pooling::Mean => "mean pooling",
            Pooling::Cls => "first-token pooling",
            Pooling::Max => "max pooling",
        };
        let normalized = if self.normalized { ", L2-normalized" } else { "" };
        write!(
            f,
            "sentence-embedding ({pooling}{normalized}; recognised in the imported graph)"
        )
    }
}

/// The head computing `g`'s `sentence_embedding` output, if it is one
/// of sentence-transformers' poolings.
pub fn sentence_head(g: &Graph) -> Option<SentenceHead> {
    let out = g
        .outputs()
        .iter()
        .find(|(name, _)| name == "sentence_embedding")?
        .1;
    let (pooled, normalized) = match l2_normalized(g, out) {
        Some(x) => (x, true),
        None => (out, false),
    };
    let pooling = pooling(g, passed_through(g, pooled))?;
    Some(SentenceHead { pooling, normalized })
}

/// `x` when `v` is `x` divided by its L2 norm (clipped away from 0,
/// expanded to x's shape).
fn l2_normalized(g: &Graph, v: Value) -> Option<Value> {
    let [x, norm] = binary(g, v, BinaryOp::Div)?;
    let norm = passed_through(g, norm);
    match &g.node(norm.node).op {
        Op::ReduceL2 { .. } if first_input(g, norm) == Some(x) => Some(x),
        _ => None,
    }
}

fn pooling(g: &Graph, v: Value) -> Option<Pooling> {
    match &g.node(v.node).op {
        Op::Binary(BinaryOp::Div) => {
            let [sum, count] = binary(g, v, BinaryOp::Div)?;
            let masked = matches!(g.node(sum.node).op, Op::ReduceSum { .. })
                .then(|| first_input(g, sum))
                .flatten()
                .filter(|m| matches!(g.node(m.node).op, Op::Binary(BinaryOp::Mul)));
            let count = passed_through(g, count);
            (masked.is_some() && matches!(g.node(count.node).op, Op::ReduceSum { .. }))
                .then_some(Pooling::Mean)
        }
        Op::Gather { axis: 1 } => {
            let index = g.inputs_of(v.node).get(1).copied().flatten()?;
            match &g.node(index.node).op {
                Op::Constant(t) if t.to_i64_vec()? == [0] => Some(Pooling::Cls),
                _ => None,
            }
        }
        Op::ReduceMax { .. } => Some(Pooling::Max),
        _ => None,
    }
}

/// `v` past the ops that keep its values: a one-input Concat, Identity,
/// and — for a norm or a count — the Clip / Max that keep it from 0 and
/// the Expand to the embedding's shape.
fn passed_through(g: &Graph, mut v: Value) -> Value {
    loop {
        let inputs = g.inputs_of(v.node);
        let keeps = match &g.node(v.node).op {
            Op::Concat { .. } => inputs.len() == 1,
            Op::Identity | Op::Clip | Op::Expand | Op::Binary(BinaryOp::Max) => true,
            _ => false,
        };
        match inputs.first().copied().flatten() {
            Some(first) if keeps => v = first,
            _ => return v,
        }
    }
}

fn binary(g: &Graph, v: Value, op: BinaryOp) -> Option<[Value; 2]> {
    match (&g.node(v.node).op, g.inputs_of(v.node).as_slice()) {
        (Op::Binary(b), [Some(x), Some(y)]) if *b == op => Some([*x, *y]),
        _ => None,
    }
}

fn first_input(g: &Graph, v: Value) -> Option<Value> {
    g.inputs_of(v.node).first().copied().flatten()
}
