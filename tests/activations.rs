//! Every activation transformers' BERT accepts, in the primitive form the
//! builder writes, against its formula (f64) in tract; fused at -O2 where
//! a standard fused op exists (the GELU family → Gelu), unchanged in value.

use bertc::builder::build_activation;
use bertc::config::Activation;
use bertc::ir::Graph;
use bertc::onnx::{export_bytes, ExportOptions};
use bertc::passes::{level_passes, Level, PassManager};
use bertc::runtime::{HostTensor, NamedTensors, TractSession};

/// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7): enough for a
/// 1e-5 tolerance, and independent of the erf tract uses.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let poly =
        t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// transformers' activations.py, in f64.
fn reference(act: Activation, x: f64) -> f64 {
    let tanh_gelu =
        |x: f64| 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
    match act {
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        Activation::GeluNew | Activation::GeluPytorchTanh => tanh_gelu(x),
        // FastGELUActivation spells it 0.7978845608 · x · (1 + 0.044715 x²).
        Activation::GeluFast => 0.5 * x * (1.0 + (x * 0.7978845608 * (1.0 + 0.044715 * x * x)).tanh()),
        Activation::QuickGelu => x * sigmoid(1.702 * x),
        Activation::Relu => x.max(0.0),
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Mish => x * (1.0 + x.exp()).ln().tanh(),
    }
}

const ALL: [(&str, Activation); 10] = [
    ("gelu", Activation::Gelu),
    ("gelu_new", Activation::GeluNew),
    ("gelu_pytorch_tanh", Activation::GeluPytorchTanh),
    ("gelu_fast", Activation::GeluFast),
    ("quick_gelu", Activation::QuickGelu),
    ("relu", Activation::Relu),
    ("silu", Activation::Silu),
    ("swish", Activation::Silu),
    ("tanh", Activation::Tanh),
    ("mish", Activation::Mish),
];

fn run(g: &Graph, xs: &[f32]) -> Vec<f32> {
    let bytes = export_bytes(g, ExportOptions::default()).unwrap();
    let mut s = TractSession::from_bytes(&bertc::Session::single_threaded(), &bytes).unwrap();
    let inputs: NamedTensors = [("x".to_string(), HostTensor::f32(vec![xs.len()], xs.to_vec()))].into();
    s.run(&inputs).unwrap()["y"].to_f32()
}

#[test]
fn every_activation_matches_its_formula_before_and_after_fusion() {
    let xs: Vec<f32> = (0..=480).map(|i| -8.0 + i as f32 / 30.0).collect();
    for (name, act) in ALL {
        // The config spelling parses to the activation under test.
        let config =
            bertc::config::BertConfig::from_json_str(&format!(r#"{{"hidden_act": "{name}"}}"#), name)
                .unwrap();
        assert_eq!(config.hidden_act, act, "{name}");

        let primitive = build_activation(act).unwrap();
        let mut fused = primitive.clone();
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .verify_each(true)
            .run(&mut fused)
            .unwrap();
        let gelu_family = name.starts_with("gelu");
        let histogram = fused.op_histogram();
        assert_eq!(
            histogram.get("Gelu").copied().unwrap_or(0),
            gelu_family as usize,
            "{name}: {histogram:?}"
        );
        for (form, g) in [("primitive", &primitive), ("-O2", &fused)] {
            let ys = run(g, &xs);
            for (&x, &y) in xs.iter().zip(&ys) {
                let want = reference(act, x as f64);
                let err = (y as f64 - want).abs();
                assert!(
                    err <= 1e-5 * want.abs().max(1.0),
                    "{name} {form}: f({x}) = {y}, expected {want}"
                );
            }
        }
    }
}
