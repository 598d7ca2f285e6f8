//! Typed reading of the raw `config.json` fields, each error naming its
//! field, and transformers' rules for the labels.

use std::collections::BTreeMap;

use super::{ConfigError, MAX_LABELS};

pub(super) fn invalid(field: &'static str, value: &str, rule: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.to_string(),
        rule: rule.to_string(),
    }
}

type Labels = (BTreeMap<usize, String>, BTreeMap<String, usize>, usize);

/// transformers derives num_labels from id2label when it is given, else
/// defaults to 2 labels named LABEL_0, LABEL_1.
pub(super) fn labels(f: &Fields) -> Result<Labels, ConfigError> {
    let mut id2label = BTreeMap::new();
    if let Some(v) = f.0.get("id2label").filter(|v| !v.is_null()) {
        let map = v
            .as_object()
            .ok_or_else(|| invalid("id2label", &v.to_string(), "must be an object"))?;
        for (k, name) in map {
            let id: usize = k
                .parse()
                .map_err(|_| invalid("id2label", k, "keys must be non-negative integers"))?;
            let name = name
                .as_str()
                .ok_or_else(|| invalid("id2label", &name.to_string(), "values must be strings"))?;
            id2label.insert(id, name.to_string());
        }
    }
    let num_labels = match f.0.get("num_labels").filter(|v| !v.is_null()) {
        Some(_) => f.positive("num_labels", 2)?,
        None if !id2label.is_empty() => id2label.len(),
        None => 2,
    };
    // Bounded before the default label names are built (one string each).
    if num_labels > MAX_LABELS {
        return Err(invalid(
            "num_labels",
            &num_labels.to_string(),
            &format!("must be at most {MAX_LABELS}: bertc builds one label name per label"),
        ));
    }
    if id2label.is_empty() {
        id2label = (0..num_labels).map(|i| (i, format!("LABEL_{i}"))).collect();
    }
    if id2label.len() != num_labels || id2label.keys().any(|&k| k >= num_labels) {
        return Err(invalid(
            "id2label",
            &format!("{} entries", id2label.len()),
            &format!("must map exactly the ids 0..{num_labels} (num_labels)"),
        ));
    }
    let label2id = id2label.iter().map(|(&i, n)| (n.clone(), i)).collect();
    Ok((id2label, label2id, num_labels))
}

/// Typed access to the raw JSON fields, each error naming its field.
pub(super) struct Fields<'a>(pub(super) &'a serde_json::Map<String, serde_json::Value>);

impl Fields<'_> {
    fn get(&self, field: &str) -> Option<&serde_json::Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    pub(super) fn positive(&self, field: &'static str, default: usize) -> Result<usize, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(n as usize),
                _ => Err(invalid(field, &v.to_string(), "must be an integer > 0")),
            },
        }
    }

    pub(super) fn non_negative(&self, field: &'static str) -> Result<usize, ConfigError> {
        match self.get(field) {
            None => Ok(0),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| invalid(field, &v.to_string(), "must be an integer >= 0")),
        }
    }

    pub(super) fn int_or_null(
        &self,
        field: &'static str,
        default: Option<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        match self.0.get(field) {
            None => Ok(default),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(field, &v.to_string(), "must be an integer")),
        }
    }

    pub(super) fn float(&self, field: &'static str) -> Result<Option<f64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(field, &v.to_string(), "must be a number")),
        }
    }

    pub(super) fn bool(&self, field: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| invalid(field, &v.to_string(), "must be true or false")),
        }
    }

    pub(super) fn string(&self, field: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| invalid(field, &v.to_string(), "must be a string")),
        }
    }

    pub(super) fn strings(&self, field: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array()
                .and_then(|items| items.iter().map(|s| s.as_str().map(String::from)).collect())
                .ok_or_else(|| invalid(field, &v.to_string(), "must be a list of strings")),
        }
    }
}
