//! Property: for random small configs (layers, heads, hidden, intermediate,
//! activation, position embedding type, task head) and random batch/sequence sizes with padding on either side,
//! every pipeline and every single pass agrees with the unoptimized graph
//! in tract within 1e-4. A seeded sweep, so a failure names its case and
//! reproduces.

use bertc::builder::Head;
use bertc::check::check_equivalence;
use bertc::compile::{build, CompileOptions};
use bertc::config::BertConfig;
use bertc::passes::{all_pass_names, level_passes, Level, PassManager};
use bertc::runtime::realistic_inputs;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const ACTIVATIONS: &[&str] = &[
    "gelu",
    "gelu_new",
    "gelu_fast",
    "relu",
    "silu",
    "tanh",
    "quick_gelu",
    "mish",
];

#[test]
fn every_pipeline_agrees_with_o0_on_random_configs() {
    bertc::runtime::set_threads(2);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
    let mut pick = |n: u64| (rng.next_u64() % n) as usize;
    let mut pipelines: Vec<(String, Vec<&str>)> = [Level::O1, Level::O2]
        .iter()
        .map(|l| (format!("{l:?}"), level_passes(*l)))
        .collect();
    pipelines.extend(all_pass_names().into_iter().map(|p| (p.to_string(), vec![p])));
    for case in 0..16 {
        let heads = [1, 2, 4][pick(3)];
        let head_size = [4, 8, 16][pick(3)];
        let json = format!(
            r#"{{"vocab_size": {}, "hidden_size": {}, "num_attention_heads": {heads}, "num_hidden_layers": {},
                "intermediate_size": {}, "hidden_act": "{}", "max_position_embeddings": 64,
                "type_vocab_size": {}, "layer_norm_eps": {}, "position_embedding_type": "{}"}}"#,
            50 + pick(200),
            heads * head_size,
            1 + pick(3),
            8 + pick(64),
            ACTIVATIONS[pick(ACTIVATIONS.len() as u64)],
            1 + pick(2),
            [1e-12, 1e-5][pick(2)],
            ["absolute", "absolute", "relative_key", "relative_key_query"][pick(4)],
        );
        let head = Some(Head::ALL[pick(Head::ALL.len() as u64)]);
        let config = BertConfig::from_json_str(&json, "random").unwrap();
        let opts = CompileOptions {
            seed: case,
            head,
            ..Default::default()
        };
        let reference = build(&config, &opts).unwrap().graph;
        let (batch, seq) = (1 + pick(3), 1 + pick(12));
        let inputs = realistic_inputs(config.vocab_size, config.type_vocab_size, batch, seq, case);
        for (name, passes) in &pipelines {
            let mut g = reference.clone();
            PassManager::from_names(passes.iter().copied())
                .unwrap()
                .verify_each(true)
                .run(&mut g)
                .unwrap();
            for c in check_equivalence(&reference, &g, &inputs).unwrap() {
                assert!(
                    c.within(1e-4),
                    "case {case} ({json}, head {head:?}), batch {batch} seq {seq}, pipeline {name}: {} moved by {:e}",
                    c.name,
                    c.max_abs
                );
            }
        }
    }
}
