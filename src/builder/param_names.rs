//! The family's weight-name map applied: the builder names every
//! parameter as BERT does, and the family's checkpoints name it as its row
//! of the family table says ([`crate::family::LayerNames`]).

use crate::config::BertConfig;
use crate::family::LayerPath;

/// The family's name of a parameter the builder names as BERT does.
/// ALBERT maps every layer onto its shared group's layer, so several
/// canonical names give one stored tensor.
pub(super) fn param_name(c: &BertConfig, canonical: &str) -> String {
    let Some(rest) = canonical.strip_prefix("encoder.layer.") else {
        return canonical.to_string();
    };
    let Some((index, suffix)) = rest.split_once('.') else {
        return canonical.to_string();
    };
    let Ok(i) = index.parse::<usize>() else {
        return canonical.to_string();
    };
    let layers = &c.family.spec().layers;
    let suffix = layers
        .renames
        .iter()
        .find_map(|(from, to)| {
            let tail = suffix.strip_prefix(from)?;
            (tail.is_empty() || tail.starts_with('.')).then(|| format!("{to}{tail}"))
        })
        .unwrap_or_else(|| suffix.to_string());
    match layers.path {
        LayerPath::Indexed(root) => format!("{root}.{i}.{suffix}"),
        LayerPath::SharedGroups(root) => {
            let (group, inner) = shared_layer(c, i);
            format!("{root}.{group}.albert_layers.{inner}.{suffix}")
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
