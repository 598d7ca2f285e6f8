//! The linear layers the int8 passes rewrite, and how they are tied
//! together: linears reading one input (Q, K and V) and linears reading one
//! weight (every layer of ALBERT reads its group's single set of weights,
//! which the builder stores once).
//!
//! A weight is quantized and stored once however many linears read it: the
//! passes keep [`QuantizedWeights`], the int8 constants made per weight
//! constant (and the row factors folded into it), and every reader reads
//! those. Whatever is folded into a weight's rows (SmoothQuant factors,
//! zeroed outlier rows) is therefore decided per [`SiteGroup`] — the linears
//! connected through shared inputs or shared weights — so that all readers
//! of a weight agree on it. In a model without shared weights a group is
//! one input and the linears reading it, which is what the factors were
//! always computed over.

use std::collections::{HashMap, HashSet};

use crate::ir::{BinaryOp, Graph, IrError, NodeId, Op, Value};
use crate::numeric::le_f32;

use super::pattern::{bias_free_linear, constant, linear};

/// One linear layer an int8 pass rewrites: `Add(MatMul(x, W), b)`, or a
/// bare `MatMul(x, W)` where the layer has no bias (NomicBERT's encoder).
pub(super) struct LinearSite {
    /// The layer's output, which the rewrite replaces: the bias Add's, or
    /// the MatMul's when there is no bias.
    pub(super) out: Value,
    /// This layer's MatMul: of the readers of `w` (twelve in ALBERT), the
    /// one this site owns.
    pub(super) matmul: NodeId,
    pub(super) x: Value,
    pub(super) w: Value,
    /// The bias; `None` for a Linear without one, whose rewrite ends at the
    /// dequantized product.
    pub(super) b: Option<Value>,
}

/// The linear layers to quantize, in canonical order: not skipped by name,
/// not a head's last projection (see [`head_projection`]),
/// their MatMul read only by their Add (when they have a bias), their
/// input computed at run time.
pub(super) fn linear_sites(g: &Graph, skip: &[String]) -> Vec<LinearSite> {
    let sites = every_linear_site(g);
    // Over every site, whatever is skipped by name: which Linears are a
    // head's last is the model's structure, not the user's choice.
    let feeding = feeding_linears(g, &sites);
    let narrowest_feeding = sites
        .iter()
        .filter(|s| feeding.contains(&s.out.node))
        .filter_map(|s| output_width(g, s))
        .min();
    sites
        .into_iter()
        .filter(|site| {
            let name = &g.node(site.out.node).name;
            let skipped = skip.iter().any(|p| name.contains(p.as_str()));
            !skipped && !head_projection(g, site, &feeding, narrowest_feeding)
        })
        .collect()
}

/// Every linear layer with its input computed at run time, in canonical
/// order, head projections included.
pub(super) fn every_linear_site(g: &Graph) -> Vec<LinearSite> {
    crate::ir::canonical_order(g)
        .into_iter()
        .filter_map(|id| site_at(g, Value { node: id, slot: 0 }))
        .filter(|site| constant(g, site.x).is_none())
        .collect()
}

/// A head's last projection — a Linear no other Linear reads, narrower
/// than every Linear that others read (a classifier's `num_labels`, a span
/// head's 2) — stays f32, as onnxruntime's and
/// Optimum's users keep the classifier out of `quantize_dynamic`
/// (`nodes_to_exclude`). Its error reaches the logits with nothing after it
/// to average it out, and a row of 2–5 logits turns it into a large angle
/// (worst logit row against f32: modernbert-tok 0.989 → 0.9955 in
/// onnxruntime's dynamic form; deberta-v3-cls static Q/DQ 0.978 → 0.995;
/// deberta-v1-cls static in tract 0.991 → 0.9996). It costs nothing worth
/// having: `hidden × num_labels` multiply-adds per token against
/// `12 × hidden²` per layer. A masked-LM decoder (as wide as the
/// vocabulary), the last layer's own Linears (as wide as the model) and a
/// pooler (read by the classifier) are quantized as before.
fn head_projection(
    g: &Graph,
    site: &LinearSite,
    feeding: &HashSet<NodeId>,
    narrowest_feeding: Option<usize>,
) -> bool {
    let narrower = output_width(g, site)
        .zip(narrowest_feeding)
        .is_some_and(|(n, narrowest)| n < narrowest);
    narrower && !feeding.contains(&site.out.node)
}

