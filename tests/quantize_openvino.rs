//! `--target openvino --quantize static` on the real all-MiniLM-L6-v2:
//! QuantizeLinear/DequantizeLinear pairs where OpenVINO makes int8 kernels
//! of them, and sentence embeddings within the golden's int8 bar in tract
//! and in OpenVINO.

mod common;

use bertc::builder::Head;
use bertc::compile::CompileOptions;
use bertc::config::BertConfig;
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, compile, PipelineOptions, ReducedKind, ReducedPrecision};
use bertc::quantize::{cosine, CalibrationMethod};
use bertc::runtime::{read_safetensors, NamedTensors};
use common::*;

/// The golden README's int8 bar, per sentence.
const MIN_ROW_COSINE: f64 = 0.99;

fn row_cosines(outputs: &NamedTensors, golden: &NamedTensors) -> Vec<f64> {
    let (got, want) = (&outputs["sentence_embedding"], &golden["sentence_embedding"]);
    let h = *want.shape.last().unwrap();
    let (a, b) = (got.to_f32(), want.to_f32());
    a.chunks(h).zip(b.chunks(h)).map(|(x, y)| cosine(x, y)).collect()
}

#[test]
fn minilm_openvino_int8_is_qdq_and_meets_the_golden_in_tract_and_openvino() {
    let dir = minilm_dir();
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let source = CompileOptions {
        weights: Some(dir.join("model.safetensors")),
        head: Some(Head::SentenceEmbedding),
        ..Default::default()
    };
    let options = PipelineOptions {
        target: Target::Openvino,
        precision: Some(ReducedPrecision::new(ReducedKind::Int8Static {
            calibrate: None,
            method: CalibrationMethod::MinMax,
        })),
        ..at_level(Level::O2)
    };
    let compiled = compile(&config, source, &options).unwrap();
    let ops = compiled.graph.op_histogram();
    // One activation pair per distinct quantized input: per layer Q/K/V's
    // and the FFN input's (smoothed layer-norm outputs) and the attention
    // context; the FFN output layer (a Gelu's output) stays f32. The
    // sentence-embedding head has no pooler.
    assert_eq!(ops.get("QuantizeLinear"), Some(&(3 * 6)), "{ops:?}");
    // One DequantizeLinear per quantized weight too (Q, K, V, attention
    // output, FFN input: 5 per layer).
    assert_eq!(ops.get("DequantizeLinear"), Some(&(3 * 6 + 5 * 6)), "{ops:?}");
    assert_eq!(ops.get("MatMulInteger"), None);
    let gate = compiled.report.accuracy.as_ref().unwrap();
    assert!(gate.outputs.iter().all(|o| o.cosine >= 0.99), "{gate:?}");

    let golden = read_safetensors(&fixture("minilm-l6").join("minilm-l6-golden.safetensors")).unwrap();
    let model = compiled.to_bytes().unwrap();
    let tract = row_cosines(&run_tract(&model, &golden), &golden);
    eprintln!("MiniLM int8 openvino form, tract: sentence_embedding cosines {tract:.5?}");
    assert!(tract.iter().all(|&c| c >= MIN_ROW_COSINE), "tract: {tract:?}");
    let openvino = row_cosines(&run_openvino(&model, &golden), &golden);
    eprintln!("MiniLM int8 openvino form, OpenVINO: sentence_embedding cosines {openvino:.5?}");
    assert!(
        openvino.iter().all(|&c| c >= MIN_ROW_COSINE),
        "OpenVINO: {openvino:?}"
    );
}

#[test]
fn openvino_takes_int8_only_as_static() {
    let options = PipelineOptions {
        target: Target::Openvino,
        precision: Some(ReducedPrecision::new(ReducedKind::Int8Dynamic)),
        ..Default::default()
    };
    assert_eq!(
        options.validate(),
        Err(bertc::pipeline::OptionError::OpenvinoNeedsStatic)
    );
}
