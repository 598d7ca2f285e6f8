//! Tensors on the host side of the runtime: model inputs, outputs and
//! golden references, with safetensors reading and writing.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::RuntimeError;

#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> HostTensor {
        assert_eq!(shape.iter().product::<usize>(), v.len());
        HostTensor {
            shape,
            data: HostData::F32(v),
        }
    }

    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> HostTensor {
        assert_eq!(shape.iter().product::<usize>(), v.len());
        HostTensor {
            shape,
            data: HostData::I64(v),
        }
    }

    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            HostData::F32(_) => "f32",
            HostData::I64(_) => "i64",
        }
    }

    /// Values as f32 (integers converted), for comparisons.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    fn le_bytes(&self) -> Vec<u8> {
        match &self.data {
            HostData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// Named tensors, sorted by name.
pub type NamedTensors = BTreeMap<String, HostTensor>;

/// Reads every tensor of a safetensors file (f32, f16, bf16 → f32; i64, i32 → i64).
pub fn read_safetensors(path: &Path) -> Result<NamedTensors, RuntimeError> {
    let shown = path.display().to_string();
    let bytes = crate::input_file::read_regular(path)
        .map_err(|e| RuntimeError::Io(format!("cannot read {shown}: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| RuntimeError::Io(format!("{shown} is not a valid safetensors file: {e}")))?;
    let mut out = NamedTensors::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let d = view.data();
        let data = match view.dtype() {
            Dtype::F32 => HostData::F32(
                d.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            Dtype::F16 => HostData::F32(
                d.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => HostData::F32(
                d.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::I64 => HostData::I64(
                d.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            Dtype::I32 => HostData::I64(
                d.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                    .collect(),
            ),
            other => {
                return Err(RuntimeError::Io(format!(
                    "{shown}: tensor `{name}` has dtype {other:?}; expected F32, F16, BF16, I64 or I32"
                )))
            }
        };
        out.insert(name, HostTensor { shape, data });
    }
    Ok(out)
}

/// Writes tensors as a safetensors file (atomically).
pub fn write_safetensors(path: &Path, tensors: &NamedTensors) -> Result<(), RuntimeError> {
    let owned: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            let dtype = match t.data {
                HostData::F32(_) => Dtype::F32,
                HostData::I64(_) => Dtype::I64,
            };
            (n.clone(), t.le_bytes(), dtype, t.shape.clone())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, b, d, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).map_err(|e| RuntimeError::Io(e.to_string()))?;
    crate::atomic_write::write_atomic(path, &bytes)
        .map_err(|e| RuntimeError::Io(format!("cannot write {}: {e}", path.display())))
}
