//! Decoding ONNX tensors and value types into the IR's (initializers
//! stored in external data files: `external.rs`).

use super::proto::{self, tensor_shape_proto::dimension::Value as DimValue};
use crate::ir::{DType, Dim, Shape, Tensor};

pub(super) fn dtype_from_onnx(code: i32) -> Result<DType, String> {
    use proto::data_type as t;
    Ok(match code {
        t::FLOAT => DType::F32,
        t::FLOAT16 => DType::F16,
        t::BFLOAT16 => DType::BF16,
        t::INT64 => DType::I64,
        t::INT32 => DType::I32,
        t::INT8 => DType::I8,
        t::UINT8 => DType::U8,
        t::BOOL => DType::Bool,
        other => return Err(format!("element type {other} is not supported")),
    })
}

pub(super) fn value_type(v: &proto::ValueInfoProto) -> Result<(DType, Shape), String> {
    let Some(proto::TypeProto {
        value: Some(proto::type_proto::Value::TensorType(t)),
        ..
    }) = &v.r#type
    else {
        return Err("only tensor-typed values are supported".into());
    };
    let dtype = dtype_from_onnx(t.elem_type)?;
    let shape = t.shape.as_ref().ok_or("the value has no shape")?;
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(DimValue::DimValue(n)) if *n < 0 => {
                Err(format!("dim {i} is {n}: a size cannot be negative"))
            }
            Some(DimValue::DimValue(n)) => Ok(Dim::Fixed(*n)),
            Some(DimValue::DimParam(s)) if !s.is_empty() => Ok(Dim::Sym(s.clone())),
            _ => Ok(Dim::Sym(format!("{}_dim{i}", v.name))),
        })
        .collect::<Result<_, String>>()?;
    Ok((dtype, Shape(dims)))
}

pub(super) fn is_external(t: &proto::TensorProto) -> bool {
    !t.external_data.is_empty() || t.data_location == 1
}

pub(super) fn tensor_from_proto(t: &proto::TensorProto) -> Result<Tensor, String> {
    let dtype = dtype_from_onnx(t.data_type)?;
    if is_external(t) {
        return Err("external data is only supported for initializers".into());
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<Result<_, _>>()?;
    let data: bytes::Bytes = if !t.raw_data.is_empty() || dims.contains(&0) {
        t.raw_data.clone()
    } else {
        match dtype {
            DType::F32 => t
                .float_data
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
            DType::I64 => t
                .int64_data
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
            DType::I32 => t
                .int32_data
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
            DType::I8 | DType::U8 | DType::Bool => {
                t.int32_data.iter().map(|&v| v as u8).collect::<Vec<u8>>().into()
            }
            DType::F16 | DType::BF16 => t
                .int32_data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        }
    };
    let shown = format!("{dims:?}");
    Tensor::from_raw(dtype, dims, data).ok_or_else(|| {
        format!(
            "tensor `{}` holds the wrong number of bytes for shape {shown} {dtype}",
            t.name
        )
    })
}
