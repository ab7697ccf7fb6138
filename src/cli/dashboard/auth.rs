//! The dashboard's access token: drawn at random on every start, and
//! required on every request.
//!
//! Actions (any method but GET and HEAD) need it in the `X-TT-Token`
//! header, which only a script of the page itself can set — not a link,
//! a form or an image of another page. Reads take it in the header or the
//! `token` query parameter (the URL printed at start, and the event
//! stream, which a browser opens without custom headers); with
//! `--read-only-public` reads need none.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::server::Shared;
use crate::cli::CliError;

/// The header that carries the token.
pub const HEADER: &str = "x-tt-token";

/// Random bytes in a token: 128 bits.
const TOKEN_BYTES: usize = 16;

/// A secret, as lowercase hex.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A new token from the kernel's random source.
    pub fn random() -> Result<Self, CliError> {
        use std::io::Read;
        let mut bytes = [0u8; TOKEN_BYTES];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|source| CliError::Io {
                what: "cannot read `/dev/urandom` for the dashboard's access token".into(),
                source,
            })?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, comparing every byte whatever
    /// differs first (the time taken tells nothing about the token).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The token in `query` (`token=…`), if any.
fn from_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Lets a request through when it carries the token where its kind needs
/// it; refuses it with 401 (no token) or 403 (a wrong one, or an action
/// with the token in the URL only).
pub async fn require(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let token = &shared.token;
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let header = req.headers().get(HEADER).map(|v| v.to_str().unwrap_or(""));
    let query = from_query(req.uri().query());
    let refusal = match (header, query) {
        (Some(h), _) if token.matches(h) => None,
        (Some(_), _) => Some((StatusCode::FORBIDDEN, "the access token is wrong")),
        (None, Some(q)) if read && token.matches(q) => None,
        (None, Some(q)) if token.matches(q) => Some((
            StatusCode::FORBIDDEN,
            "actions need the access token in the `X-TT-Token` header, not in the URL",
        )),
        (None, Some(_)) if !read || !shared.read_only_public => {
            Some((StatusCode::FORBIDDEN, "the access token is wrong"))
        }
        (None, None) if !read || !shared.read_only_public => Some((
            StatusCode::UNAUTHORIZED,
            "this request needs the access token",
        )),
        _ => None,
    };
    match refusal {
        None => next.run(req).await,
        Some((status, message)) => (
            status,
            axum::Json(json!({
                "error": message,
                "help": "open the URL `tt dashboard` printed (it carries `?token=…`); \
                         scripts send the token in the `X-TT-Token` header",
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_random_bits_in_hex() {
        let (a, b) = (Token::random().unwrap(), Token::random().unwrap());
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(""));
    }

    #[test]
    fn the_token_is_found_among_query_parameters() {
        assert_eq!(from_query(Some("a=1&token=abc")), Some("abc"));
        assert_eq!(from_query(Some("tokens=abc")), None);
        assert_eq!(from_query(None), None);
    }
}
