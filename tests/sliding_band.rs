//! ModernBERT's sliding layers computed along the band (`block_sliding_attention`,
//! -O2) against the masked form as built (-O0): the same outputs at every
//! position for sequence lengths around and between the block sizes
//! (shorter than one block, not a multiple of it, many blocks), for windows
//! that make blocks of 1, 2 and 7 queries, in tract and onnxruntime; every
//! sliding layer rewritten and no [S, S] value left in the graph.

mod common;

use bertc::config::{BertConfig, LayerAttention};
use bertc::ir::{Dim, Op};
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, compile, BuildOptions, PipelineOptions};
use bertc::runtime::inputs_for_seed;
use common::*;

const CASE: &str = "modernbert-tok";

/// The case's config with `local_attention` set (a reach of half of it).
fn config_with_window(local_attention: usize) -> BertConfig {
    let dir = fixture(&format!("family2/{CASE}"));
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["local_attention"] = local_attention.into();
    BertConfig::from_json_str(&json.to_string(), "test").unwrap()
}

/// How many sliding layers `block_sliding_attention` rewrote in `c`.
fn blocked_layers(c: &bertc::pipeline::Compiled) -> usize {
    c.report
        .passes
        .iter()
        .find(|r| r.pass == "block_sliding_attention")
        .expect("the pass ran")
        .report
        .matches
}

fn compiled(config: &BertConfig, options: &PipelineOptions) -> bertc::pipeline::Compiled {
    let weights = fixture(&format!("family2/{CASE}/model.safetensors"));
    let opts = BuildOptions {
        weights: Some(weights),
        ..Default::default()
    };
    compile(test_session(), config, opts, options).unwrap()
}

#[test]
fn the_band_form_computes_the_masked_form_at_every_length() {
    // local_attention 2, 8, 30: reach 1, 4, 15; blocks of 1, 2, 7 queries.
    for window in [2, 8, 30] {
        let config = config_with_window(window);
        let sliding = (0..config.encoder_layers())
            .filter(|&i| config.layer_attention(i) == LayerAttention::SlidingAttention)
            .count();
        assert!(sliding > 0, "the case has sliding layers");
        let full = compiled(&config, &at_level(Level::O0));
        for target in [Target::Portable, Target::Onnxruntime] {
            let options = PipelineOptions {
                target,
                ..at_level(Level::O2)
            };
            let banded = compiled(&config, &options);
            let blocked = blocked_layers(&banded);
            assert_eq!(blocked, sliding, "window {window}: sliding layers blocked");
            // No [S, S] value in a sliding layer, nor the [S, S] window mask
            // they shared (global layers keep their scores).
            let g = banded.graph();
            let sliding_layers: Vec<String> = (0..config.encoder_layers())
                .filter(|&i| config.layer_attention(i) == LayerAttention::SlidingAttention)
                .map(|i| format!("encoder.layer.{i}."))
                .collect();
            for id in g.node_ids() {
                let name = &g.node(id).name;
                let in_sliding = sliding_layers.iter().any(|p| name.starts_with(p.as_str()));
                for out in &g.node(id).outputs {
                    let d = out.shape.dims();
                    let seq = Dim::sym(bertc::ir::SEQUENCE);
                    let square = d.len() >= 2 && d[d.len() - 1] == seq && d[d.len() - 2] == seq;
                    let shared_mask = name.starts_with("encoder.sliding_window");
                    assert!(
                        !(square && (in_sliding || shared_mask)),
                        "window {window}: {name} is {}",
                        out.shape
                    );
                }
            }
            let (full_bytes, banded_bytes) = (full.to_bytes().unwrap(), banded.to_bytes().unwrap());
            for seq in [1, 2, 3, 7, 20, 37, 150] {
                // Three rows: one full, two padded (a tail with no real key
                // in its window for the small windows: blind rows).
                let inputs = inputs_for_seed(full.graph(), 3, seq, seq as u64);
                let expected = run_tract(&full_bytes, &inputs);
                let what = format!("window {window}, {target:?}, S={seq}");
                let actual = match target {
                    Target::Onnxruntime => run_onnxruntime(&banded_bytes, &inputs),
                    _ => run_tract(&banded_bytes, &inputs),
                };
                let worst = assert_close(&what, &actual, &expected, 1e-5);
                eprintln!("{what}: max-abs {worst:.2e}");
            }
        }
    }
}

/// The pass leaves a graph without sliding layers alone, and does not take
/// a band that is not over the queries' own positions (a global layer's
/// plain padding mask) for one.
#[test]
fn only_sliding_layers_are_blocked() {
    let all_global = {
        let dir = fixture(&format!("family2/{CASE}"));
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let layers = json["num_hidden_layers"].as_u64().unwrap() as usize;
        json["layer_types"] = vec!["full_attention"; layers].into();
        BertConfig::from_json_str(&json.to_string(), "test").unwrap()
    };
    let c = compiled(&all_global, &at_level(Level::O2));
    let blocked = blocked_layers(&c);
    assert_eq!(blocked, 0);
    let attention = c
        .graph()
        .node_ids()
        .filter(|&id| matches!(c.graph().node(id).op, Op::Attention { .. }));
    assert_eq!(
        attention.count(),
        0,
        "attention is decomposed for the portable target"
    );
}

/// A window wider than `MAX_BLOCKED_REACH` keeps the masked form (the
/// blocked form's window constant grows with the square of the reach: a
/// `local_attention` of 10^12 aborted the process on its allocation), and
/// still computes the -O0 numbers.
#[test]
fn a_window_too_wide_to_block_keeps_the_masked_form() {
    use bertc::passes::MAX_BLOCKED_REACH;
    for window in [2 * MAX_BLOCKED_REACH + 2, 1_000_000_000_000] {
        let config = config_with_window(window);
        let full = compiled(&config, &at_level(Level::O0));
        let options = PipelineOptions {
            target: Target::Onnxruntime,
            ..at_level(Level::O2)
        };
        let masked = compiled(&config, &options);
        let blocked = blocked_layers(&masked);
        assert_eq!(blocked, 0, "window {window}: nothing blocked");
        let inputs = inputs_for_seed(full.graph(), 3, 20, 7);
        let expected = run_tract(&full.to_bytes().unwrap(), &inputs);
        let actual = run_onnxruntime(&masked.to_bytes().unwrap(), &inputs);
        assert_close(&format!("window {window}"), &actual, &expected, 1e-5);
    }
    // The widest blocked reach is still blocked.
    let config = config_with_window(2 * MAX_BLOCKED_REACH);
    let c = compiled(&config, &at_level(Level::O2));
    let blocked = blocked_layers(&c);
    assert!(blocked > 0, "a reach of {MAX_BLOCKED_REACH} is blocked");
}
