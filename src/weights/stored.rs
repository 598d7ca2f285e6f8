//! A tensor as a checkpoint stores it — dtype, shape, and where its
//! elements lie in a memory-mapped file — and its widening to f32.
//!
//! safetensors tensors are contiguous; a PyTorch storage may be shared by
//! several tensors, each a view with its own offset and strides (e.g. a
//! transposed weight), so the general form is strided and views are
//! materialized element by element. Readers check every view against its
//! storage when the file is opened; the checks here repeat that cheaply so
//! a bug upstream is an error, not an out-of-bounds panic.

use half::{bf16, f16};

/// Element types a checkpoint may hold. Only the float types are weights
/// bertc reads; the others are named in errors (and are fine as buffers,
/// e.g. int64 `position_ids`, which are never read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// Any other type, by the name its format uses (`I64`, `torch.int64`),
    /// with its element size in bytes.
    Other {
        name: String,
        size: usize,
    },
}

impl DType {
    pub fn size(&self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Other { size, .. } => *size,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Other { name, .. } => name,
        }
    }
}

/// One tensor of a checkpoint: a (possibly strided) view of bytes in
/// file `file` of its checkpoint, starting at byte `start`.
#[derive(Debug, Clone)]
pub struct StoredTensor {
    pub file: usize,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Byte offset of the storage (element 0) in the file.
    pub start: usize,
    /// Offset of the view's first element in the storage, in elements.
    pub offset: usize,
    /// Strides in elements, one per dimension.
    pub strides: Vec<usize>,
}

/// Row-major strides of `shape` (the layout of a contiguous tensor).
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        // Saturating: an empty tensor may have absurd other dims.
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1]);
    }
    strides
}

impl StoredTensor {
    /// Elements in the view (None on overflow).
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The values as f32, read from `file` (the mapped file `self.file`).
    /// Err names the dtype when it is not a float type bertc reads.
    pub fn to_f32(&self, file: &[u8]) -> Result<Vec<f32>, String> {
        let widen: fn(&[u8]) -> f32 = match self.dtype {
            DType::F32 => |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            DType::F16 => |c| f16::from_le_bytes([c[0], c[1]]).to_f32(),
            DType::BF16 => |c| bf16::from_le_bytes([c[0], c[1]]).to_f32(),
            DType::Other { ref name, .. } => {
                return Err(format!("has dtype {name}; expected F32, F16 or BF16"))
            }
        };
        let size = self.dtype.size();
        let numel = self.numel().ok_or("has a shape whose size overflows")?;
        let out_of_bounds = || "lies outside its file (corrupt checkpoint)".to_string();
        if numel == 0 {
            return Ok(Vec::new());
        }
        if self.strides == contiguous_strides(&self.shape) {
            let begin = self
                .offset
                .checked_mul(size)
                .and_then(|o| o.checked_add(self.start))
                .ok_or_else(out_of_bounds)?;
            let end = numel
                .checked_mul(size)
                .and_then(|n| n.checked_add(begin))
                .ok_or_else(out_of_bounds)?;
            let bytes = file.get(begin..end).ok_or_else(out_of_bounds)?;
            return Ok(bytes.chunks_exact(size).map(widen).collect());
        }
        // A strided view: walk the indices in row-major order, moving the
        // element offset by each dimension's stride (an odometer).
        let storage = file.get(self.start..).ok_or_else(out_of_bounds)?;
        let last = self
            .shape
            .iter()
            .zip(&self.strides)
            .try_fold(self.offset, |acc, (&d, &s)| {
                acc.checked_add((d - 1).checked_mul(s)?)
            })
            .ok_or_else(out_of_bounds)?;
        if last
            .checked_add(1)
            .and_then(|n| n.checked_mul(size))
            .is_none_or(|end| end > storage.len())
        {
            return Err(out_of_bounds());
        }
        let mut out = Vec::with_capacity(numel);
        let mut index = vec![0usize; self.shape.len()];
        let mut at = self.offset;
        for _ in 0..numel {
            out.push(widen(&storage[at * size..at * size + size]));
            for dim in (0..self.shape.len()).rev() {
                index[dim] += 1;
                at += self.strides[dim];
                if index[dim] < self.shape[dim] {
                    break;
                }
                at -= self.strides[dim] * self.shape[dim];
                index[dim] = 0;
            }
        }
        Ok(out)
    }
}