/// The output columns of a site's weight.
fn output_width(g: &Graph, site: &LinearSite) -> Option<usize> {
    match constant(g, site.w)?.dims() {
        &[_, n] => Some(n),
        _ => None,
    }
}

/// Every node some matrix product reads, directly or not: the linear
/// sites' inputs, and the operands of every other MatMul (a masked-LM
/// decoder reading its tied table through a Transpose reads ALBERT's
/// narrower MLM transform, which is no head's last projection).
fn feeding_linears(g: &Graph, sites: &[LinearSite]) -> HashSet<NodeId> {
    let mut seen = HashSet::new();
    let products = g
        .node_ids()
        .filter(|&id| g.node(id).op == Op::MatMul)
        .flat_map(|id| g.inputs_of(id).into_iter().flatten().map(|v| v.node));
    let mut stack: Vec<NodeId> = sites.iter().map(|s| s.x.node).chain(products).collect();
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            stack.extend(g.inputs_of(id).into_iter().flatten().map(|v| v.node));
        }
    }
    seen
}

/// The linear layer whose output is `out`: a biased one whose MatMul only
/// its Add reads, or a bias-free one (see [`bias_free_linear`]).
fn site_at(g: &Graph, out: Value) -> Option<LinearSite> {
    if let Some(l) = linear(g, out) {
        return (g.consumers(l.matmul).len() == 1).then_some(LinearSite {
            out,
            matmul: l.matmul.node,
            x: l.x,
            w: l.w,
            b: Some(l.b),
        });
    }
    let (x, w) = bias_free_linear(g, out)?;
    Some(LinearSite {
        out,
        matmul: out.node,
        x,
        w,
        b: None,
    })
}
/// What made a linear input that is an FFN's hidden activation (the
/// input of its output layer): the inputs whose rows and channels spread
/// most, which the int8 passes scale apart from the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FfnHidden {
    /// A Gelu's output (BERT's FFN): never below -0.17.
    Gelu,
    /// A gated linear unit's product `up · act(gate)` (NomicBERT's SwiGLU,
    /// GTE's GeGLU): of either sign, with the same per-token and
    /// per-channel outliers.
    Gated,
}

/// Whether `x` is an FFN's hidden activation, and which kind.
pub(super) fn ffn_hidden(g: &Graph, x: Value) -> Option<FfnHidden> {
    match g.node(x.node).op {
        Op::Gelu { .. } => Some(FfnHidden::Gelu),
        Op::Binary(BinaryOp::Mul) => gated_product(g, x).then_some(FfnHidden::Gated),
        _ => None,
    }
}

/// `Mul(up, act)` with `up` a linear layer's output (or a slice of it) and `act` computed at
/// run time from something else (the gate): not from `up`, so that an
/// activation written as a product (silu's `g · sigmoid(g)`, quick-gelu's
/// `g · sigmoid(1.702 g)`) is not one.
fn gated_product(g: &Graph, x: Value) -> bool {
    let Some((a, b)) = super::pattern::operands(g, x.node) else {
        return false;
    };
    // `up` is a Linear's output, or one half of it (GTE's packed
    // `up_gate_proj`, sliced into up and gate).
    let linear_output = |v: Value| match g.node(v.node).op {
        Op::Slice => super::pattern::input(g, v.node, 0).is_some_and(|x| site_at(g, x).is_some()),
        _ => site_at(g, v).is_some(),
    };
    let gated =
        |up: Value, act: Value| linear_output(up) && constant(g, act).is_none() && !computed_from(g, act, up);
    gated(a, b) || gated(b, a)
}

/// Whether `v` is `from` or computed from it.
fn computed_from(g: &Graph, v: Value, from: Value) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        if v == from {
            return true;
        }
        if seen.insert(v.node) {
            stack.extend(g.inputs_of(v.node).into_iter().flatten());
        }
    }
    false
}

/// Linear sites connected through a shared input or a shared weight: the
/// inputs and the weights they read, each once, in the sites' order.
#[derive(Debug, Default)]
pub(super) struct SiteGroup {
    pub(super) inputs: Vec<Value>,
    pub(super) weights: Vec<Value>,
}

