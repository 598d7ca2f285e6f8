//! The parameters of a BERT model for a config and head, named and shaped
//! as transformers names and shapes them.

use crate::config::{BertConfig, PositionEmbeddingType};
use crate::family::{is_head_param, FeedForward, NormPlacement, QkvProjection, SequenceClassifier};
use crate::weights::{Init, ParamSpec};

use super::heads::head_width;
use super::param_names::{has_bias, norm_has_bias, param_name};
use super::pre_norm::has_attention_norm;
use super::{Head, ModelSpec};

/// Every parameter the base model (embeddings, encoder, the pooler where
/// the family has one) needs.
pub fn bert_model_params(c: &BertConfig) -> Vec<ParamSpec> {
    model_params(c, &ModelSpec::for_config(Head::Base, c))
}

/// Every parameter of the model `spec` describes, named as the family's
/// checkpoints name them: the encoder's (under `bert.`, `roberta.`, … in
/// `*For*` checkpoints), the pooler's when it has one, and the head's own
/// (`classifier.*`, `qa_outputs.*`, `cls.predictions.*`, `lm_head.*`, …).
/// A parameter ALBERT's layers share is listed once.
pub fn model_params(c: &BertConfig, spec: &ModelSpec) -> Vec<ParamSpec> {
    let std = c.initializer_range;
    let h = c.hidden_size;
    let e = c.embedding_size();
    let family = c.family.spec();
    let mut specs: Vec<ParamSpec> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |name: String, shape: Vec<usize>, init: Init, transpose: bool| {
        let name = param_name(c, &name);
        if !seen.insert(name.clone()) {
            return;
        }
        // The head's own parameters live outside the encoder's module.
        let under_bert_prefix = !is_head_param(&name);
        specs.push(ParamSpec {
            name,
            shape,
            init,
            transpose,
            under_bert_prefix,
            prefix: family.prefix,
        });
    };
    let word_init = match c.pad_token_id {
        Some(p) => Init::NormalPadded {
            std,
            padding_row: p as usize,
        },
        None => Init::Normal { std },
    };
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![c.vocab_size, e],
        word_init,
        false,
    );
    let position_init = match c.sinusoidal_pos_embds {
        Some(true) => Init::Sinusoidal,
        _ => Init::Normal { std },
    };
    if c.has_position_table() {
        add(
            "embeddings.position_embeddings.weight".into(),
            vec![c.max_position_embeddings, e],
            position_init,
            false,
        );
    }
    if family.token_types.has_table(c.type_vocab_size) {
        add(
            "embeddings.token_type_embeddings.weight".into(),
            vec![c.type_vocab_size, e],
            Init::Normal { std },
            false,
        );
    }
    let layer_norm = |add: &mut dyn FnMut(String, Vec<usize>, Init, bool), prefix: &str, n: usize| {
        add(format!("{prefix}.weight"), vec![n], Init::Ones, false);
        if norm_has_bias(c, prefix) {
            add(format!("{prefix}.bias"), vec![n], Init::Zeros, false);
        }
    };
    let projection = super::positions::projection(c);
    // DeBERTa projects before the norm, which then has the hidden width.
    let norm_width = match projection {
        Some((_, true)) => h,
        Some((_, false)) | None => e,
    };
    if family.norms.embedding_norm() {
        layer_norm(&mut add, "embeddings.LayerNorm", norm_width);
    }
    let linear =
        |add: &mut dyn FnMut(String, Vec<usize>, Init, bool), prefix: &str, n_in: usize, n_out: usize| {
            add(
                format!("{prefix}.weight"),
                vec![n_out, n_in],
                Init::Normal { std },
                true,
            );
            if has_bias(c, prefix) {
                add(format!("{prefix}.bias"), vec![n_out], Init::Zeros, false);
            }
        };
    if let Some((name, _)) = projection {
        linear(&mut add, name, e, h);
    }
    let disentangled = family.disentangled.zip(c.disentangled.as_ref());
    let relative_table = disentangled.filter(|(_, d)| d.relative_attention);
    if let Some((spec, d)) = relative_table {
        add(
            format!("{}.weight", spec.table),
            vec![2 * d.span(c.max_position_embeddings), h],
            Init::Normal { std },
            false,
        );
        if let (Some(norm), true) = (spec.table_norm, d.normed_table()) {
            layer_norm(&mut add, norm, h);
        }
    }
    if let Some((Some(conv), d)) = disentangled.map(|(s, d)| (s.conv, d)) {
        if d.conv_kernel_size > 0 {
            add(
                format!("{conv}.conv.weight"),
                vec![h, h, d.conv_kernel_size],
                Init::Normal { std },
                false,
            );
            add(format!("{conv}.conv.bias"), vec![h], Init::Zeros, false);
            layer_norm(&mut add, &format!("{conv}.LayerNorm"), h);
        }
    }
    if let Some(buckets) = c.relative_attention_num_buckets {
        add(
            "encoder.relative_attention_bias.weight".into(),
            vec![buckets, c.num_attention_heads],
            Init::Normal { std },
            false,
        );
    }
    let relative = c.position_embedding_type != PositionEmbeddingType::Absolute;
    for i in 0..c.encoder_layers() {
        let p = format!("encoder.layer.{i}");
        match family.qkv {
            QkvProjection::Separate => {
                for proj in ["query", "key", "value"] {
                    linear(&mut add, &format!("{p}.attention.self.{proj}"), h, h);
                }
            }
            QkvProjection::Fused => linear(&mut add, &format!("{p}.attention.self.qkv"), h, 3 * h),
            QkvProjection::FusedPerHead => {
                linear(&mut add, &format!("{p}.attention.self.qkv"), h, 3 * h);
                for bias in ["q_bias", "v_bias"] {
                    add(format!("{p}.attention.self.{bias}"), vec![h], Init::Zeros, false);
                }
            }
            QkvProjection::SeparateGrouped => {
                let kv = c.key_value_heads() * c.head_size();
                linear(&mut add, &format!("{p}.attention.self.query"), h, h);
                for proj in ["key", "value"] {
                    linear(&mut add, &format!("{p}.attention.self.{proj}"), h, kv);
                }
            }
        }
        // The table's own projections, unless the layer's query and key Linears serve.
        if let Some((spec, d)) = relative_table.filter(|(_, d)| !d.share_att_key) {
            for (wanted, part) in [(d.c2p(), spec.c2p_projection), (d.p2c(), spec.p2c_projection)] {
                if wanted {
                    linear(&mut add, &format!("{p}.{part}"), h, h);
                }
            }
        }
        if relative {
            // One embedding per distance −(max−1) … (max−1), per head dim.
            add(
                format!("{p}.attention.self.distance_embedding.weight"),
                vec![2 * c.max_position_embeddings - 1, c.head_size()],
                Init::Normal { std },
                false,
            );
        }
        linear(&mut add, &format!("{p}.attention.output.dense"), h, h);
        if has_attention_norm(c, i) {
            layer_norm(&mut add, &format!("{p}.attention.output.LayerNorm"), h);
        }
        // A packed GLU's one Linear holds both halves.
        let glu_halves = match family.feed_forward {
            FeedForward::PackedGated | FeedForward::PackedGatedActivatedFirst => 2,
            FeedForward::Plain | FeedForward::Gated => 1,
        };
        linear(
            &mut add,
            &format!("{p}.intermediate.dense"),
            h,
            glu_halves * c.intermediate_size,
        );
        match family.feed_forward {
            FeedForward::Plain | FeedForward::PackedGated | FeedForward::PackedGatedActivatedFirst => {}
            FeedForward::Gated => linear(
                &mut add,
                &format!("{p}.intermediate.gate"),
                h,
                c.intermediate_size,
            ),
        }
        linear(&mut add, &format!("{p}.output.dense"), c.intermediate_size, h);
        layer_norm(&mut add, &format!("{p}.output.LayerNorm"), h);
    }
    if let NormPlacement::Pre { final_norm, .. } = family.norms {
        layer_norm(&mut add, final_norm, h);
    }
    if spec.pooler {
        linear(&mut add, family.pooler.linear, h, h);
    }
    // The layer ModernBERT's heads run first (not the masked-LM's, whose
    // transform is these same weights under its own description).
    let prediction_head = |add: &mut dyn FnMut(String, Vec<usize>, Init, bool)| {
        if let Some(ph) = family.heads.prediction_head {
            linear(add, ph.dense, h, h);
            layer_norm(add, ph.norm, h);
        }
    };
    match spec.head {
        Head::Base | Head::SentenceEmbedding => {}
        Head::SequenceClassification => match family.heads.sequence_classification {
            SequenceClassifier::FirstToken(fc) | SequenceClassifier::ConfigPooled(fc) => {
                linear(&mut add, fc.dense, h, h);
                linear(&mut add, fc.out, h, c.num_labels);
            }
            SequenceClassifier::Pooler => linear(&mut add, "classifier", h, c.num_labels),
            SequenceClassifier::PooledPredictionHead => {
                prediction_head(&mut add);
                linear(&mut add, "classifier", h, c.num_labels);
            }
        },
        Head::TokenClassification => {
            prediction_head(&mut add);
            linear(&mut add, "classifier", h, c.num_labels);
        }
        Head::QuestionAnswering => {
            prediction_head(&mut add);
            let qa = family
                .heads
                .prediction_head
                .map_or("qa_outputs", |ph| ph.qa_outputs);
            linear(&mut add, qa, h, 2);
        }
        Head::MaskedLm => {
            let m = c.masked_lm_head();
            let width = match m.has_transform() {
                true => head_width(m.width, c),
                false => h,
            };
            if m.has_transform() {
                linear(&mut add, m.transform, h, width);
                layer_norm(&mut add, m.layer_norm, width);
            }
            if !c.tie_word_embeddings {
                add(
                    m.decoder.into(),
                    vec![c.vocab_size, width],
                    Init::Normal { std },
                    true,
                );
            }
            if !c.bias_switched_off(m.bias) {
                add(m.bias.into(), vec![c.vocab_size], Init::Zeros, false);
            }
        }
    }
    specs
}
