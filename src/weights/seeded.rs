//! Seeded random initialisation, following transformers' `_init_weights`
//! for BERT: normal(0, initializer_range) for Linear and Embedding weights,
//! the padding row of the word embeddings zeroed, biases 0, layer-norm
//! weights 1. Same seed and config, same bytes, on any machine and with any
//! number of threads.
//!
//! Speed matters here (BERT-base draws 110 M numbers and should compile in
//! well under a second), so values are drawn straight into the final byte
//! layout, in chunks that each have their own generator and run in
//! parallel. Linear weights are drawn in the [in, out] layout MatMul uses:
//! the draws are i.i.d., so the layout only decides which byte holds which.

use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::{Init, ParamSpec, Weights, WeightsError};
use crate::ir::{DType, Tensor};

/// Elements drawn by one generator: big enough to amortise seeding, small
/// enough that the word-embedding table spreads over every core.
const CHUNK: usize = 1 << 18;

pub fn seeded(specs: &[ParamSpec], seed: u64) -> Result<Weights, WeightsError> {
    let tensors = specs
        .par_iter()
        .map(|spec| Ok((spec.name.clone(), draw(spec, seed)?)))
        .collect::<Result<_, WeightsError>>()?;
    Ok(Weights {
        tensors,
        ignored: Vec::new(),
    })
}

/// The shapes without the values, for commands that only count (inspect):
/// normal-drawn tensors are left zero in anonymous memory the process
/// never touches, mapped without reserving swap, so neither a bert-large
/// (1.3 GB) nor a config whose one table is 34 GB (inside the parameter
/// bound; issue 25, N16) costs memory or is refused by the kernel's
/// overcommit check. The small constant inits (biases 0, layer norms 1)
/// are filled as [`seeded`] fills them, so passes see the same structure.
pub fn placeholder(specs: &[ParamSpec]) -> Result<Weights, WeightsError> {
    let tensors = specs
        .iter()
        .map(|spec| {
            let t = match spec.init {
                Init::Normal { .. } | Init::NormalPadded { .. } => {
                    let dims = layout(spec);
                    let len = byte_len(spec, &dims)?;
                    let bytes = untouched_zeros(len).map_err(|_| too_big(spec, len))?;
                    Tensor::from_raw(DType::F32, dims, bytes).expect("size computed from dims")
                }
                Init::Zeros | Init::Ones | Init::Sinusoidal => draw(spec, 0)?,
            };
            Ok((spec.name.clone(), t))
        })
        .collect::<Result<_, WeightsError>>()?;
    Ok(Weights {
        tensors,
        ignored: Vec::new(),
    })
}

/// `len` zero bytes no page of which is touched until read: an anonymous
/// map with MAP_NORESERVE (the kernel neither commits nor counts it).
fn untouched_zeros(len: usize) -> std::io::Result<bytes::Bytes> {
    if len == 0 {
        return Ok(bytes::Bytes::new());
    }
    let map = memmap2::MmapOptions::new()
        .len(len)
        .no_reserve_swap()
        .map_anon()?
        .make_read_only()?;
    Ok(bytes::Bytes::from_owner(map))
}

/// The f32 bytes of a parameter of shape `dims`, checked: the config's
/// bound keeps this far from overflow, but the check costs nothing.
fn byte_len(spec: &ParamSpec, dims: &[usize]) -> Result<usize, WeightsError> {
    dims.iter()
        .try_fold(4usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| too_big(spec, usize::MAX))
}

/// `len` zero bytes, or the refusal naming the parameter when the
/// allocator cannot give them (a calloc that fails is an error here, not
/// the process's abort).
fn zeroed(spec: &ParamSpec, len: usize) -> Result<Vec<u8>, WeightsError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).map_err(|_| too_big(spec, len))?;
    // SAFETY: `layout` has a non-zero size; a non-null result is `len`
    // zeroed bytes allocated with the global allocator's u8 layout, which
    // is what Vec::from_raw_parts needs (capacity = length = len).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout);
        if ptr.is_null() {
            return Err(too_big(spec, len));
        }
        Ok(Vec::from_raw_parts(ptr, len, len))
    }
}

fn too_big(spec: &ParamSpec, bytes: usize) -> WeightsError {
    WeightsError::Allocation {
        name: spec.name.clone(),
        shape: spec.shape.clone(),
        bytes,
    }
}

/// The stored layout of a parameter: Linear weights [in, out].
fn layout(spec: &ParamSpec) -> Vec<usize> {
    match (spec.transpose, spec.shape.as_slice()) {
        (true, &[rows, cols]) => vec![cols, rows],
        _ => spec.shape.clone(),
    }
}

fn draw(spec: &ParamSpec, seed: u64) -> Result<Tensor, WeightsError> {
    let dims = layout(spec);
    let n: usize = dims.iter().product();
    let mut bytes = zeroed(spec, byte_len(spec, &dims)?)?;
    let fill = |bytes: &mut [u8], v: f32| {
        for c in bytes.chunks_exact_mut(4) {
            c.copy_from_slice(&v.to_le_bytes());
        }
    };
    match spec.init {
        Init::Normal { std } | Init::NormalPadded { std, .. } => {
            // StandardNormal in f64, then scaled: 4.1 ns a draw on this machine
            // against 6.0 ns for rand_distr's Normal<f32>.
            bytes
                .par_chunks_mut(CHUNK * 4)
                .enumerate()
                .for_each(|(i, chunk)| {
                    let mut rng = generator(seed, &spec.name, i as u64);
                    for c in chunk.chunks_exact_mut(4) {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        c.copy_from_slice(&((z * std) as f32).to_le_bytes());
                    }
                });
            if let Init::NormalPadded { padding_row, .. } = spec.init {
                let width = n / dims[0] * 4;
                bytes[padding_row * width..(padding_row + 1) * width].fill(0);
            }
        }
        Init::Zeros => {}
        Init::Ones => fill(&mut bytes, 1.0),
        Init::Sinusoidal => {
            let table = sinusoidal_table(dims[0], n / dims[0].max(1));
            for (c, v) in bytes.chunks_exact_mut(4).zip(table) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(Tensor::from_raw(DType::F32, dims, bytes.into()).expect("size computed from dims"))
}

/// DistilBERT's fixed position table, as transformers'
/// `create_sinusoidal_embeddings` makes it (in f64, stored as f32):
/// `pos / 10000^(2·(j/2)/dim)`, sine in even columns, cosine in odd ones.
pub fn sinusoidal_table(rows: usize, dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * dim);
    for pos in 0..rows {
        for j in 0..dim {
            let angle = pos as f64 / 10000f64.powf(2.0 * (j / 2) as f64 / dim as f64);
            out.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    out
}

/// The generator of one chunk of one tensor, keyed by seed, name and chunk,
/// so that adding a parameter or reordering the build changes no other bytes.
fn generator(seed: u64, name: &str, chunk: u64) -> Xoshiro256PlusPlus {
    let mut key = blake3::Hasher::new();
    key.update(&seed.to_le_bytes());
    key.update(name.as_bytes());
    key.update(&chunk.to_le_bytes());
    Xoshiro256PlusPlus::from_seed(*key.finalize().as_bytes())
}
