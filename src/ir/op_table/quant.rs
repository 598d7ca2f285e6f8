//! Entries of the standard quantization ops.

use super::super::op::Op;
use super::{
    between, entries, exactly, onnx, AttrSpec, Attrs,
    CostRule::{self, Uncounted, WeightView},
};

entries! {
    /// Inputs: a, b (i8 or u8), a_zero_point, b_zero_point (optional).
    MATMUL_INTEGER = onnx("MatMulInteger", 10, between(2, 4), CostRule::MatMul { b: 1 }, |_| {
        Ok(Op::MatMulInteger)
    });
    /// Outputs: y (u8), y_scale, y_zero_point.
    DYNAMIC_QUANTIZE_LINEAR = onnx("DynamicQuantizeLinear", 11, exactly(1), Uncounted, |_| {
        Ok(Op::DynamicQuantizeLinear)
    })
    .with_outputs(3);
    /// Inputs: x, y_scale, y_zero_point (optional).
    QUANTIZE_LINEAR = onnx("QuantizeLinear", 10, between(2, 3), Uncounted, |a| {
        Ok(Op::QuantizeLinear { axis: axis(a)? })
    })
    .with_attributes(&[AttrSpec::int("axis", 1)]);
    /// Inputs: x, x_scale, x_zero_point (optional).
    DEQUANTIZE_LINEAR = onnx("DequantizeLinear", 10, between(2, 3), WeightView, |a| {
        Ok(Op::DequantizeLinear { axis: axis(a)? })
    })
    .with_attributes(&[AttrSpec::int("axis", 1)]);
    /// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
    QLINEAR_MATMUL = onnx("QLinearMatMul", 10, exactly(8), CostRule::MatMul { b: 3 }, |_| {
        Ok(Op::QLinearMatMul)
    });
}

/// The axis of a per-axis (De)QuantizeLinear. Blocked quantization
/// (opset 21) and an output type other than the zero point's have no IR form.
fn axis(a: &Attrs) -> Result<i64, String> {
    if a.node().int("block_size").unwrap_or(0) != 0 || a.node().int("output_dtype").unwrap_or(0) != 0 {
        return Err("block_size / output_dtype are not supported".into());
    }
    a.int("axis")
}
