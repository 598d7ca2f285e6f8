//! The family's weight-name map applied: the builder names every
//! parameter as BERT does, and the family's checkpoints name it as its row
//! of the family table says ([`crate::family::LayerNames`]).

use crate::config::BertConfig;
use crate::family::{LayerPath, NormKind};

/// The family's name of a parameter the builder names as BERT does.
/// Whether the norm `prefix` (BERT's name) has a bias: RMSNorm never
/// does; a layer norm as [`has_bias`] says.
pub(super) fn norm_has_bias(c: &BertConfig, prefix: &str) -> bool {
    c.family.spec().norms.kind() == NormKind::LayerNorm && has_bias(c, prefix)
}

/// ALBERT maps every layer onto its shared group's layer, so several
/// canonical names give one stored tensor.
pub(super) fn param_name(c: &BertConfig, canonical: &str) -> String {
    let Some((i, suffix)) = layer_part(canonical) else {
        return renamed(c.family.spec().renames, canonical);
    };
    let layers = &c.family.spec().layers;
    let suffix = renamed(layers.renames, suffix);
    match layers.path {
        LayerPath::Indexed(root) => format!("{root}.{i}.{suffix}"),
        LayerPath::SharedGroups(root) => {
            let (group, inner) = shared_layer(c, i);
            format!("{root}.{group}.albert_layers.{inner}.{suffix}")
        }
    }
}

/// Layer `i` and the rest of a canonical layer name
/// (`encoder.layer.3.attention.self.query.weight` → 3, `attention.self.query.weight`).
fn layer_part(canonical: &str) -> Option<(usize, &str)> {
    let (index, suffix) = canonical.strip_prefix("encoder.layer.")?.split_once('.')?;
    Some((index.parse().ok()?, suffix))
}

/// `name` with the first rename whose BERT name is a whole-part prefix of it applied.
fn renamed(renames: &[(&str, &str)], name: &str) -> String {
    renames
        .iter()
        .find_map(|(from, to)| {
            let tail = name.strip_prefix(from)?;
            (tail.is_empty() || tail.starts_with('.')).then(|| format!("{to}{tail}"))
        })
        .unwrap_or_else(|| name.to_string())
}

/// Whether the Linear or norm `prefix` (BERT's name) has a bias in this
/// family: every one does but the layer parts its row lists as unbiased
/// and the parts a config field switches off (ModernBERT's `norm_bias`).
pub(super) fn has_bias(c: &BertConfig, prefix: &str) -> bool {
    match layer_part(&format!("{prefix}.weight")) {
        Some((_, suffix)) => {
            let part = suffix.strip_suffix(".weight").unwrap_or(suffix);
            !c.family.spec().layers.unbiased.contains(&part) && !c.bias_switched_off(part)
        }
        // DeBERTa's `embed_proj` has none.
        None => {
            let bias_free_projection = matches!(
                c.family.spec().embedding_projection,
                crate::family::EmbeddingProjection::BeforeNormWhenResized(name) if name == prefix
            );
            !c.bias_switched_off(prefix) && !bias_free_projection
        }
    }
}

/// ALBERT's encoder runs `num_hidden_layers` times a layer group of
/// `inner_group_num` layers; run `r` uses group `r / (layers / groups)`.
/// Canonical layer `i` is inner layer `i % inner` of run `i / inner`.
fn shared_layer(c: &BertConfig, i: usize) -> (usize, usize) {
    let inner = c.inner_group_num.unwrap_or(1).max(1);
    let groups = c.num_hidden_groups.unwrap_or(1).max(1);
    let per_group = (c.num_hidden_layers / groups).max(1);
    ((i / inner) / per_group, i % inner)
}
