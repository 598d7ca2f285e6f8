//! The pipelines' arguments `bertc run` takes, named and defaulted as
//! transformers' pipelines name and default them (4.46).

use std::str::FromStr;

/// How many answers an input gets (`top_k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopK {
    /// text-classification's `top_k=None`: every label.
    All,
    Best(usize),
}

impl TopK {
    /// At most `n` of them (`All` keeps every one).
    pub fn at_most(self, n: usize) -> usize {
        match self {
            TopK::All => n,
            TopK::Best(k) => k.min(n),
        }
    }
}

impl FromStr for TopK {
    type Err = String;
    fn from_str(s: &str) -> Result<TopK, String> {
        match s {
            "all" => Ok(TopK::All),
            _ => match s.parse::<usize>() {
                Ok(k) if (1..=100_000).contains(&k) => Ok(TopK::Best(k)),
                _ => Err(format!("`{s}` is not `all` or a whole number from 1 to 100000")),
            },
        }
    }
}

/// token-classification's `aggregation_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregation {
    /// Every token with its best label (`entity`, `index`).
    None,
    /// Neighbouring tokens of one tag grouped, token by token.
    #[default]
    Simple,
    /// Words (a token and its subwords) take their first token's label.
    First,
    /// Words take the label of their mean scores.
    Average,
    /// Words take the label of their most confident token.
    Max,
}

impl Aggregation {
    pub const NAMES: [&'static str; 5] = ["none", "simple", "first", "average", "max"];
}

impl FromStr for Aggregation {
    type Err = String;
    fn from_str(s: &str) -> Result<Aggregation, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => Aggregation::None,
            "simple" => Aggregation::Simple,
            "first" => Aggregation::First,
            "average" => Aggregation::Average,
            "max" => Aggregation::Max,
            _ => return Err(format!("`{s}` is not one of {}", Aggregation::NAMES.join(", "))),
        })
    }
}

/// What a run is asked besides its texts; `Default` is every pipeline's
/// own default. Comparable: a server runs requests asking the same
/// together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    /// Labels (text-classification, default 1), tokens per mask
    /// (fill-mask, default 5), answers (question-answering, default 1).
    pub top_k: Option<TopK>,
    /// token-classification (bertc's default `simple`; transformers' is `none`).
    pub aggregation_strategy: Aggregation,
    /// token-classification: read a text longer than the model in windows
    /// overlapping by this many tokens instead of cutting it.
    pub stride: Option<usize>,
    /// question-answering: window length (default min(384, the model's)).
    pub max_seq_len: Option<usize>,
    /// question-answering: overlap of the context's windows (default
    /// min(max_seq_len / 2, 128)).
    pub doc_stride: Option<usize>,
    /// question-answering: longest answer in tokens (default 15).
    pub max_answer_len: Option<usize>,
    /// question-answering: also offer the empty answer, scored by the
    /// [CLS] position of the least sure window.
    pub handle_impossible_answer: bool,
}

/// An input the model read only in part: it was cut at the model's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Counting from 0 in the call.
    pub input: usize,
    /// Tokens the model read (special tokens included).
    pub tokens: usize,
    /// For a single text: characters read, and the text's length.
    pub chars: Option<(usize, usize)>,
}
