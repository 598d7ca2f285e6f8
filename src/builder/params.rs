//! The parameters of a BERT model for a config and head, named and shaped
//! as transformers names and shapes them.

use crate::config::{BertConfig, PositionEmbeddingType};
use crate::weights::{Init, ParamSpec};

use super::{Head, ModelSpec};

/// Every parameter BertModel (embeddings, encoder, pooler) needs.
pub fn bert_model_params(c: &BertConfig) -> Vec<ParamSpec> {
    model_params(c, &ModelSpec::new(Head::Base))
}

/// Every parameter of the model `spec` describes: the encoder's (under
/// `bert.` in BertFor* checkpoints), the pooler's when it has one, and the
/// head's own (`classifier.*`, `qa_outputs.*`, `cls.predictions.*`).
pub fn model_params(c: &BertConfig, spec: &ModelSpec) -> Vec<ParamSpec> {
    let std = c.initializer_range;
    let h = c.hidden_size;
    let mut specs = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, init: Init, transpose: bool| {
        // The head's own parameters live outside the `bert.` module.
        let under_bert_prefix = !super::head::is_head_param(&name);
        specs.push(ParamSpec {
            name,
            shape,
            init,
            transpose,
            under_bert_prefix,
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
        vec![c.vocab_size, h],
        word_init,
        false,
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![c.max_position_embeddings, h],
        Init::Normal { std },
        false,
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![c.type_vocab_size, h],
        Init::Normal { std },
        false,
    );
    let layer_norm = |add: &mut dyn FnMut(String, Vec<usize>, Init, bool), prefix: &str| {
        add(format!("{prefix}.weight"), vec![h], Init::Ones, false);
        add(format!("{prefix}.bias"), vec![h], Init::Zeros, false);
    };
    layer_norm(&mut add, "embeddings.LayerNorm");
    let linear =
        |add: &mut dyn FnMut(String, Vec<usize>, Init, bool), prefix: &str, n_in: usize, n_out: usize| {
            add(
                format!("{prefix}.weight"),
                vec![n_out, n_in],
                Init::Normal { std },
                true,
            );
            add(format!("{prefix}.bias"), vec![n_out], Init::Zeros, false);
        };
    let relative = c.position_embedding_type != PositionEmbeddingType::Absolute;
    for i in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        for proj in ["query", "key", "value"] {
            linear(&mut add, &format!("{p}.attention.self.{proj}"), h, h);
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
        layer_norm(&mut add, &format!("{p}.attention.output.LayerNorm"));
        linear(
            &mut add,
            &format!("{p}.intermediate.dense"),
            h,
            c.intermediate_size,
        );
        linear(&mut add, &format!("{p}.output.dense"), c.intermediate_size, h);
        layer_norm(&mut add, &format!("{p}.output.LayerNorm"));
    }
    if spec.pooler {
        linear(&mut add, "pooler.dense", h, h);
    }
    match spec.head {
        Head::Base | Head::SentenceEmbedding => {}
        Head::SequenceClassification | Head::TokenClassification => {
            linear(&mut add, "classifier", h, c.num_labels)
        }
        Head::QuestionAnswering => linear(&mut add, "qa_outputs", h, 2),
        Head::MaskedLm => {
            linear(&mut add, "cls.predictions.transform.dense", h, h);
            layer_norm(&mut add, "cls.predictions.transform.LayerNorm");
            if !c.tie_word_embeddings {
                add(
                    "cls.predictions.decoder.weight".into(),
                    vec![c.vocab_size, h],
                    Init::Normal { std },
                    true,
                );
            }
            add(
                "cls.predictions.bias".into(),
                vec![c.vocab_size],
                Init::Zeros,
                false,
            );
        }
    }
    specs
}
