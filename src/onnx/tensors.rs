//! Decoding ONNX tensors and value types into the IR's, including
//! initializers stored in external data files.

use std::path::Path;

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

/// An initializer stored outside the model (ONNX external data): `location`
/// relative to the model's folder, optional `offset` and `length`.
pub(super) fn external_tensor(t: &proto::TensorProto, dir: Option<&Path>) -> Result<Tensor, String> {
    let dir = dir.ok_or("external data needs the model's folder; load the model from its path")?;
    let field = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    let location = field("location").ok_or("external data without a location")?;
    let rel = Path::new(location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "external data location `{location}` must stay inside the model's folder"
        ));
    }
    let number = |k: &str| -> Result<Option<usize>, String> {
        field(k)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("external data {k} `{v}` is not a number"))
            })
            .transpose()
    };
    let path = dir.join(rel);
    let data = crate::input_file::read_regular(&path)
        .map_err(|e| format!("cannot read external data {}: {e}", path.display()))?;
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(data.len().saturating_sub(offset));
    let bytes = data
        .get(
            offset
                ..offset
                    .checked_add(length)
                    .ok_or("external data range overflows")?,
        )
        .ok_or_else(|| {
            format!(
                "external data {}: bytes {offset}..{} are past its end ({} bytes)",
                path.display(),
                offset + length,
                data.len()
            )
        })?;
    let mut inline = t.clone();
    inline.external_data.clear();
    inline.data_location = 0;
    inline.raw_data = bytes::Bytes::copy_from_slice(bytes);
    tensor_from_proto(&inline)
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
