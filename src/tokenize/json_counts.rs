//! How many vocabulary entries, merges and added tokens a tokenizer.json
//! holds, counted by streaming over the file without keeping any of them:
//! tokenizers builds two hash maps per vocabulary and a map of merges, so
//! a file under the byte bound can still ask for gigabytes (issue 25 N15,
//! the tokenizer.json form of it).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The counts that decide what tokenizers will allocate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub vocab: usize,
    pub merges: usize,
    pub added_tokens: usize,
}

impl Counts {
    /// The largest of them, and which field it is.
    pub fn largest(&self) -> (usize, &'static str) {
        [
            (self.vocab, "a tokenizer.json's `model.vocab`"),
            (self.merges, "a tokenizer.json's `model.merges`"),
            (self.added_tokens, "a tokenizer.json's `added_tokens`"),
        ]
        .into_iter()
        .max_by_key(|&(n, _)| n)
        .unwrap_or((0, "a tokenizer.json's `model.vocab`"))
    }
}

/// The counts of a tokenizer.json's bytes; `None` when the file is not a
/// JSON object (tokenizers' own parse then says what is wrong).
pub fn count(bytes: &[u8]) -> Option<Counts> {
    let top: Top = serde_json::from_slice(bytes).ok()?;
    Some(Counts {
        vocab: top.model.as_ref().map_or(0, |m| m.vocab.0),
        merges: top.model.as_ref().map_or(0, |m| m.merges.0),
        added_tokens: top.added_tokens.0,
    })
}

#[derive(Deserialize)]
struct Top {
    #[serde(default)]
    model: Option<Model>,
    #[serde(default)]
    added_tokens: Entries,
}

#[derive(Deserialize)]
struct Model {
    #[serde(default)]
    vocab: Entries,
    #[serde(default)]
    merges: Entries,
}

/// The number of entries of a JSON object or array, each skipped unread.
#[derive(Default)]
struct Entries(usize);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object or an array")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut n = 0;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Entries(n))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Entries(n))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entries, E> {
                Ok(Entries(0))
            }
        }
        d.deserialize_any(Count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_merges_and_added_tokens_are_counted() {
        let json = br#"{"added_tokens": [{"id": 0}, {"id": 1}],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}"#;
        let c = count(json).unwrap();
        assert_eq!(
            c,
            Counts {
                vocab: 3,
                merges: 1,
                added_tokens: 2
            }
        );
        assert_eq!(c.largest().0, 3);
        // Unigram's vocabulary is a list of [piece, score] pairs.
        let c = count(br#"{"model": {"vocab": [["a", -1.0], ["b", -2.0]]}}"#).unwrap();
        assert_eq!(c.vocab, 2);
        assert_eq!(count(b"[1, 2]"), None);
    }
}
