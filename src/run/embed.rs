//! Sentence embeddings, as sentence-transformers' `encode` returns them:
//! the model's `sentence_embedding` output (its pooling and normalisation
//! are in the graph), and the cosine similarity matrix between them.

use super::{output, LoadedModel, RunError};
use crate::tokenize::{TextInput, Truncate};

impl LoadedModel {
    /// One vector per text.
    pub fn embed(&mut self, inputs: &[TextInput]) -> Result<Vec<Vec<f32>>, RunError> {
        self.run_batches(inputs, Truncate::LongestFirst, |_, _, _, outputs| {
            let (values, shape) = output(outputs, "sentence_embedding", 2)?;
            Ok(values.chunks(shape[1].max(1)).map(<[f32]>::to_vec).collect())
        })
    }
}

/// Cosine similarity of every pair of vectors (f64; 0 for a zero vector).
pub fn cosine_matrix(vectors: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let norms: Vec<f64> = vectors.iter().map(|v| norm(v)).collect();
    vectors
        .iter()
        .zip(&norms)
        .map(|(a, na)| {
            vectors
                .iter()
                .zip(&norms)
                .map(|(b, nb)| {
                    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
                    if na * nb > 0.0 {
                        dot / (na * nb)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}
