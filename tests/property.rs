//! Property: for random small configs (layers, heads, hidden, intermediate,
//! activation, position embedding type, task head) and random batch/sequence sizes with padding on either side,
//! every pipeline and every single pass agrees with the unoptimized graph
//! in tract within 1e-4. A seeded sweep, so a failure names its case and
//! reproduces.
//!
//! The onnxruntime lowering passes (`fuse_embed_layer_norm`,
//! `add_bias_after_residual`, `fuse_bias_gelu`, `lower_attention_onnxruntime`)
//! look for the fused forms -O2 makes, so they run after the -O2 pipeline,
//! and each must match as often as the config implies (a pass that matches
//! nothing would agree with anything). Those whose ops tract lacks
//! (EmbedLayerNormalization, com.microsoft Attention) run in onnxruntime.

mod common;

use bertc::builder::Head;
use bertc::config::{Activation, BertConfig, PositionEmbeddingType};
use bertc::passes::{all_pass_names, level_passes, target_passes, Level, PassManager, Target};
use bertc::pipeline::check::check_equivalence;
use bertc::pipeline::{build, BuildOptions};
use bertc::runtime::realistic_inputs;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The passes that rewrite -O2's fused forms for onnxruntime.
fn lowering_passes() -> Vec<&'static str> {
    target_passes(Target::Onnxruntime, Level::O2)
        .into_iter()
        .filter(|p| *p != "dead_node_elimination")
        .collect()
}

/// How many times a lowering pass must match on a -O2 graph of `config`.
fn expected_lowering_matches(pass: &str, config: &BertConfig, head: Head) -> usize {
    let layers = config.num_hidden_layers;
    let absolute = config.position_embedding_type == PositionEmbeddingType::Absolute;
    match pass {
        // Word + token type + absolute positions, then the layer norm.
        "fuse_embed_layer_norm" => usize::from(absolute),
        // Both residual layer norms of every layer (the embeddings' sum,
        // with relative positions two [B, S, H] values, has no bias).
        "add_bias_after_residual" => 2 * layers,
        // Every GELU-family activation (quick_gelu is x·σ(1.702x), no Gelu).
        "fuse_bias_gelu" => match config.hidden_act {
            Activation::Gelu | Activation::GeluNew | Activation::GeluPytorchTanh | Activation::GeluFast => {
                layers
            }
            _ => 0,
        },
        // Relative position models fold a score bias into the mask, which
        // com.microsoft Attention cannot take: they stay standard.
        // A classifier's last layer is pruned to the first token: its
        // queries read one token, keys and values all, so Q/K/V cannot be
        // packed there.
        "lower_attention_onnxruntime" => match (absolute, head) {
            (false, _) => 0,
            (true, Head::SequenceClassification) => layers - 1,
            (true, _) => layers,
        },
        // Rotary models only: none of these configs (absolute or relative
        // positions); the rotary families are swept below.
        "lower_rotary_onnxruntime" => 0,
        // Packed bias-free linears read in slices (ModernBERT's Wqkv and
        // Wi): none in BERT's layers; swept with the rotary families.
        "split_packed_linear" => 0,
        other => panic!("no expectation for {other}"),
    }
}

