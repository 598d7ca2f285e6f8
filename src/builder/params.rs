//! The parameters of BertModel for a config, named and shaped as
//! transformers names and shapes them.

use crate::config::BertConfig;
use crate::weights::{Init, ParamSpec};

/// Every parameter BertModel (embeddings, encoder, pooler) needs.
pub fn bert_model_params(c: &BertConfig) -> Vec<ParamSpec> {
    let std = c.initializer_range;
    let h = c.hidden_size;
    let mut specs = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, init: Init, transpose: bool| {
        specs.push(ParamSpec {
            name,
            shape,
            init,
            transpose,
            under_bert_prefix: true,
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
    for i in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        for proj in ["query", "key", "value"] {
            linear(&mut add, &format!("{p}.attention.self.{proj}"), h, h);
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
    linear(&mut add, "pooler.dense", h, h);
    specs
}
