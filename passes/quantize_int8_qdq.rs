//! `quantize_int8_qdq` (`--target openvino --quantize static`): linear
//! layers `Add(MatMul(x, W), b)` with QuantizeLinear/DequantizeLinear
//! pairs around the product's operands, the form OpenVINO turns into int8
//! kernels (it reads each pair as a FakeQuantize and runs the MatMul on u8
//! activations × s8 weights):
//!
//! ```text
//! xd = DequantizeLinear(QuantizeLinear(x · 1/f, s, 128), s, 128)   one per distinct x
//! Wd = DequantizeLinear(Wq, ws, 0, axis 1)                         s8, a scale per column
//! y  = MatMul(xd, Wd) + b
//! ```
//!
//! Activations are u8 with zero point 128 and one calibrated scale per
//! tensor, `s = max_k(r_k / f_k) / 127` from the ranges `r_k` of each input
//! channel; weights are symmetric s8 per output column. The layer norms'
//! outputs (Q/K/V and the FFN input, where BERT's outlier channels live)
//! are smoothed first (SmoothQuant, α = 0.5: `x·W = (x/f)·(f·W)`), the
//! factors shared with the onnxruntime form ([`super::smoothing_factors`]).
//! A Gelu's output (the FFN output layer's input) keeps f32: one calibrated
//! scale there cannot cover rows that differ by orders of magnitude, and
//! OpenVINO has no per-token form in Q/DQ pairs.
//!
//! Every op is standard ONNX: tract runs the result for the accuracy gate
//! (at about f32 speed: it does not fuse Q/DQ pairs into integer products).

use std::collections::HashMap;

use crate::ir::{BinaryOp, DType, Graph, IrError, Op, Tensor, Value};

use super::pattern::constant;
use super::quantize_int8::targets;
use super::{quantize_weight_s8, Pass, PassReport, WeightGranularity};

#[derive(Debug, Clone)]
pub struct QuantizeInt8Qdq {
    pub weights: WeightGranularity,
    /// Linear layers whose name contains one of these are kept in f32.
    pub skip: Vec<String>,
    /// Calibrated range (max |x|) of each input channel, keyed by the name
    /// of the value a linear layer reads.
    pub ranges: HashMap<String, Vec<f32>>,
    /// SmoothQuant factors, keyed like `ranges`.
    pub smooth: HashMap<String, Vec<f32>>,
    /// Quantize the FFN output layer (a Gelu's output) too.
    pub gelu_inputs: bool,
}

/// u8 activations centred on 128: symmetric ranges in 255 levels.
const ACTIVATION_ZERO_POINT: u8 = 128;

impl Pass for QuantizeInt8Qdq {
    fn name(&self) -> &'static str {
        "quantize_int8_qdq"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut report = PassReport::default();
        let mut dequantized: HashMap<Value, Value> = HashMap::new();
        for t in targets(g, &self.skip) {
            if !self.gelu_inputs && matches!(g.node(t.x.node).op, Op::Gelu { .. }) {
                continue;
            }
            let name = crate::ir::value_name(g, t.x);
            let Some(range) = self.ranges.get(&name) else {
                continue;
            };
            let smooth = self.smooth.get(&name).filter(|f| f.len() == range.len());
            let before = g.node_count();
            let xd = match dequantized.get(&t.x) {
                Some(&done) => done,
                None => {
                    let done = self.activation(g, t.x, range, smooth.map(Vec::as_slice))?;
                    dequantized.insert(t.x, done);
                    done
                }
            };
            let w = constant(g, t.w).expect("linear weight").clone();
            let (wq, scales) = quantize_weight_s8(&w, smooth.map(Vec::as_slice), self.weights, 127.0);
            let base = g.node(t.w.node).name.clone();
            let n = scales.len();
            let wq = g.add_const(&g.fresh_name(&format!("{base}.int8")), wq)?;
            let ws = g.add_const(
                &g.fresh_name(&format!("{base}.scale")),
                Tensor::from_f32(vec![n], &scales),
            )?;
            let zero = Tensor::from_raw(DType::I8, vec![n], vec![0u8; n].into()).expect("sizes match");
            let wz = g.add_const(&g.fresh_name(&format!("{base}.zero_point")), zero)?;
            let wd = g.add(
                &g.fresh_name(&format!("{base}.dequantized")),
                Op::DequantizeLinear { axis: 1 },
                &[wq, ws, wz],
            )?;
            // The product reads the dequantized operands in place of its own.
            let matmul = g
                .consumers(t.w)
                .into_iter()
                .find(|&(user, _)| g.node(user).op == Op::MatMul)
                .map(|(user, _)| user)
                .expect("a linear weight feeds its MatMul");
            g.set_input(matmul, 0, xd);
            g.set_input(matmul, 1, wd);
            report.matches += 1;
            report.nodes_added += g.node_count() - before;
        }
        Ok(report)
    }
}

impl QuantizeInt8Qdq {
    /// `DequantizeLinear(QuantizeLinear(x · 1/f))` with one calibrated scale.
    fn activation(
        &self,
        g: &mut Graph,
        x: Value,
        range: &[f32],
        smooth: Option<&[f32]>,
    ) -> Result<Value, IrError> {
        let base = crate::ir::value_name(g, x);
        let (input, max) = match smooth {
            Some(f) => {
                let inv: Vec<f32> = f.iter().map(|f| 1.0 / f).collect();
                let c = g.add_const(
                    &g.fresh_name(&format!("{base}.smooth_inv")),
                    Tensor::from_f32(vec![inv.len()], &inv),
                )?;
                let s = g.add(
                    &g.fresh_name(&format!("{base}.smoothed")),
                    Op::Binary(BinaryOp::Mul),
                    &[x, c],
                )?;
                let max = range.iter().zip(f).map(|(r, f)| r / f).fold(0f32, f32::max);
                (s, max)
            }
            None => (x, range.iter().copied().fold(0f32, f32::max)),
        };
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let s = g.add_const(
            &g.fresh_name(&format!("{base}.act_scale")),
            Tensor::scalar_f32(scale),
        )?;
        let zp = Tensor::from_raw(DType::U8, vec![], vec![ACTIVATION_ZERO_POINT].into()).expect("one byte");
        let z = g.add_const(&g.fresh_name(&format!("{base}.act_zero_point")), zp)?;
        let q = g.add(
            &g.fresh_name(&format!("{base}.quantized")),
            Op::QuantizeLinear { axis: 1 },
            &[input, s, z],
        )?;
        g.add(
            &g.fresh_name(&format!("{base}.dequantized")),
            Op::DequantizeLinear { axis: 1 },
            &[q, s, z],
        )
    }
}
