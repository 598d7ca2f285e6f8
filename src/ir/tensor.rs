//! Constant tensors (weights and small constants) held by the IR.
//!
//! Data is kept as little-endian raw bytes in a shared `Bytes` buffer: the
//! layout ONNX stores in `raw_data`, so emitting a 400 MB model copies each
//! weight once, and cloning a graph copies none.

use bytes::Bytes;
use half::{bf16, f16};

use super::dtype::DType;
use super::shape::{Dim, Shape};

#[derive(Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    dims: Vec<usize>,
    data: Bytes,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}{:?} #{})",
            self.dtype,
            self.dims,
            self.content_hash()
        )
    }
}

impl Tensor {
    /// Wraps raw little-endian bytes; `None` if the byte count does not fit.
    pub fn from_raw(dtype: DType, dims: Vec<usize>, data: Bytes) -> Option<Tensor> {
        // Checked: dims from a file may claim more bytes than exist (2^62
        // rows would wrap to 0 bytes and pass an unchecked comparison).
        let len = dims.iter().try_fold(dtype.size(), |n, &d| n.checked_mul(d))?;
        (data.len() == len).then_some(Tensor { dtype, dims, data })
    }

    pub fn from_f32(dims: Vec<usize>, values: &[f32]) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), values.len());
        // Element-wise stores into a preallocated buffer: as fast as a memcpy
        // (a flat_map/collect of bytes is several times slower on 100 M floats).
        let mut data = vec![0u8; values.len() * 4];
        for (c, v) in data.chunks_exact_mut(4).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        Tensor {
            dtype: DType::F32,
            dims,
            data: data.into(),
        }
    }

    pub fn from_i64(dims: Vec<usize>, values: &[i64]) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), values.len());
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor {
            dtype: DType::I64,
            dims,
            data: data.into(),
        }
    }

    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::from_f32(vec![], &[v])
    }

    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor::from_i64(vec![], &[v])
    }

    pub fn vec_i64(values: &[i64]) -> Tensor {
        Tensor::from_i64(vec![values.len()], values)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    pub fn shape(&self) -> Shape {
        Shape::fixed(&self.dims)
    }

    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn raw(&self) -> &Bytes {
        &self.data
    }

    /// Values widened to f32, for float tensors.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        let chunks = |n| self.data.chunks_exact(n);
        Some(match self.dtype {
            DType::F32 => chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::F16 => chunks(2)
                .map(|c| f16::from_le_bytes(c.try_into().unwrap()).to_f32())
                .collect(),
            DType::BF16 => chunks(2)
                .map(|c| bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
                .collect(),
            _ => return None,
        })
    }

    /// A float tensor's values as little-endian f32 bytes, for reading in
    /// place: its own bytes when stored as f32 (no copy: BERT-base's weights
    /// as a `Vec<f32>` would be 340 MB of fresh memory), else converted.
    pub fn f32_le_bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self.dtype {
            DType::F32 => Some(std::borrow::Cow::Borrowed(&self.data[..])),
            _ => Some(std::borrow::Cow::Owned(
                self.to_f32_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )),
        }
    }

    /// Values widened to i64, for integer and bool tensors.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        let chunks = |n| self.data.chunks_exact(n);
        Some(match self.dtype {
            DType::I64 => chunks(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::I32 => chunks(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::I8 => self.data.iter().map(|&b| b as i8 as i64).collect(),
            DType::U8 | DType::Bool => self.data.iter().map(|&b| b as i64).collect(),
            _ => return None,
        })
    }

    /// Small integer vectors (shapes, axes, indices) as dims, which is how
    /// shape inference tracks them.
    pub fn as_known_ints(&self) -> Option<Vec<Dim>> {
        if self.dims.len() > 1 || self.len() > 16 {
            return None;
        }
        Some(self.to_i64_vec()?.into_iter().map(Dim::Fixed).collect())
    }

    /// A short content hash: 16 hex digits of BLAKE3 over dtype, dims and bytes.
    pub fn content_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.dtype.name().as_bytes());
        for d in &self.dims {
            h.update(&(*d as u64).to_le_bytes());
        }
        if self.data.len() > 1 << 20 {
            h.update_rayon(&self.data);
        } else {
            h.update(&self.data);
        }
        h.finalize().to_hex()[..16].to_string()
    }

    /// A compact rendering of the values of a small tensor (≤ 8 elements).
    pub fn small_values(&self) -> Option<String> {
        if self.len() > 8 {
            return None;
        }
        let items: Vec<String> = if self.dtype.is_float() {
            self.to_f32_vec()?.iter().map(|v| format!("{v:e}")).collect()
        } else {
            self.to_i64_vec()?.iter().map(|v| v.to_string()).collect()
        };
        Some(if self.dims.is_empty() {
            items.join("")
        } else {
            format!("[{}]", items.join(","))
        })
    }
}
