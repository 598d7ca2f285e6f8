//! Inference of the quantization ops: the standard ones
//! (DynamicQuantizeLinear, QuantizeLinear, DequantizeLinear, QLinearMatMul)
//! and onnxruntime's fused int8 products (MatMulIntegerToFloat,
//! DynamicQuantizeMatMul), which onnxruntime's `quantize_dynamic` /
//! `quantize_static` and Optimum write and bertc's onnxruntime int8 form emits.

use super::super::dtype::DType;
use super::super::graph::ValueInfo;
use super::super::shape::{Dim, Shape};
use super::nn::{matmul, matmul_integer};
use super::{axis_of, Infer};

pub(super) fn eight_bit(t: &ValueInfo) -> bool {
    matches!(t.dtype, DType::I8 | DType::U8)
}

/// A scale or zero point: a scalar (per tensor) or, along `axis` of `x`,
/// 1-D of that dim's length (per axis).
fn per_tensor_or_axis(what: &str, p: &ValueInfo, x: &ValueInfo, axis: i64) -> Result<(), String> {
    match p.shape.rank() {
        0 => Ok(()),
        1 if p.shape.dims() == [Dim::Fixed(1)] => Ok(()),
        1 => {
            let a = axis_of(axis, x.shape.rank())?;
            match (&p.shape.dims()[0], &x.shape.dims()[a]) {
                (Dim::Fixed(n), Dim::Fixed(m)) if n != m => Err(format!(
                    "{what} has {n} values, axis {axis} of {} has {m}",
                    x.shape
                )),
                _ => Ok(()),
            }
        }
        _ => Err(format!("{what} must be a scalar or 1-D, got {}", p.shape)),
    }
}

fn f32_scale(what: &str, s: &ValueInfo) -> Result<(), String> {
    match s.dtype {
        DType::F32 => Ok(()),
        other => Err(format!("{what} must be f32, got {other}")),
    }
}

pub(super) fn dynamic_quantize_linear(x: &ValueInfo) -> Infer {
    if x.dtype != DType::F32 {
        return Err(format!("needs an f32 input, got {}", x.dtype));
    }
    Ok(vec![
        ValueInfo::new(DType::U8, x.shape.clone()),
        ValueInfo::new(DType::F32, Shape(vec![])),
        ValueInfo::new(DType::U8, Shape(vec![])),
    ])
}

pub(super) fn quantize_linear(axis: i64, inputs: &[Option<&ValueInfo>]) -> Infer {
    let (x, scale) = (inputs[0].unwrap(), inputs[1].unwrap());
    if !x.dtype.is_float() {
        return Err(format!("needs a float input, got {}", x.dtype));
    }
    f32_scale("y_scale", scale)?;
    per_tensor_or_axis("y_scale", scale, x, axis)?;
    let dtype = match inputs.get(2).copied().flatten() {
        Some(zp) if eight_bit(zp) => {
            per_tensor_or_axis("y_zero_point", zp, x, axis)?;
            zp.dtype
        }
        Some(zp) => return Err(format!("y_zero_point must be i8 or u8, got {}", zp.dtype)),
        None => DType::U8,
    };
    Ok(vec![ValueInfo::new(dtype, x.shape.clone())])
}

pub(super) fn dequantize_linear(axis: i64, inputs: &[Option<&ValueInfo>]) -> Infer {
    let (x, scale) = (inputs[0].unwrap(), inputs[1].unwrap());
    if !(eight_bit(x) || x.dtype == DType::I32) {
        return Err(format!("needs an i8, u8 or i32 input, got {}", x.dtype));
    }
    f32_scale("x_scale", scale)?;
    per_tensor_or_axis("x_scale", scale, x, axis)?;
    if let Some(zp) = inputs.get(2).copied().flatten() {
        if zp.dtype != x.dtype {
            return Err(format!("x_zero_point must be {}, got {}", x.dtype, zp.dtype));
        }
        per_tensor_or_axis("x_zero_point", zp, x, axis)?;
    }
    Ok(vec![ValueInfo::new(DType::F32, x.shape.clone())])
}

pub(super) fn qlinear_matmul(inputs: &[Option<&ValueInfo>]) -> Infer {
    let x = |i: usize| inputs[i].expect("QLinearMatMul's inputs are all required");
    let (a, b, y_zp) = (x(0), x(3), x(7));
    for (what, scale) in [("a_scale", x(1)), ("b_scale", x(4)), ("y_scale", x(6))] {
        f32_scale(what, scale)?;
    }
    if !eight_bit(y_zp) {
        return Err(format!("y_zero_point must be i8 or u8, got {}", y_zp.dtype));
    }
    let mut out = matmul_integer(&[Some(a), Some(b), Some(x(2)), Some(x(5))])?;
    out[0].dtype = y_zp.dtype;
    Ok(out)
}

/// An f32 product of 8-bit A, B with an optional bias [N] over its last dim.
fn float_product(a: &ValueInfo, b: &ValueInfo, bias: Option<&ValueInfo>) -> Infer {
    let as_float = |t: &ValueInfo| ValueInfo::new(DType::F32, t.shape.clone());
    let out = matmul(&as_float(a), &as_float(b))?;
    if let Some(bias) = bias {
        if bias.dtype != DType::F32
            || bias.shape.rank() != 1
            || bias.shape.dims().last() != out[0].shape.dims().last()
        {
            return Err(format!(
                "bias {}{} must be 1-D f32 over the output's last dim",
                bias.dtype, bias.shape
            ));
        }
    }
    Ok(out)
}

pub(super) fn matmul_integer_to_float(inputs: &[Option<&ValueInfo>]) -> Infer {
    let x = |i: usize| inputs.get(i).copied().flatten();
    let (a, b) = (inputs[0].unwrap(), inputs[1].unwrap());
    matmul_integer(&[Some(a), Some(b), x(4), x(5)])?;
    f32_scale("a_scale", inputs[2].unwrap())?;
    f32_scale("b_scale", inputs[3].unwrap())?;
    float_product(a, b, x(6))
}

pub(super) fn dynamic_quantize_matmul(inputs: &[Option<&ValueInfo>]) -> Infer {
    let x = |i: usize| inputs.get(i).copied().flatten();
    let (a, b) = (inputs[0].unwrap(), inputs[1].unwrap());
    if a.dtype != DType::F32 || !eight_bit(b) {
        return Err(format!(
            "needs f32 A and 8-bit B, got {} and {}",
            a.dtype, b.dtype
        ));
    }
    f32_scale("b_scale", inputs[2].unwrap())?;
    if let Some(zp) = x(3) {
        if zp.dtype != b.dtype {
            return Err(format!("b_zero_point must be {}, got {}", b.dtype, zp.dtype));
        }
    }
    float_product(&ValueInfo::new(DType::U8, a.shape.clone()), b, x(4))
}
