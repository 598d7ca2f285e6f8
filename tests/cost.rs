//! The cost model against hand-computed figures.
//!
//! MACs per sequence (module docs of `bertc::cost`):
//! linear L·(4·S·H² + 2·S·H·I) + H², attention L·2·S²·H.
//!
//! Costs are counted from the graph's structure, so the graphs are built
//! with placeholder weights and compiled without the equivalence check;
//! only the int8 size test quantizes, and that needs drawn weights.

mod common;

use bertc::cost::{bert_macs_per_sequence, graph_cost, MultiplyAdds};
use bertc::passes::{level_passes, Level, Target};
use bertc::pipeline::{at_level, build, compile, load_config, BuildOptions, PassSelection, PipelineOptions};
use bertc::quantize::{Form, Precision};
use common::{fixture, shapes_only, test_session};

/// BERT-base (L12 H768 I3072) at S=128, by hand:
/// linear    12·(4·128·768² + 2·128·768·3072) + 768² = 12·(301,989,888 + 603,979,776) + 589,824
///           = 10,871,635,968 + 589,824 = 10,872,225,792
/// attention 12·2·128²·768 = 301,989,888
const BERT_BASE_S128: MultiplyAdds = MultiplyAdds {
    linear: 10_872_225_792,
    attention: 301_989_888,
    total: 11_174_215_680,
};

/// all-MiniLM-L6-v2 (L6 H384 I1536) at S=128, by hand:
/// linear    6·(4·128·384² + 2·128·384·1536) + 384² = 6·(75,497,472 + 150,994,944) + 147,456
///           = 1,358,954,496 + 147,456 = 1,359,101,952
/// attention 6·2·128²·384 = 75,497,472
const MINILM_S128: MultiplyAdds = MultiplyAdds {
    linear: 1_359_101_952,
    attention: 75_497_472,
    total: 1_434_599_424,
};

#[test]
fn closed_form_macs_match_the_hand_computed_figures() {
    let base = load_config("bert-base-uncased").unwrap();
    assert_eq!(bert_macs_per_sequence(&base, 128), BERT_BASE_S128);
    let minilm = load_config("all-MiniLM-L6-v2").unwrap();
    assert_eq!(bert_macs_per_sequence(&minilm, 128), MINILM_S128);
}

#[test]
fn graph_cost_of_bert_base_matches_hand_computed_parameters_and_macs() {
    let c = load_config("bert-base-uncased").unwrap();
    let g = build(&c, &shapes_only()).unwrap().graph;
    // Batch 2: per-sequence figures must not depend on the batch.
    let cost = graph_cost(&g, 2, 128).unwrap();
    assert_eq!(cost.macs_per_sequence, BERT_BASE_S128);
    assert_eq!(cost.flops_per_sequence, 2 * BERT_BASE_S128.total);
    let p = &cost.parameters;
    assert_eq!(p.total, 109_482_240);
    // word 30522·768 + position 512·768 + token type 2·768 + norm 2·768
    assert_eq!(p.embeddings, 23_440_896 + 393_216 + 1_536 + 1_536);
    // Q, K, V, output 4·(768² + 768), FFN 768·3072 + 3072 + 3072·768 + 768, two norms 4·768
    assert_eq!(p.layers, vec![2_362_368 + 2_362_368 + 2_360_064 + 3_072; 12]);
    assert_eq!(p.pooler, 768 * 768 + 768);
    assert_eq!((p.heads, p.unattributed), (0, 0));
    let w = cost.weight_bytes;
    assert_eq!((w.fp32, w.fp16), (437_928_960, 218_964_480));
    // What is stored: the f32 weights plus a few small shape and scalar constants.
    assert!(w.stored >= w.fp32 && w.stored - w.fp32 < 16 * 1024, "{w:?}");
    // int8 as --quantize dynamic stores it: the 12·6 + 1 weight matrices
    // (85,524,480 elements) at one byte plus an f32 scale per output column,
    // the word embeddings (30522·768) at one byte plus an f32 scale per row,
    // the other 516,864 parameters at 4 bytes, the small constants as they are.
    let scales = 4 * (12 * (4 * 768 + 3072 + 768) + 768);
    let words = 30_522 * 768 + 4 * 30_522;
    let small = w.stored - w.fp32;
    assert_eq!(w.int8, 85_524_480 + scales + words + 4 * 516_864 + small);
}

#[test]
fn graph_cost_of_minilm_at_o2_matches_the_closed_form() {
    let c = load_config("all-MiniLM-L6-v2").unwrap();
    // The -O2 fusions alone keep the fused Attention op; the default
    // portable pipeline writes it decomposed again. Both cost the same.
    let names = level_passes(Level::O2).into_iter().map(String::from).collect();
    let portable = PipelineOptions {
        check: false,
        ..at_level(Level::O2)
    };
    let fused = PipelineOptions {
        passes: PassSelection::Explicit(names),
        ..portable.clone()
    };
    for (opts, has_attention) in [(fused, true), (portable, false)] {
        let g = compile(test_session(), &c, shapes_only(), &opts)
            .unwrap()
            .into_graph();
        assert_eq!(g.op_histogram().contains_key("Attention"), has_attention);
        let cost = graph_cost(&g, 1, 128).unwrap();
        assert_eq!(cost.parameters.total, 22_713_216);
        assert_eq!(cost.parameters.layers.len(), 6);
        assert_eq!(
            cost.macs_per_sequence, MINILM_S128,
            "attention fused: {has_attention}"
        );
    }
}

