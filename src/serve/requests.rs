//! Reading request bodies: JSON parsed here, field by field, so that a
//! wrong field gets TEI's 422 naming it (serde's own message for an
//! untagged enum names none).

use serde_json::{Map, Value};

use super::errors::ApiError;
use super::worker::Inputs;

/// A request body: a JSON object.
pub type Body = Map<String, Value>;

pub fn object(bytes: &[u8]) -> Result<Body, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::field(
            "body",
            format!("expected a JSON object, found {}", kind(&other)),
        )),
        Err(e) => Err(ApiError::field("body", format!("malformed JSON: {e}"))),
    }
}

/// What a JSON value is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required<'a>(body: &'a Body, field: &str) -> Result<&'a Value, ApiError> {
    body.get(field).ok_or_else(|| ApiError::field(field, "missing"))
}

/// A string field that must be there.
pub fn string(body: &Body, field: &str) -> Result<String, ApiError> {
    as_string(required(body, field)?, field)
}

fn as_string(v: &Value, field: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(ApiError::field(
            field,
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

/// A boolean field, `default` when absent or null.
pub fn flag(body: &Body, field: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::field(
            field,
            format!("expected a boolean, found {}", kind(other)),
        )),
    }
}

/// A whole-number field, `None` when absent or null.
pub fn count(body: &Body, field: &str) -> Result<Option<usize>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(ApiError::field(
                field,
                format!("expected a whole number, found {n}"),
            )),
        },
        Some(other) => Err(ApiError::field(
            field,
            format!("expected a whole number, found {}", kind(other)),
        )),
    }
}

/// An optional string field.
pub fn option_string(body: &Body, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_string(v, field).map(Some),
    }
}

/// `field` as TEI's `Input`: a string, or a list of strings; `true` when
/// it was one string (answered unwrapped where TEI does).
pub fn texts(body: &Body, field: &str) -> Result<(Vec<String>, bool), ApiError> {
    match required(body, field)? {
        Value::String(s) => Ok((vec![s.clone()], true)),
        Value::Array(items) => {
            let texts = items
                .iter()
                .enumerate()
                .map(|(i, v)| as_string(v, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((texts, false))
        }
        other => Err(ApiError::field(
            field,
            format!("expected a string or a list of strings, found {}", kind(other)),
        )),
    }
}

/// TEI's `PredictInput`: a string; a pair `[a, b]`; or a batch of
/// `[text]` and `[text, pair]` lists. `true` when it was one sequence.
pub fn sequences(body: &Body, field: &str) -> Result<(Inputs, bool), ApiError> {
    let shape = "a string, a pair [string, string], or a batch [[string], [string, string], ...]";
    match required(body, field)? {
        Value::String(s) => Ok((vec![(s.clone(), None)], true)),
        Value::Array(items) if items.first().is_some_and(Value::is_string) => match items.as_slice() {
            [Value::String(a), Value::String(b)] => Ok((vec![(a.clone(), Some(b.clone()))], true)),
            [Value::String(a)] => Ok((vec![(a.clone(), None)], true)),
            _ => Err(ApiError::field(field, format!("expected {shape}"))),
        },
        Value::Array(items) => {
            let inputs = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let at = format!("{field}[{i}]");
                    match item {
                        Value::Array(seq) => match seq.as_slice() {
                            [a] => Ok((as_string(a, &format!("{at}[0]"))?, None)),
                            [a, b] => Ok((
                                as_string(a, &format!("{at}[0]"))?,
                                Some(as_string(b, &format!("{at}[1]"))?),
                            )),
                            _ => Err(ApiError::field(
                                &at,
                                format!("expected [string] or [string, string], found {} items", seq.len()),
                            )),
                        },
                        other => Err(ApiError::field(
                            &at,
                            format!("expected [string] or [string, string], found {}", kind(other)),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((inputs, false))
        }
        other => Err(ApiError::field(
            field,
            format!("expected {shape}, found {}", kind(other)),
        )),
    }
}

/// Question-answering's inputs: `question` and `context` strings, or
/// `inputs`, a list of `{"question", "context"}` objects. `true` when it
/// was one question.
pub fn questions(body: &Body) -> Result<(Inputs, bool), ApiError> {
    if !body.contains_key("inputs") {
        return Ok((
            vec![(string(body, "question")?, Some(string(body, "context")?))],
            true,
        ));
    }
    match required(body, "inputs")? {
        Value::Array(items) => {
            let inputs = items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(pair) => Ok((
                        string(pair, "question").map_err(|e| within(e, &format!("inputs[{i}]")))?,
                        Some(string(pair, "context").map_err(|e| within(e, &format!("inputs[{i}]")))?),
                    )),
                    other => Err(ApiError::field(
                        &format!("inputs[{i}]"),
                        format!(
                            "expected an object {{\"question\", \"context\"}}, found {}",
                            kind(other)
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((inputs, false))
        }
        other => Err(ApiError::field(
            "inputs",
            format!(
                "expected a list of {{\"question\", \"context\"}} objects, found {}",
                kind(other)
            ),
        )),
    }
}

/// An error about a field of the object at `at`, named from the body.
fn within(mut e: ApiError, at: &str) -> ApiError {
    e.message = format!("`{at}.{}", e.message.trim_start_matches('`'));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body {
        object(text.as_bytes()).unwrap()
    }

    #[test]
    fn bad_bodies_name_the_field() {
        assert!(object(b"{").unwrap_err().message.contains("malformed JSON"));
        assert!(object(b"[1]")
            .unwrap_err()
            .message
            .contains("`body`: expected a JSON object"));
        let e = texts(&body(r#"{"inputs": ["a", 3]}"#), "inputs").unwrap_err();
        assert_eq!(e.message, "`inputs[1]`: expected a string, found a number");
        let e = texts(&body(r#"{"input": "a"}"#), "inputs").unwrap_err();
        assert_eq!(e.message, "`inputs`: missing");
        let e = flag(&body(r#"{"truncate": "yes"}"#), "truncate", false).unwrap_err();
        assert_eq!(e.message, "`truncate`: expected a boolean, found a string");
        let e = count(&body(r#"{"top_k": -1}"#), "top_k").unwrap_err();
        assert_eq!(e.message, "`top_k`: expected a whole number, found -1");
        let e = questions(&body(r#"{"inputs": [{"question": "q"}]}"#)).unwrap_err();
        assert_eq!(e.message, "`inputs[0].context`: missing");
    }

    #[test]
    fn predict_inputs_read_as_tei_reads_them() {
        let s = |t: &str| t.to_string();
        assert_eq!(
            sequences(&body(r#"{"inputs": "a"}"#), "inputs").unwrap(),
            (vec![(s("a"), None)], true)
        );
        assert_eq!(
            sequences(&body(r#"{"inputs": ["a", "b"]}"#), "inputs").unwrap(),
            (vec![(s("a"), Some(s("b")))], true)
        );
        assert_eq!(
            sequences(&body(r#"{"inputs": [["a"], ["b", "c"]]}"#), "inputs").unwrap(),
            (vec![(s("a"), None), (s("b"), Some(s("c")))], false)
        );
        let e = sequences(&body(r#"{"inputs": [["a", "b", "c"]]}"#), "inputs").unwrap_err();
        assert!(e.message.starts_with("`inputs[0]`"), "{}", e.message);
        assert!(sequences(&body(r#"{"inputs": ["a", "b", "c"]}"#), "inputs").is_err());
    }
}
