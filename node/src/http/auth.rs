//! The HTTP API token.
//!
//! A random 256-bit token is created on first start in `<data-dir>/api-token`
//! (mode 0600). Every `/api/*` request must carry it as
//! `Authorization: Bearer <token>`; the comparison takes the same time
//! whatever the input, so the token cannot be guessed byte by byte.

use std::fs;
use std::path::{Path, PathBuf};

use crate::identity::{encode_hex, random_bytes, write_private_file};

pub const TOKEN_FILE: &str = "api-token";

/// Loading or creating the token failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the API token {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the API token file {path} is empty; delete it to get a new token")]
    Empty { path: PathBuf },
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Reads the token of the node using `data_dir`, creating it if `create`.
pub fn load_token(data_dir: &Path, create: bool) -> Result<String, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(t) => {
            let t = t.trim().to_owned();
            if t.is_empty() {
                return Err(TokenError::Empty { path });
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let token = encode_hex(&random_bytes().map_err(TokenError::Random)?);
            write_private_file(&path, &format!("{token}\n")).map_err(|source| TokenError::Write { path, source })?;
            Ok(token)
        }
        Err(source) => Err(TokenError::Read { path, source }),
    }
}

/// Compares in time independent of where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks an `Authorization` header value against the token.
pub fn check_bearer(header: Option<&str>, token: &str) -> bool {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        assert!(check_bearer(Some("Bearer abc"), "abc"));
        assert!(!check_bearer(Some("Bearer abd"), "abc"));
        assert!(!check_bearer(Some("Bearer ab"), "abc"));
        assert!(!check_bearer(Some("Basic abc"), "abc"));
        assert!(!check_bearer(None, "abc"));
    }

    #[test]
    fn token_created_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_token(dir.path(), false).is_err());
        let a = load_token(dir.path(), true).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(load_token(dir.path(), false).unwrap(), a);
    }
}