/// The [`SiteGroup`]s of `sites`: the connected components of the
/// bipartite graph whose edges are the sites, each joining the input and
/// the weight it reads; in the order of their first site.
pub(super) fn site_groups<'a>(sites: impl IntoIterator<Item = &'a LinearSite>) -> Vec<SiteGroup> {
    let sites: Vec<&LinearSite> = sites.into_iter().collect();
    // Union-find over the values read (inputs and weights alike).
    let mut index: HashMap<Value, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for s in &sites {
        let [a, b] = [s.x, s.w].map(|v| {
            *index.entry(v).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            })
        });
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        parent[ra.max(rb)] = ra.min(rb);
    }
    let mut number: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<SiteGroup> = Vec::new();
    for s in &sites {
        let r = root(&mut parent, index[&s.x]);
        let next = groups.len();
        let n = *number.entry(r).or_insert(next);
        if n == groups.len() {
            groups.push(SiteGroup::default());
        }
        let group = &mut groups[n];
        if !group.inputs.contains(&s.x) {
            group.inputs.push(s.x);
        }
        if !group.weights.contains(&s.w) {
            group.weights.push(s.w);
        }
    }
    groups
}

/// The largest |W[k, n]| of each row k over `weights` (2-D f32 constants of
/// one height), read in place.
pub(super) fn row_abs_max(g: &Graph, weights: &[Value]) -> Vec<f32> {
    let mut max: Vec<f32> = Vec::new();
    for &w in weights {
        let t = constant(g, w).expect("a linear weight is a constant");
        let (k, n) = (t.dims()[0], t.dims()[1]);
        max.resize(k, 0.0);
        let raw = t.f32_le_bytes().expect("a linear weight is f32");
        for (m, row) in max.iter_mut().zip(raw.chunks_exact(4 * n.max(1))) {
            *m = row.chunks_exact(4).fold(*m, |m, v| m.max(le_f32(v).abs()));
        }
    }
    max
}

/// SmoothQuant's per-channel factors `f_k = factor(r_k, w_k)`, normally
/// `r_k^α / w_k^(1-α)` (1 where either is 0), from the input channels'
/// ranges `r` and the weights' row maxima `w`: `x·W = (x / f)·(f·W)` moves
/// the share α of each channel's range from the activation into the
/// weight's row. The caller writes the power: with α a literal 0.5 the
/// compiler turns `powf` into a correctly rounded `sqrt`, which a runtime α
/// does not get, and each pass keeps the factors it always wrote.
pub(super) fn smoothing(ranges: &[f32], row_max: &[f32], factor: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    ranges
        .iter()
        .zip(row_max)
        .map(|(&r, &w)| match r > 0.0 && w > 0.0 {
            true => factor(r, w),
            false => 1.0,
        })
        .collect()
}

/// The channel ranges of a group's inputs merged into one: each channel's
/// largest range over the inputs (a single input's ranges as they are).
pub(super) fn merged_ranges(inputs: &[&[f32]]) -> Vec<f32> {
    let mut merged = inputs.first().map_or_else(Vec::new, |r| r.to_vec());
    for r in inputs.iter().skip(1) {
        merged.iter_mut().zip(r.iter()).for_each(|(m, &r)| *m = m.max(r));
    }
    merged
}

/// The int8 constants made for each weight, so that a weight read by many
/// linears is quantized and stored once and each reader reads that copy.
/// Keyed by the weight and the row factors folded into it (their bits):
/// [`site_groups`] make those equal for every reader of a weight; readers
/// that still differ (a weight read by a smoothed input and by a plain one)
/// get one copy per set of factors, each correct.
pub(super) struct QuantizedWeights<T> {
    made: HashMap<(Value, Vec<u32>), T>,
}

impl<T: Clone> QuantizedWeights<T> {
    pub(super) fn new() -> QuantizedWeights<T> {
        QuantizedWeights { made: HashMap::new() }
    }

    /// What `make` made for `w` with `rows` folded in, made on first use.
    pub(super) fn get_or_make(
        &mut self,
        w: Value,
        rows: Option<&[f32]>,
        make: impl FnOnce() -> Result<T, IrError>,
    ) -> Result<T, IrError> {
        let key = (
            w,
            rows.map_or_else(Vec::new, |r| r.iter().map(|f| f.to_bits()).collect()),
        );
        if let Some(done) = self.made.get(&key) {
            return Ok(done.clone());
        }
        let done = make()?;
        self.made.insert(key, done.clone());
        Ok(done)
    }
}

/// Whether more than one of `sites` reads `w`: its int8 constants are then
/// named after the weight, not after the first linear that reads it.
pub(super) fn read_by_many(sites: &[LinearSite], w: Value) -> bool {
    sites.iter().filter(|s| s.w == w).nth(1).is_some()
}