/// Whether tract can run what `pass` emits.
fn tract_runs(pass: &str) -> bool {
    !matches!(
        pass,
        "fuse_embed_layer_norm" | "lower_attention_onnxruntime" | "lower_rotary_onnxruntime"
    )
}

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
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
    let mut pick = |n: u64| (rng.next_u64() % n) as usize;
    let mut pipelines: Vec<(String, Vec<&str>)> = [Level::O1, Level::O2]
        .iter()
        .map(|l| (format!("{l:?}"), level_passes(*l)))
        .collect();
    let lowering = lowering_passes();
    pipelines.extend(
        all_pass_names()
            .into_iter()
            .filter(|p| !lowering.contains(p))
            .map(|p| (p.to_string(), vec![p])),
    );
    let mut lowering_matched = vec![0usize; lowering.len()];
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
        let picked = Head::ALL[pick(Head::ALL.len() as u64)];
        let head = Some(picked);
        let config = BertConfig::from_json_str(&json, "random").unwrap();
        let opts = BuildOptions {
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
            for c in check_equivalence(common::test_session(), &reference, &g, &inputs).unwrap() {
                assert!(
                    c.within(1e-4),
                    "case {case} ({json}, head {head:?}), batch {batch} seq {seq}, pipeline {name}: {} moved by {:e}",
                    c.name,
                    c.max_abs
                );
            }
        }
        // Each lowering pass alone on the -O2 graph.
        let mut o2 = reference.clone();
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .verify_each(true)
            .run(&mut o2)
            .unwrap();
        let expected_outputs = common::run_tract(
            &bertc::onnx::export_bytes(&reference, Default::default()).unwrap(),
            &inputs,
        );
        for (k, pass) in lowering.iter().enumerate() {
            let what = format!("case {case} ({json}, head {head:?}), batch {batch} seq {seq}, -O2 + {pass}");
            let mut g = o2.clone();
            let runs = PassManager::from_names([*pass])
                .unwrap()
                .verify_each(true)
                .run(&mut g)
                .unwrap();
            let expected = expected_lowering_matches(pass, &config, picked);
            assert_eq!(runs[0].report.matches, expected, "{what}: matches");
            lowering_matched[k] += expected;
            let bytes = bertc::onnx::export_bytes(&g, Default::default()).unwrap();
            let outputs = match tract_runs(pass) {
                true => common::run_tract(&bytes, &inputs),
                false => common::run_onnxruntime(&bytes, &inputs),
            };
            assert_eq!(
                outputs.keys().collect::<Vec<_>>(),
                expected_outputs.keys().collect::<Vec<_>>(),
                "{what}: outputs"
            );
            common::assert_close(&what, &outputs, &expected_outputs, 1e-4);
        }
    }
    // The rotary families (none of the configs above): the rotation
    // lowering alone on each one's -O2 graph, one kernel per rotation of Q
    // and of K in every layer, in onnxruntime against the unoptimized graph.
    let rotary = lowering
        .iter()
        .position(|p| *p == "lower_rotary_onnxruntime")
        .expect("a lowering pass");
    let split = lowering
        .iter()
        .position(|p| *p == "split_packed_linear")
        .expect("a lowering pass");
    for (case, family) in [
        "nomic-base",
        "gte-cls",
        "modernbert-tok",
        "eurobert-base",
        "jina-v3-qa",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = common::fixture("family2").join(family);
        let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
        let opts = BuildOptions {
            seed: 100 + case as u64,
            ..Default::default()
        };
        let reference = build(&config, &opts).unwrap().graph;
        let mut g = reference.clone();
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .run(&mut g)
            .unwrap();
        let runs = PassManager::from_names(["lower_rotary_onnxruntime", "split_packed_linear"])
            .unwrap()
            .verify_each(true)
            .run(&mut g)
            .unwrap();
        assert_eq!(
            runs[0].report.matches,
            2 * config.num_hidden_layers,
            "{family}: matches"
        );
        lowering_matched[rotary] += runs[0].report.matches;
        // The packed bias-free linears read in slices: ModernBERT's Wqkv
        // and Wi, NomicBERT's Wqkv, GTE's up_gate_proj; EuroBERT's are
        // separate, Jina v3's biased.
        let packed = match family {
            "modernbert-tok" => 2,
            "nomic-base" | "gte-cls" => 1,
            _ => 0,
        };
        assert_eq!(
            runs[1].report.matches,
            packed * config.num_hidden_layers,
            "{family}: split_packed_linear matches"
        );
        lowering_matched[split] += runs[1].report.matches;
        let (batch, seq) = (1 + pick(3), 1 + pick(12));
        let inputs = bertc::runtime::inputs_for(&reference, batch, seq);
        let expected = common::run_tract(
            &bertc::onnx::export_bytes(&reference, Default::default()).unwrap(),
            &inputs,
        );
        let outputs = common::run_onnxruntime(
            &bertc::onnx::export_bytes(&g, Default::default()).unwrap(),
            &inputs,
        );
        let what =
            format!("{family} batch {batch} seq {seq}, -O2 + lower_rotary_onnxruntime + split_packed_linear");
        common::assert_close(&what, &outputs, &expected, 1e-4);
    }
    // The sweep must exercise every lowering pass, not only agree with it.
    for (pass, matched) in lowering.iter().zip(&lowering_matched) {
        assert!(*matched > 0, "{pass} never matched in the sweep");
    }
}
