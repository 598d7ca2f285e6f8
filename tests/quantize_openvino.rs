//! `--target openvino --quantize static` on the real all-MiniLM-L6-v2:
//! QuantizeLinear/DequantizeLinear pairs where OpenVINO makes int8 kernels
//! of them, and sentence embeddings within the golden's int8 bar in tract
//! and in OpenVINO.

mod common;

use bertc::passes::Target;
use bertc::pipeline::PipelineOptions;
use bertc::quantize::{Form, Precision};
use bertc::runtime::read_safetensors;
use common::*;

/// The golden README's int8 bar, per sentence.
const MIN_ROW_COSINE: f64 = 0.99;

#[test]
fn minilm_openvino_int8_is_qdq_and_meets_the_golden_in_tract_and_openvino() {
    let compiled = minilm_static_int8(Target::Openvino);
    let ops = compiled.graph().op_histogram();
    // One activation pair per distinct quantized input: per layer Q/K/V's
    // and the FFN input's (smoothed layer-norm outputs), the attention
    // context and the FFN output layer's (a Gelu's output, asymmetric).
    // The sentence-embedding head has no pooler.
    assert_eq!(ops.get("QuantizeLinear"), Some(&(4 * 6)), "{ops:?}");
    // One DequantizeLinear per quantized weight too (6 per layer).
    assert_eq!(ops.get("DequantizeLinear"), Some(&(4 * 6 + 6 * 6)), "{ops:?}");
    assert_eq!(ops.get("MatMulInteger"), None);
    // MiniLM's Gelu outputs have one or two outlier channels in layers 0-3
    // (ranges 14-23 against a 99th percentile of 3-4.5): each such layer
    // gets one f32 side product over them; layers 4 and 5 have none.
    let side: Vec<&str> = compiled
        .graph()
        .node_ids()
        .map(|id| compiled.graph().node(id).name.as_str())
        .filter(|n| n.ends_with(".outlier_matmul"))
        .collect();
    assert_eq!(side.len(), 4, "{side:?}");
    let zero_points: Vec<u8> = compiled
        .graph()
        .node_ids()
        .filter(|&id| {
            compiled
                .graph()
                .node(id)
                .name
                .contains("intermediate.act.act_zero_point")
        })
        .map(|id| match &compiled.graph().node(id).op {
            bertc::ir::Op::Constant(t) => t.raw()[0],
            op => panic!("zero point is {op:?}"),
        })
        .collect();
    // Asymmetric: 0 sits near the bottom of [GELU_MIN, max] (max 3-6 after
    // the split), not at 128.
    assert_eq!(zero_points.len(), 6);
    assert!(
        zero_points.iter().all(|&z| (5..=15).contains(&z)),
        "{zero_points:?}"
    );
    let gate = compiled.report.accuracy.as_ref().unwrap();
    assert!(gate.outputs.iter().all(|o| o.cosine >= 0.99), "{gate:?}");

    let golden = read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap();
    let model = compiled.to_bytes().unwrap();
    let tract = sentence_row_cosines(&run_tract(&model, &golden), &golden);
    eprintln!("MiniLM int8 openvino form, tract: sentence_embedding cosines {tract:.5?}");
    assert!(tract.iter().all(|&c| c >= MIN_ROW_COSINE), "tract: {tract:?}");
    let openvino = sentence_row_cosines(&run_openvino(&model, &golden), &golden);
    eprintln!("MiniLM int8 openvino form, OpenVINO: sentence_embedding cosines {openvino:.5?}");
    assert!(
        openvino.iter().all(|&c| c >= MIN_ROW_COSINE),
        "OpenVINO: {openvino:?}"
    );
}

/// `--quantize-attention` in OpenVINO's static form: both products of each
/// layer between QuantizeLinear/DequantizeLinear pairs at calibrated
/// constant scales (Q, K, the softmax's numerators, V with its key-weight
/// column), no Softmax left, and MiniLM's sentence embeddings still within
/// the golden's int8 bar in tract and OpenVINO.
#[test]
fn minilm_openvino_int8_attention_is_qdq_and_meets_the_golden() {
    let compiled = minilm_static_int8_with(Target::Openvino, true);
    let ops = compiled.graph().op_histogram();
    // The linears' 4 pairs per layer, and the attention's 4.
    assert_eq!(ops.get("QuantizeLinear"), Some(&(8 * 6)), "{ops:?}");
    assert_eq!(ops.get("Softmax"), None, "{ops:?}");
    assert_eq!(ops.get("Attention"), None, "{ops:?}");
    let golden = read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap();
    let model = compiled.to_bytes().unwrap();
    for (runtime, outputs) in [
        ("tract", run_tract(&model, &golden)),
        ("OpenVINO", run_openvino(&model, &golden)),
    ] {
        let cosines = sentence_row_cosines(&outputs, &golden);
        eprintln!("MiniLM int8 + int8 attention, {runtime}: sentence_embedding cosines {cosines:.5?}");
        assert!(
            cosines.iter().all(|&c| c >= MIN_ROW_COSINE),
            "{runtime}: {cosines:?}"
        );
    }
}

#[test]
fn outlier_channels_are_those_far_above_the_99th_percentile() {
    // 1000 channels at 1.0..2.0 and three higher: the 99th percentile is
    // 1.99, the bar 2 × that; 3.9 stays below it.
    let mut range: Vec<f32> = (0..1000).map(|k| 1.0 + k as f32 / 1000.0).collect();
    range[17] = 20.0;
    range[150] = 6.5;
    range[3] = 3.9;
    assert_eq!(bertc::passes::outlier_channels(&range), vec![17, 150]);
    // At most 1 %: with 2 of 100 channels far out the percentile is one
    // of them, so only what is above twice that is split.
    let mut few = vec![1.0f32; 100];
    few[5] = 10.0;
    few[6] = 30.0;
    assert_eq!(bertc::passes::outlier_channels(&few), vec![6]);
    // No outliers in a flat range, and an empty one is fine.
    assert!(bertc::passes::outlier_channels(&[1.0; 64]).is_empty());
    assert!(bertc::passes::outlier_channels(&[]).is_empty());
}

#[test]
fn openvino_takes_int8_only_as_static() {
    let options = PipelineOptions {
        target: Target::Openvino,
        precision: Precision::new(Form::Int8Dynamic),
        ..Default::default()
    };
    assert_eq!(
        options.validate(),
        Err(bertc::pipeline::OptionError::OpenvinoNeedsStatic)
    );
}
