//! The fields of config.json that only transformers' pipelines read, not
//! part of [`crate::config::BertConfig`]: `problem_type` (how
//! text-classification turns logits into scores) and `label2id` as the file
//! spells it, in file order (zero-shot classification takes the first
//! label starting with "entail", as the pipeline iterates the dict).

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::RunError;

/// What the pipelines read of config.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineConfig {
    pub problem_type: Option<String>,
    /// `None` when the file has no `label2id`.
    pub label2id: Option<Vec<(String, usize)>>,
}

/// The problem types transformers knows.
const PROBLEM_TYPES: [&str; 3] = [
    "single_label_classification",
    "multi_label_classification",
    "regression",
];

impl PipelineConfig {
    /// Reads config.json at `path`; a field of the wrong kind is an error
    /// naming it.
    pub fn read(path: &Path) -> Result<PipelineConfig, RunError> {
        let bytes = crate::input_file::read_regular(path).map_err(|error| RunError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let field = |field: &'static str, message: String| RunError::Field {
            path: path.to_path_buf(),
            field,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| field("problem_type", e.to_string()))?;
        let problem_type = match value.get("problem_type") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if PROBLEM_TYPES.contains(&s.as_str()) => Some(s.clone()),
            Some(serde_json::Value::String(s)) => {
                return Err(field(
                    "problem_type",
                    format!("`{s}`: expected {}", PROBLEM_TYPES.join(", ")),
                ))
            }
            Some(v) => return Err(field("problem_type", format!("{v}: expected a string"))),
        };
        // Read again for label2id alone: serde_json's Value sorts the keys.
        let labels: Labels = serde_json::from_slice(&bytes).map_err(|e| field("label2id", e.to_string()))?;
        Ok(PipelineConfig {
            problem_type,
            label2id: labels.label2id.map(|l| l.0),
        })
    }

    pub fn multi_label(&self) -> bool {
        self.problem_type.as_deref() == Some("multi_label_classification")
    }
}

#[derive(Deserialize)]
struct Labels {
    #[serde(default)]
    label2id: Option<Ordered>,
}

/// A JSON object of label → id kept in file order (serde_json's own map
/// sorts its keys).
struct Ordered(Vec<(String, usize)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("label2id: an object of label names to non-negative integer ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = vec![];
                while let Some((k, v)) = map.next_entry::<String, usize>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<PipelineConfig, RunError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        PipelineConfig::read(&path)
    }

    #[test]
    fn label2id_keeps_the_file_order_and_problem_type_is_checked() {
        let c =
            read(r#"{"label2id": {"ENTAILMENT": 2, "contradiction": 0, "Entails": 1}, "hidden_size": 4}"#)
                .unwrap();
        let names: Vec<&str> = c
            .label2id
            .as_ref()
            .unwrap()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["ENTAILMENT", "contradiction", "Entails"]);
        assert!(!c.multi_label());
        assert!(read(r#"{"problem_type": "multi_label_classification"}"#)
            .unwrap()
            .multi_label());
        assert_eq!(read("{}").unwrap(), PipelineConfig::default());

        let err = read(r#"{"problem_type": "ranking"}"#).unwrap_err().to_string();
        assert!(err.contains("problem_type") && err.contains("`ranking`"), "{err}");
        let err = read(r#"{"label2id": {"a": -1}}"#).unwrap_err().to_string();
        assert!(err.contains("label2id"), "{err}");
        let err = read(r#"{"label2id": [1]}"#).unwrap_err().to_string();
        assert!(err.contains("label2id"), "{err}");
    }
}
