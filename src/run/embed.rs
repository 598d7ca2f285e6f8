//! Sentence embeddings, as sentence-transformers' `encode` returns them:
//! the model's `sentence_embedding` output (its pooling and normalisation
//! are in the graph), and, when asked, the cosine similarity matrix
//! between them.

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::{LoadedModel, Progress, RunError};
use crate::tokenize::TextInput;

/// The most inputs a similarity matrix is made for. Its N² cells are
/// written as they are computed (never held at once), but they are
/// written: at 2,000 inputs 4 million cells, about 90 MB of `--json` and
/// 2,000 columns per row of the human form; at the 50,000 lines a
/// `--jsonl` run streams it would be 2.5 billion cells (~55 GB). Past
/// this, take the embeddings (`--jsonl`) and compare the pairs you need.
pub const MAX_SIMILARITY_INPUTS: usize = 2000;

impl LoadedModel {
    /// One vector per text.
    pub fn embed(
        &mut self,
        inputs: &[TextInput],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Vec<f32>>, RunError> {
        self.run_inputs(inputs, progress, |_, _, _, outputs| {
            Ok(outputs.get("sentence_embedding", 2)?.0.to_vec())
        })
    }
}

/// The cosine similarity of every pair of vectors (f64; 0 for a zero
/// vector), a row at a time: iterated or serialized, its N² cells are
/// never held at once.
pub struct Similarity<'a> {
    vectors: &'a [Vec<f32>],
    norms: Vec<f64>,
}

impl<'a> Similarity<'a> {
    pub fn new(vectors: &'a [Vec<f32>]) -> Similarity<'a> {
        let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        Similarity {
            vectors,
            norms: vectors.iter().map(|v| norm(v)).collect(),
        }
    }

    /// Row `i`: the cosine of vector `i` with each vector.
    pub fn row(&self, i: usize) -> Vec<f64> {
        let (a, na) = (&self.vectors[i], self.norms[i]);
        self.vectors
            .iter()
            .zip(&self.norms)
            .map(|(b, nb)| {
                let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
                if na * nb > 0.0 {
                    dot / (na * nb)
                } else {
                    0.0
                }
            })
            .collect()
    }

    pub fn rows(&self) -> impl Iterator<Item = Vec<f64>> + '_ {
        (0..self.vectors.len()).map(|i| self.row(i))
    }
}

impl Serialize for Similarity<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.vectors.len()))?;
        for row in self.rows() {
            seq.serialize_element(&row)?;
        }
        seq.end()
    }
}

/// The `--json --similarity` document, `{"embeddings", "similarity",
/// "task"}`, written as it is serialized. Its keys are in the order, and
/// its embeddings in the f64 form, of the document [`super::Outputs::to_json`]
/// builds, so both print alike.
#[derive(serde::Serialize)]
pub struct SimilarityDocument<'a> {
    embeddings: AsF64<'a>,
    similarity: Similarity<'a>,
    task: &'static str,
}

impl<'a> SimilarityDocument<'a> {
    pub fn new(vectors: &'a [Vec<f32>]) -> SimilarityDocument<'a> {
        SimilarityDocument {
            embeddings: AsF64(vectors),
            similarity: Similarity::new(vectors),
            task: super::Task::SentenceSimilarity.name(),
        }
    }
}

/// Vectors serialized as f64, as a `serde_json::Value` holds them.
struct AsF64<'a>(&'a [Vec<f32>]);

impl Serialize for AsF64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            let wide: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            seq.serialize_element(&wide)?;
        }
        seq.end()
    }
}
