//! Seeded random initialisation, following transformers' `_init_weights`
//! for BERT: normal(0, initializer_range) for Linear and Embedding weights,
//! the padding row of the word embeddings zeroed, biases 0, layer-norm
//! weights 1. Same seed and config, same bytes, on any machine.

use rand_distr::{Distribution, Normal};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::{finish, Init, ParamSpec, Weights};

pub fn seeded(specs: &[ParamSpec], seed: u64) -> Weights {
    let tensors = specs
        .par_iter()
        .map(|spec| (spec.name.clone(), finish(spec, draw(spec, seed))))
        .collect();
    Weights { tensors }
}

/// Each tensor gets its own generator, keyed by the seed and its name, so
/// that adding a parameter or reordering the build changes no other tensor.
fn draw(spec: &ParamSpec, seed: u64) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    let normal = |std: f64| {
        let mut key = blake3::Hasher::new();
        key.update(&seed.to_le_bytes());
        key.update(spec.name.as_bytes());
        let mut rng = Xoshiro256PlusPlus::from_seed(*key.finalize().as_bytes());
        let dist = Normal::new(0f32, std as f32).expect("std validated >= 0 and finite");
        (0..n).map(|_| dist.sample(&mut rng)).collect::<Vec<f32>>()
    };
    match spec.init {
        Init::Normal { std } => normal(std),
        Init::NormalPadded { std, padding_row } => {
            let mut v = normal(std);
            let width = n / spec.shape[0];
            v[padding_row * width..(padding_row + 1) * width].fill(0.0);
            v
        }
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
    }
}