#[test]
fn every_preset_and_pipeline_agrees_with_the_closed_form() {
    for name in ["bert-tiny", "bert-mini"] {
        let c = load_config(name).unwrap();
        for (level, target) in [
            (Level::O0, Target::Portable),
            (Level::O2, Target::Portable),
            (Level::O2, Target::Tract),
        ] {
            let options = PipelineOptions {
                target,
                check: false,
                ..at_level(level)
            };
            let g = compile(test_session(), &c, shapes_only(), &options)
                .unwrap()
                .into_graph();
            for (b, s) in [(1, 7), (3, 64)] {
                let cost = graph_cost(&g, b, s).unwrap();
                assert_eq!(
                    cost.macs_per_sequence,
                    bert_macs_per_sequence(&c, s),
                    "{name} {level:?} {target:?} B={b} S={s}"
                );
            }
        }
    }
}

#[test]
fn activation_estimate_grows_with_batch_and_quadratically_with_sequence() {
    let c = load_config("bert-tiny").unwrap();
    let g = build(&c, &shapes_only()).unwrap().graph;
    let at = |b, s| graph_cost(&g, b, s).unwrap().activation_bytes;
    // At least one layer's attention probabilities: B·heads·S²·4 bytes.
    assert!(at(1, 512) >= 2 * 512 * 512 * 4);
    assert!(at(2, 128) > at(1, 128));
    assert!(at(1, 512) > 4 * at(1, 128));
}

#[test]
fn zero_sizes_are_refused() {
    let c = load_config("bert-tiny").unwrap();
    let g = build(&c, &shapes_only()).unwrap().graph;
    let e = graph_cost(&g, 0, 128).unwrap_err().to_string();
    assert!(e.contains("at least 1"), "{e}");
}

#[test]
fn foreign_exports_cost_the_same_as_the_config_they_came_from() {
    // tests/fixtures/foreign-tiny-base: PyTorch's exports of tiny-base (L2 H32 I80, vocab 300, 40 positions).
    let config_path = fixture("tiny-base/config.json");
    let c = load_config(config_path.to_str().unwrap()).unwrap();
    let bertc_graph = build(&c, &shapes_only()).unwrap().graph;
    let expected = graph_cost(&bertc_graph, 2, 16).unwrap();
    for file in [
        "torchscript-opset14.onnx",
        "torchscript-opset17.onnx",
        "dynamo-opset18.onnx",
    ] {
        let g = bertc::onnx::read_model(&fixture(&format!("foreign-tiny-base/{file}"))).unwrap();
        let cost = graph_cost(&g, 2, 16).unwrap();
        assert_eq!(cost.macs_per_sequence, bert_macs_per_sequence(&c, 16), "{file}");
        // word 300·32 + position 40·32 + types 2·32 + norm 2·32; the anonymous
        // weights of the exports are placed by the biases they meet.
        assert_eq!(cost.parameters.embeddings, 11_008, "{file}");
        assert_eq!(cost.parameters, expected.parameters, "{file}");
    }
}

#[test]
fn weights_behind_a_transpose_or_cast_count_as_linear() {
    // The tied masked-LM decoder reads the word embeddings through a
    // Transpose; fp16 weights reach their MatMul through a Cast. Both are
    // linear layers, and attention stays L·2·S²·H.
    let c = bertc::config::BertConfig::from_path(&fixture("tiny-mlm/config.json")).unwrap();
    let options = PipelineOptions {
        check: false,
        ..at_level(Level::O2)
    };
    let mut g = compile(test_session(), &c, shapes_only(), &options)
        .unwrap()
        .into_graph();
    let (l, s, h) = (c.num_hidden_layers as u64, 16u64, c.hidden_size as u64);
    let attention = l * 2 * s * s * h;
    let decoder = s * h * c.vocab_size as u64;
    let cost = graph_cost(&g, 1, 16).unwrap();
    assert_eq!(cost.macs_per_sequence.attention, attention);
    assert_eq!(
        cost.macs_per_sequence.linear,
        bert_macs_per_sequence(&c, 16).linear - h * h + s * h * h + decoder,
        "encoder without pooler + transform dense + decoder"
    );
    let fp16 = Precision::new(Form::Fp16);
    bertc::quantize::apply(test_session(), &mut g, &fp16, Target::Portable).unwrap();
    assert_eq!(
        graph_cost(&g, 1, 16).unwrap().macs_per_sequence,
        cost.macs_per_sequence
    );
}

#[test]
fn the_int8_size_inspect_reports_is_what_quantize_dynamic_writes() {
    // One account of the quantizer's decisions (passes::stored_bytes): the
    // word embeddings are stored int8 too, which the old estimate missed.
    for name in ["bert-tiny", "all-MiniLM-L6-v2", "bert-base-uncased"] {
        let c = load_config(name).unwrap();
        let fp32 = PipelineOptions {
            check: false,
            ..at_level(Level::O2)
        };
        let g = compile(test_session(), &c, BuildOptions::default(), &fp32)
            .unwrap()
            .into_graph();
        let estimate = graph_cost(&g, 1, 128).unwrap().weight_bytes.int8 as f64;
        let int8 = PipelineOptions {
            precision: Precision::new(Form::Int8Dynamic),
            ..fp32
        };
        let written = compile(test_session(), &c, BuildOptions::default(), &int8)
            .unwrap()
            .to_bytes()
            .unwrap()
            .len() as f64;
        let off = (estimate - written).abs() / written;
        assert!(
            off < 0.02,
            "{name}: inspect says {estimate} bytes, the file has {written} ({:.2} %)",
            100.0 * off
        );
    }
}
