//! `--api-key`: every route but `/health` needs `Authorization: Bearer
//! KEY`, compared in constant time (a comparison that stops at the first
//! wrong byte tells an attacker, by its timing, how much was right).

use axum::http::{header, HeaderMap, StatusCode};

use super::errors::{ApiError, ErrorKind};

/// Whether the request's bearer token is `key`.
pub fn check(headers: &HeaderMap, key: &str) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match given {
        Some(token) if same_bytes(token, key.as_bytes()) => Ok(()),
        Some(_) => Err(unauthorized("the API key is not the server's")),
        None => Err(unauthorized(
            "this server needs `Authorization: Bearer <api key>`",
        )),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, message)
}

/// Equality in time that depends on the lengths only, never on where
/// the bytes differ.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let longest = a.len().max(b.len());
    let mut differ = u8::from(a.len() != b.len());
    for i in 0..longest {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        differ |= x ^ y;
    }
    // Read through a black box so the loop is not turned into an early exit.
    std::hint::black_box(differ) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_agree() {
        assert!(same_bytes(b"secret", b"secret"));
        assert!(!same_bytes(b"secret", b"secreT"));
        assert!(!same_bytes(b"secret", b"secret2"));
        assert!(!same_bytes(b"", b"x"));
        assert!(same_bytes(b"", b""));
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(check(&h, "k").unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "Bearer k".parse().unwrap());
        assert!(check(&h, "k").is_ok());
        h.insert(header::AUTHORIZATION, "Bearer j".parse().unwrap());
        assert_eq!(check(&h, "k").unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "k".parse().unwrap());
        assert_eq!(check(&h, "k").unwrap_err().status, StatusCode::UNAUTHORIZED);
    }
}
