//! Weight names across every family, for checkpoints and graphs whose
//! family is not known (a foreign ONNX file, a checkpoint's other heads):
//! which part of a model a name belongs to, from the table's names.

use super::{Family, NormPlacement};

/// The weight-name prefixes of the heads every family shares: token
/// classification's `classifier` (also BERT's sequence classifier) and
/// question answering's `qa_outputs`.
const SHARED_HEAD_PREFIXES: [&str; 2] = ["classifier.", "qa_outputs."];

/// Whether `name` lies under the module `path` (`path.…`).
fn lies_under(name: &str, path: &str) -> bool {
    name.strip_prefix(path).is_some_and(|tail| tail.starts_with('.'))
}

/// Whether a parameter is a task head's own (outside the encoder's
/// `bert.`/`roberta.`/… module), in any family.
pub fn is_head_param(name: &str) -> bool {
    let mut prefixes = SHARED_HEAD_PREFIXES.into_iter().chain(
        Family::ALL
            .iter()
            .flat_map(|f| f.spec().heads.prefixes.iter().copied()),
    );
    prefixes.any(|p| name.starts_with(p))
}

/// Whether a weight belongs to some family's pooler.
pub fn is_pooler_weight(name: &str) -> bool {
    Family::ALL
        .iter()
        .any(|f| lies_under(name, f.spec().pooler.linear))
}

/// Whether a weight (named without the encoder's prefix) belongs to some
/// pre-norm family's norm after the last layer (ModernBERT's `final_norm`).
pub fn is_final_norm_weight(name: &str) -> bool {
    Family::ALL.iter().any(|f| match f.spec().norms {
        NormPlacement::Pre { final_norm, .. } => lies_under(name, final_norm),
        NormPlacement::Post => false,
    })
}

/// Whether a checkpoint tensor belongs to some task head or the pooler:
/// a checkpoint saved from one `*For*` class carries these, and compiling
/// it with another head (say, the base model of a fine-tuned classifier)
/// leaves them unread rather than failing.
pub fn is_head_or_pooler_tensor(name: &str) -> bool {
    // Any family's encoder prefix (`bert.`, `roberta.`, …).
    let name = name
        .split_once('.')
        .filter(|(first, _)| Family::ALL.iter().any(|f| f.prefix() == *first))
        .map_or(name, |(_, rest)| rest);
    is_head_param(name) || is_pooler_weight(name)
}

/// Whether a weight (named without the encoder's prefix) belongs to the
/// embeddings: the tables and their norm (under BERT's names or a family's
/// renames of them, NomicBERT's `emb_ln`), ELECTRA's and ALBERT's
/// projection to the hidden size, and MPNet's relative position bias
/// (position information, shared by every layer like the position table).
pub fn is_embedding_weight(name: &str) -> bool {
    name.starts_with("embeddings.")
        || Family::ALL.iter().any(|f| {
            let s = f.spec();
            let renamed = s
                .renames
                .iter()
                .filter(|(bert, _)| bert.starts_with("embeddings."))
                .map(|&(_, family)| family);
            // DeBERTa's relative-position table and its norm (shared by
            // every layer), and v2's ConvLayer (it reads the embeddings).
            let relative = s
                .disentangled
                .iter()
                .flat_map(|d| [Some(d.table), d.table_norm, d.conv]);
            [s.embedding_projection.linear(), s.bucketed_relative_bias]
                .into_iter()
                .chain(relative)
                .flatten()
                .chain(renamed)
                .any(|part| lies_under(name, part))
        })
}

/// A layer weight's name after any family's layer path: `3.attention.…`
/// for `encoder.layer.3.attention.…`, DistilBERT's `transformer.layer.3.…`
/// or ALBERT's shared group `encoder.albert_layer_groups.0.…` (a group
/// counts as one layer).
pub fn layer_weight_rest(name: &str) -> Option<&str> {
    Family::ALL
        .iter()
        .find_map(|f| name.strip_prefix(f.spec().layers.path.root())?.strip_prefix('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family's names land in the part the cost model and the
    /// checkpoint reader expect, and near misses land nowhere.
    #[test]
    fn names_of_every_family_find_their_part() {
        for embedding in [
            "embeddings.word_embeddings.weight",
            "embeddings_project.weight",
            "encoder.embedding_hidden_mapping_in.bias",
            "encoder.relative_attention_bias.weight",
        ] {
            assert!(is_embedding_weight(embedding), "{embedding}");
        }
        assert!(!is_embedding_weight("embeddings_projection.weight"));
        for (layer, rest) in [
            (
                "encoder.layer.3.attention.self.query.weight",
                "3.attention.self.query.weight",
            ),
            ("transformer.layer.5.ffn.lin1.bias", "5.ffn.lin1.bias"),
            (
                "encoder.albert_layer_groups.0.albert_layers.0.ffn.weight",
                "0.albert_layers.0.ffn.weight",
            ),
        ] {
            assert_eq!(layer_weight_rest(layer), Some(rest));
        }
        assert_eq!(layer_weight_rest("encoder.blocks.0.attn.Wqkv.weight"), None);
        // BERT's `pooler.dense` and ALBERT's bare `pooler`.
        assert!(is_pooler_weight("pooler.dense.weight") && is_pooler_weight("pooler.bias"));
        assert!(!is_pooler_weight("pooler_output"));
        for head in [
            "classifier.out_proj.weight",
            "cls.predictions.bias",
            "lm_head.dense.weight",
            "vocab_projector.bias",
            "predictions.LayerNorm.weight",
            "generator_lm_head.bias",
        ] {
            assert!(is_head_param(head), "{head}");
        }
        assert!(!is_head_param("embeddings.LayerNorm.weight"));
        // Under any family's encoder prefix, heads and poolers are other
        // models' tensors; the encoder's own are not.
        assert!(is_head_or_pooler_tensor("roberta.pooler.dense.weight"));
        assert!(is_head_or_pooler_tensor(
            "electra.discriminator_predictions.dense.weight"
        ));
        assert!(is_head_or_pooler_tensor("albert.pooler.weight"));
        assert!(!is_head_or_pooler_tensor(
            "distilbert.transformer.layer.0.ffn.lin1.weight"
        ));
    }
}
